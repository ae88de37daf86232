"""Plots for observer agreement: reader confusion matrices, Bland-Altman plots, coefficient forest plots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError

from .continuous import BlandAltman


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def confusion_matrix_plot(table: pd.DataFrame, *, ax: Any = None, title: str | None = None, cmap: str = "Blues") -> Any:
    """Heat map of a reader-vs-reader count table (from :func:`~kicc_analysis.agreement.confusion_matrix`).

    Cells show counts; the diagonal (exact agreement) is outlined. Returns the matplotlib Figure.
    """
    if table.shape[0] != table.shape[1]:
        raise AnalysisError(f"a confusion matrix must be square, got shape {table.shape}")
    from matplotlib.patches import Rectangle

    fig, ax = _axes(ax, (4.2, 3.8))
    values = table.to_numpy(dtype=float)
    image = ax.imshow(values, cmap=cmap)
    q = values.shape[0]
    top = values.max() if values.size else 0
    for i in range(q):
        for j in range(q):
            ax.text(
                j,
                i,
                f"{int(values[i, j])}",
                ha="center",
                va="center",
                color="white" if top and values[i, j] > top / 2 else "black",
                fontsize=8,
            )
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1))
    ax.set_xticks(range(q), [str(c) for c in table.columns])
    ax.set_yticks(range(q), [str(c) for c in table.index])
    ax.set_xlabel(f"{table.columns.name or 'rater B'}")
    ax.set_ylabel(f"{table.index.name or 'rater A'}")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="subjects")
    return fig


def bland_altman_plot(
    result: BlandAltman,
    *,
    ax: Any = None,
    units: str = "",
    title: str | None = None,
    show_ci: bool = True,
    show_regression: bool = False,
) -> Any:
    """Bland-Altman plot: difference against mean, bias and limits of agreement (with their CIs as bands).

    Parameters
    ----------
    result : BlandAltman
        Output of :func:`~kicc_analysis.agreement.bland_altman`.
    units : str
        Measurement units for axis labels (e.g. "mL", "%").
    show_regression : bool
        Draw the proportional-bias regression line.
    """
    fig, ax = _axes(ax, (5.0, 3.8))
    suffix = f" ({units})" if units else ""
    ax.scatter(result.means, result.differences, s=12, alpha=0.7, color="0.2")
    lo, hi = (result.means.min(), result.means.max()) if result.means.size else (0, 1)
    for est, style in ((result.bias, "-"), (result.lower, "--"), (result.upper, "--")):
        ax.axhline(est.estimate, color="C0" if est is result.bias else "C3", linestyle=style, linewidth=1)
        if show_ci and np.isfinite(est.ci_low):
            ax.axhspan(est.ci_low, est.ci_high, color="C0" if est is result.bias else "C3", alpha=0.12)
        ax.annotate(
            f"{est.method.replace('_', ' ')} {est.estimate:.3g}",
            (hi, est.estimate),
            fontsize=7,
            ha="right",
            va="bottom",
        )
    if show_regression and result.proportional:
        xs = np.array([lo, hi])
        ax.plot(xs, result.proportional["intercept"] + result.proportional["slope"] * xs, color="C2", linewidth=1)
    ax.set_xlabel(f"mean of the two measurements{suffix}")
    ax.set_ylabel(f"difference{suffix}")
    if title:
        ax.set_title(title)
    return fig


def forest_plot(
    table: pd.DataFrame, *, ax: Any = None, label: str = "item", group: str = "coefficient", title: str | None = None
) -> Any:
    """Point estimates with CIs from :func:`~kicc_analysis.agreement.agreement_table`, one marker per row."""
    needed = {"estimate", "ci_low", "ci_high", label, group}
    if not needed <= set(table.columns):
        raise AnalysisError(f"forest_plot needs columns {sorted(needed)}, got {list(table.columns)}")
    fig, ax = _axes(ax, (5.5, 0.3 * len(table) + 1.2))
    groups = list(dict.fromkeys(table[group]))
    labels = list(dict.fromkeys(table[label]))
    width = 0.8 / max(len(groups), 1)
    for g, name in enumerate(groups):
        part = table[table[group] == name]
        ys = np.array([labels.index(v) for v in part[label]]) + (g - (len(groups) - 1) / 2) * width
        ax.errorbar(
            part["estimate"],
            ys,
            xerr=[part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]],
            fmt="o",
            markersize=4,
            capsize=2,
            label=str(name),
        )
    ax.set_yticks(range(len(labels)), [str(v) for v in labels])
    ax.axvline(0, color="0.6", linewidth=0.8)
    ax.set_xlabel("agreement coefficient (95% CI)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title)
    return fig
