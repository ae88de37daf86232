"""Publication figures for the prognostic analysis (matplotlib, vector-friendly, one consistent style).

Every function takes results computed by the other prognosis modules, draws on a
new (or given) Axes and returns the Figure; save it with
:meth:`kicc_analysis.provenance.OutputWriter.figure` (PNG + SVG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kicc_analysis.prognosis.competing_risks import CumulativeIncidence
from kicc_analysis.prognosis.survival import KaplanMeier

__all__ = [
    "STYLE",
    "km_plot",
    "cif_plot",
    "forest_plot",
    "roc_plot",
    "calibration_plot",
    "decision_curve_plot",
]

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
}
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]  # Okabe–Ito


def _new(figsize: tuple[float, float] = (5.0, 4.0), ax: Any = None) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    for k in ("top", "right"):
        ax.spines[k].set_visible(False)
    return fig, ax


def km_plot(
    fits: KaplanMeier | Mapping[Any, KaplanMeier],
    *,
    risk_times: Sequence[float] | None = None,
    xlabel: str = "Days since admission",
    ylabel: str = "Survival probability",
    title: str = "",
    ci: bool = True,
    censor_marks: bool = True,
) -> Any:
    """Kaplan–Meier curves with CI bands, censoring ticks and a numbers-at-risk table below."""
    if isinstance(fits, KaplanMeier):
        fits = {"All": fits}
    elif list(fits) == ["all"]:  # an ungrouped kaplan_meier() fit
        fits = {"All": fits["all"]}
    with plt.rc_context(STYLE):
        fig, (ax, ax_tab) = plt.subplots(
            2, 1, figsize=(5.5, 4.8), height_ratios=[4, 0.35 + 0.22 * len(fits)], sharex=True, layout="constrained"
        )
    tmax = max(float(f.table["time"].max()) for f in fits.values())
    if risk_times is None:
        from matplotlib.ticker import MaxNLocator

        ticks = MaxNLocator(6, integer=True).tick_values(0, tmax)
        risk_times = [float(v) for v in ticks if 0 <= v <= tmax]
    for i, (lab, km) in enumerate(fits.items()):
        c = COLORS[i % len(COLORS)]
        t = np.r_[0.0, km.table["time"].to_numpy()]
        s = np.r_[1.0, km.table["surv"].to_numpy()]
        ax.step(t, s, where="post", color=c, label=str(lab), lw=1.4)
        if ci:
            lo = np.r_[1.0, km.table["ci_low"].to_numpy()]
            hi = np.r_[1.0, km.table["ci_high"].to_numpy()]
            ax.fill_between(t, lo, hi, step="post", color=c, alpha=0.15, lw=0)
        if censor_marks:
            cen = km.table[km.table["n_censor"] > 0]
            ax.plot(cen["time"], cen["surv"], "|", color=c, ms=5, mew=1)
        n_at = [int(km.table.loc[km.table["time"] >= rt, "n_risk"].iloc[0]) if (km.table["time"] >= rt).any() else 0
                for rt in risk_times]  # fmt: skip
        for rt, nr in zip(risk_times, n_at, strict=True):
            ax_tab.text(rt, -i, str(nr), ha="center", va="center", color=c, fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(fits) > 1:
        ax.legend(frameon=False, loc="lower left")
    ax_tab.set_ylim(-len(fits) + 0.5, 0.8)
    ax_tab.set_yticks([-i for i in range(len(fits))], [str(k) for k in fits], fontsize=8)
    ax_tab.set_xticks(list(risk_times))
    ax_tab.set_xlabel(xlabel)
    ax_tab.set_title("Number at risk", fontsize=8, loc="left")
    for k in ("top", "right", "left"):
        ax_tab.spines[k].set_visible(False)
    ax_tab.tick_params(axis="y", length=0)
    for k in ("top", "right"):
        ax.spines[k].set_visible(False)
    return fig


def cif_plot(
    results: CumulativeIncidence | Mapping[Any, CumulativeIncidence],
    *,
    cause_labels: Mapping[Any, str] | None = None,
    xlabel: str = "Days since admission",
    title: str = "",
    ci: bool = True,
    ax: Any = None,
) -> Any:
    """Cumulative incidence curves (one line per cause and group; dashed for the second cause)."""
    if isinstance(results, CumulativeIncidence):
        results = {"": results}
    elif list(results) == ["all"]:  # an ungrouped cumulative_incidence() fit
        results = {"": results["all"]}
    fig, ax = _new((5.5, 4.0), ax)
    cause_labels = dict(cause_labels or {})
    styles = ["-", "--", ":", "-."]
    for gi, (glab, res) in enumerate(results.items()):
        for ci_idx, cause in enumerate(res.causes):
            t = res.cif(cause)
            x = np.r_[0.0, t["time"].to_numpy()]
            y = np.r_[0.0, t["cif"].to_numpy()]
            name = cause_labels.get(cause, f"cause {cause}")
            label = f"{glab}: {name}" if glab != "" else name
            c = COLORS[gi % len(COLORS)] if len(results) > 1 else COLORS[ci_idx % len(COLORS)]
            ax.step(x, y, where="post", color=c, ls=styles[ci_idx % 4], lw=1.4, label=label)
            if ci:
                lo = np.r_[0.0, t["ci_low"].to_numpy()]
                hi = np.r_[0.0, t["ci_high"].to_numpy()]
                ax.fill_between(x, lo, hi, step="post", color=c, alpha=0.12, lw=0)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Cumulative incidence")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def forest_plot(
    table: pd.DataFrame,
    *,
    estimate: str = "or",
    low: str = "or_ci_low",
    high: str = "or_ci_high",
    label: str = "term",
    xlabel: str = "Odds ratio (95% CI)",
    title: str = "",
    ax: Any = None,
) -> Any:
    """Forest plot of ratios (OR/HR/SHR) on a log axis with the values printed on the right."""
    t = table[table[label] != "(Intercept)"].reset_index(drop=True)
    fig, ax = _new((6.0, 0.8 + 0.32 * len(t)), ax)
    y = np.arange(len(t))[::-1]
    est, lo, hi = t[estimate].to_numpy(float), t[low].to_numpy(float), t[high].to_numpy(float)
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="s", color=COLORS[0], ms=4, capsize=2, lw=1)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, t[label].astype(str))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for yi, e, a, b in zip(y, est, lo, hi, strict=True):
        ax.annotate(f"{e:.2f} ({a:.2f}–{b:.2f})", (1.02, yi), xycoords=("axes fraction", "data"), va="center",
                    fontsize=8)  # fmt: skip
    return fig


def roc_plot(
    curves: Mapping[str, pd.DataFrame],
    aucs: Mapping[str, Any] | None = None,
    *,
    bands: Mapping[str, pd.DataFrame] | None = None,
    title: str = "",
    ax: Any = None,
) -> Any:
    """ROC curves (from :func:`roc_curve`) with optional bootstrap bands (``fpr, tpr_low, tpr_high``)."""
    fig, ax = _new((4.5, 4.5), ax)
    for i, (name, c) in enumerate(curves.items()):
        col = COLORS[i % len(COLORS)]
        lab = name
        if aucs and name in aucs:
            a = aucs[name]
            lab = f"{name}: AUC {a.estimate:.3f} ({a.ci_low:.3f}–{a.ci_high:.3f})"
        fpr = 1 - c["specificity"].to_numpy()
        tpr = c["sensitivity"].to_numpy()
        order = np.lexsort((tpr, fpr))
        ax.plot(fpr[order], tpr[order], color=col, lw=1.4, label=lab)
        if bands and name in bands:
            b = bands[name]
            ax.fill_between(b["fpr"], b["tpr_low"], b["tpr_high"], color=col, alpha=0.15, lw=0)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(frameon=False, loc="lower right")
    return fig


def roc_band(y: Any, score: Any, n_boot: int = 200, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Pointwise percentile-bootstrap band of sensitivity over a grid of 1 - specificity."""
    from kicc_analysis.prognosis.roc import roc_curve

    yy = np.asarray(y, dtype=float)
    ss = np.asarray(score, dtype=float)
    ok = ~(np.isnan(yy) | np.isnan(ss))
    yy, ss = yy[ok], ss[ok]
    grid = np.linspace(0, 1, 101)
    rng = np.random.default_rng(seed)
    tprs = np.empty((n_boot, len(grid)))
    for b in range(n_boot):
        idx = rng.integers(0, len(yy), len(yy))
        if yy[idx].min() == yy[idx].max():
            tprs[b] = np.nan
            continue
        c = roc_curve(yy[idx], ss[idx])
        fpr = 1 - c["specificity"].to_numpy()
        tpr = c["sensitivity"].to_numpy()
        o = np.lexsort((tpr, fpr))
        tprs[b] = np.interp(grid, fpr[o], tpr[o])
    a = (1 - confidence) / 2
    lo, hi = np.nanquantile(tprs, [a, 1 - a], axis=0)
    return pd.DataFrame({"fpr": grid, "tpr_low": lo, "tpr_high": hi})


