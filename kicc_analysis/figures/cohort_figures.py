"""Cohort-level figures: imaging inventory and missingness."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kicc_analysis.figures.style import PALETTE, figure, publication_style


def imaging_inventory(cohort: pd.DataFrame, inventory: pd.DataFrame) -> plt.Figure:
    """Three panels: studies per patient by modality, timing of CT studies, CT series per site.

    Parameters
    ----------
    cohort : DataFrame
        The cohort table (``n_ct_studies``, ``n_radiographs``, ``kicc_site``).
    inventory : DataFrame
        One row per DICOM study (``modality``, ``img_day``), from :class:`kicc_analysis.cohort.CohortBuild`.
    """
    fig, axes = figure(3, width_in=7.2, height_in=2.4)
    with publication_style():
        counts = pd.DataFrame({"CT": cohort["n_ct_studies"], "Radiograph": cohort["n_radiographs"]})
        top = int(max(counts.max().max(), 1))
        bins = np.arange(top + 2) - 0.5
        axes[0].hist([counts["CT"], counts["Radiograph"]], bins=bins, label=list(counts.columns), color=PALETTE[:2])
        axes[0].set(xlabel="Studies per patient", ylabel="Patients", title="Imaging per patient")
        axes[0].legend(frameon=False)
        ct = inventory[inventory["modality"] == "CT"]
        days = pd.to_numeric(ct.get("img_day"), errors="coerce").dropna()
        axes[1].hist(days, bins=20, color=PALETTE[2])
        axes[1].set(xlabel="Days from admission", ylabel="CT studies", title="Timing of CT")
        per_site = cohort.groupby("kicc_site")["n_ct_studies"].sum() if "kicc_site" in cohort else pd.Series(dtype=int)
        axes[2].bar(per_site.index.astype(str), per_site.to_numpy(), color=PALETTE[0])
        axes[2].set(xlabel="Site", ylabel="CT studies", title="CT studies per site")
    return fig


def missingness_heatmap(cohort: pd.DataFrame, variables: Sequence[str], by: str = "kicc_site") -> plt.Figure:
    """Fraction missing per variable (rows) and site (columns)."""
    variables = [v for v in variables if v in cohort.columns]
    fractions = (
        cohort[variables].isna().groupby(cohort[by]).mean().T
        if by in cohort
        else cohort[variables].isna().mean().to_frame("all")
    )
    fig, ax = figure(1, width_in=4.5, height_in=0.18 * len(variables) + 1.2)
    with publication_style():
        image = ax.imshow(fractions.to_numpy(dtype=float), vmin=0, vmax=1, cmap="Greys", aspect="auto")
        ax.set_yticks(range(len(fractions.index)), fractions.index)
        ax.set_xticks(range(len(fractions.columns)), fractions.columns.astype(str))
        ax.set(xlabel=by, title="Fraction missing")
        fig.colorbar(image, ax=ax, shrink=0.6)
    return fig
