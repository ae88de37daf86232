"""Small figures for CT quantification: opacity overlays and opacity by group (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..imaging import WINDOW_PRESETS
from .opacity import CONSOLIDATION, GGO

LUNG_WINDOW = WINDOW_PRESETS["lung"]  # level, width (HU) for display
LOW_CONFIDENCE_COLUMN = "ct_low_confidence"  # cohort column (join_to_cohort): the lung mask is likely wrong
LOW_CONFIDENCE_LABEL = "low-confidence lung mask (use an external mask)"


def _low_confidence(table: pd.DataFrame, column: str | None) -> np.ndarray:
    """bool per row: the numbers come from a low-confidence lung mask (False when the column is absent)."""
    if column is None or column not in table.columns:
        return np.zeros(len(table), dtype=bool)
    return table[column].fillna(False).astype(bool).to_numpy()


def overlay_figure(
    images: Sequence[sitk.Image],
    lung_labels: Sequence[sitk.Image],
    opacity_labels: Sequence[sitk.Image],
    titles: Sequence[str],
    window: tuple[float, float] = LUNG_WINDOW,
):
    """One panel per case: the axial slice with most opacity, lung window, lung contour, GGO/consolidation tint.

    Returns the matplotlib Figure. Titles must not contain patient identifiers beyond the pseudonym.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(4.2 * max(n, 1), 4.4), squeeze=False)
    level, width = window
    for ax, image, lungs, opac, title in zip(axes[0], images, lung_labels, opacity_labels, titles, strict=True):
        hu = sitk.GetArrayViewFromImage(image)
        lab = sitk.GetArrayViewFromImage(lungs)
        op = sitk.GetArrayViewFromImage(opac)
        z = int(np.argmax((op > 0).sum(axis=(1, 2)))) if op.any() else hu.shape[0] // 2
        ax.imshow(hu[z], cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        tint = np.zeros((*op[z].shape, 4))
        tint[op[z] == GGO] = (1.0, 0.85, 0.0, 0.45)
        tint[op[z] == CONSOLIDATION] = (1.0, 0.1, 0.1, 0.55)
        ax.imshow(tint)
        if lab[z].any():
            ax.contour(lab[z] > 0, [0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle("Lung mask (cyan), GGO (yellow), consolidation (red)", fontsize=10)
    fig.tight_layout()
    return fig


def opacity_by_group_figure(
    table: pd.DataFrame,
    value: str,
    group: str,
    labels: dict | None = None,
    low_confidence: str | None = LOW_CONFIDENCE_COLUMN,
):
    """Box plot with points of ``value`` by ``group`` (e.g. ``ct_opacity_pct`` by ``sever_national``).

    Points whose ``low_confidence`` column is true (numbers from a lung mask that is likely wrong) are drawn as red
    crosses with a legend entry; the boxes use every point.
    """
    import matplotlib.pyplot as plt

    data = table[[group, value]].dropna()
    flagged = _low_confidence(table.loc[data.index], low_confidence)
    groups = sorted(data[group].unique())
    fig, ax = plt.subplots(figsize=(6, 4))
    series = [data.loc[data[group] == g, value].to_numpy() for g in groups]
    marks = [flagged[(data[group] == g).to_numpy()] for g in groups]
    ax.boxplot(series, showfliers=False)
    rng = np.random.default_rng(0)
    for i, (values, bad) in enumerate(zip(series, marks, strict=True), start=1):
        x = i + rng.uniform(-0.12, 0.12, len(values))
        ax.scatter(x[~bad], values[~bad], s=10, alpha=0.6)
        if bad.any():
            ax.scatter(x[bad], values[bad], s=28, marker="x", color="red", label=LOW_CONFIDENCE_LABEL)
    if flagged.any():
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[:1], names[:1], fontsize=7, loc="upper left")
    ax.set_xticks(range(1, len(groups) + 1), [str((labels or {}).get(g, g)) for g in groups])
    ax.set_xlabel(group)
    ax.set_ylabel(value)
    fig.tight_layout()
    return fig


def core_periphery_figure(
    table: pd.DataFrame,
    core: str = "ct_core_opacity_pct",
    periphery: str = "ct_periphery_opacity_pct",
    low_confidence: str | None = LOW_CONFIDENCE_COLUMN,
):
    """Scatter of peripheral vs core opacity (% of each region) per patient, with the line of equality.

    Points above the line have a peripheral-predominant pattern (typical of COVID-19 pneumonia). Points from a
    low-confidence lung mask (``low_confidence`` column true) are red crosses with a legend entry.
    """
    import matplotlib.pyplot as plt

    data = table[[core, periphery]].dropna()
    bad = _low_confidence(table.loc[data.index], low_confidence)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.scatter(data[core][~bad], data[periphery][~bad], s=12, alpha=0.7)
    if bad.any():
        ax.scatter(data[core][bad], data[periphery][bad], s=28, marker="x", color="red", label=LOW_CONFIDENCE_LABEL)
        ax.legend(fontsize=7, loc="upper left")
    top = float(np.nanmax(data.to_numpy())) * 1.05 if len(data) else 1.0
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("core opacity (% of core lung)")
    ax.set_ylabel("peripheral opacity (% of peripheral lung)")
    share = float((data[periphery] > data[core]).mean()) if len(data) else np.nan
    ax.set_title(f"Peripheral > core in {100 * share:.0f} % of {len(data)} patients", fontsize=9)
    fig.tight_layout()
    return fig