def calibration_plot(cal: Any, *, title: str = "", p: Any = None, ax: Any = None) -> Any:
    """Calibration plot: binned observed vs predicted (with CIs), LOWESS curve (with band), ideal line,
    and the key statistics printed in the corner; optional rug/histogram of predictions ``p``."""
    fig, ax = _new((4.5, 4.5), ax)
    sm = cal.smoothed
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="Ideal")
    ax.plot(sm["predicted"], sm["observed"], color=COLORS[0], lw=1.4, label="LOWESS")
    if "ci_low" in sm:
        ax.fill_between(sm["predicted"], sm["ci_low"], sm["ci_high"], color=COLORS[0], alpha=0.15, lw=0)
    b = cal.binned
    yerr = np.clip(np.vstack([b["observed"] - b["ci_low"], b["ci_high"] - b["observed"]]), 0, None)
    ax.errorbar(b["mean_predicted"], b["observed"], yerr=yerr,
                fmt="o", color=COLORS[1], ms=4, capsize=2, lw=1, label="Risk groups")  # fmt: skip
    if p is not None:
        pp = np.asarray(p, dtype=float)
        pp = pp[~np.isnan(pp)]
        ax.plot(pp, np.zeros_like(pp) + 0.005, "|", color="black", alpha=0.3, ms=6)
    e = cal.estimates
    text = (f"CITL {e['calibration_in_the_large'].estimate:.2f}\nSlope {e['calibration_slope'].estimate:.2f} "
            f"({e['calibration_slope'].ci_low:.2f}–{e['calibration_slope'].ci_high:.2f})\n"
            f"Brier {e['brier'].estimate:.3f}")  # fmt: skip
    ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Predicted risk")
    ax.set_ylabel("Observed proportion")
    ax.set_title(title)
    ax.legend(frameon=False, loc="lower right")
    return fig


def decision_curve_plot(dca: pd.DataFrame, *, title: str = "", ymin: float | None = None, ax: Any = None) -> Any:
    """Net-benefit curves from :func:`decision_curve` (treat-all grey, treat-none black, models coloured)."""
    fig, ax = _new((5.5, 4.0), ax)
    prev = float(dca["pos_rate"].iloc[0])
    i = 0
    for name, g in dca.groupby("variable", sort=False):
        if name == "all":
            ax.plot(g["threshold"], g["net_benefit"], color="grey", lw=1.2, label="Treat all")
        elif name == "none":
            ax.plot(g["threshold"], g["net_benefit"], color="black", lw=1.2, label="Treat none")
        else:
            c = COLORS[i % len(COLORS)]
            ax.plot(g["threshold"], g["net_benefit"], color=c, lw=1.4, label=str(g["label"].iloc[0]))
            if "nb_ci_low" in g:
                ax.fill_between(g["threshold"], g["nb_ci_low"], g["nb_ci_high"], color=c, alpha=0.15, lw=0)
            i += 1
    ax.set_ylim(ymin if ymin is not None else -0.05 * max(prev, 0.01), max(prev, 0.01) * 1.1)
    ax.set_xlabel("Threshold probability")
    ax.set_ylabel("Net benefit")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig
