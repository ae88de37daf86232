"""Publication-ready tables: several coefficients over several items, pairwise kappas, reader confusion matrices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate

from . import categorical as cat
from ._data import WeightsArg, to_wide
from .continuous import icc, kendall_w


def _icc_estimate(form: str) -> Callable[..., Estimate]:
    def run(x: np.ndarray, weights: WeightsArg, categories: Any, confidence: float, n_boot: int) -> Estimate:
        table = icc(x, confidence=confidence, layout="subjects_x_raters")
        row = table.loc[form]
        return Estimate(
            estimate=float(row["estimate"]),
            ci_low=float(row["ci_low"]),
            ci_high=float(row["ci_high"]),
            p=float(row["p"]),
            n=int(table.attrs["n"]),
            method=form.lower(),
            convention=f"{row['mcgraw_wong']} {row['description']}; F test on ({row['df1']}, {row['df2']}) df",
            confidence=confidence,
            extra={"dropped": table.attrs["dropped"], "df1": row["df1"], "df2": row["df2"]},
            statistic=float(row["F"]),
            statistic_name="F",
        )

    return run


def _cat(func: Callable[..., Estimate], *, weighted: bool | None = None, **fixed: Any) -> Callable[..., Estimate]:
    """Adapter: weighted=None passes the table's weights, False forces unweighted, True defaults to quadratic."""

    def run(x: np.ndarray, weights: WeightsArg, categories: Any, confidence: float, n_boot: int) -> Estimate:
        kwargs = dict(fixed)
        if weighted is None:
            kwargs["weights"] = weights
        elif weighted:
            kwargs["weights"] = weights if weights is not None else "quadratic"
        return func(
            x, categories=categories, confidence=confidence, n_boot=n_boot, layout="subjects_x_raters", **kwargs
        )

    return run


#: Coefficients available to :func:`agreement_table`, by name.
COEFFICIENTS: dict[str, Callable[..., Estimate]] = {
    "percent_agreement": _cat(cat.percent_agreement),
    "fleiss_kappa": _cat(cat.fleiss_kappa),
    "conger_kappa": _cat(cat.conger_kappa),
    "light_kappa": _cat(cat.light_kappa),
    "brennan_prediger": _cat(cat.brennan_prediger),
    "gwet_ac1": _cat(cat.gwet_ac, weighted=False),
    "gwet_ac2": _cat(cat.gwet_ac, weighted=True),
    "krippendorff_nominal": _cat(cat.krippendorff_alpha, weighted=False, level="nominal"),
    "krippendorff_ordinal": _cat(cat.krippendorff_alpha, weighted=False, level="ordinal"),
    "krippendorff_interval": _cat(cat.krippendorff_alpha, weighted=False, level="interval"),
    "icc1": _icc_estimate("ICC1"),
    "icc2": _icc_estimate("ICC2"),
    "icc3": _icc_estimate("ICC3"),
    "icc1k": _icc_estimate("ICC1k"),
    "icc2k": _icc_estimate("ICC2k"),
    "icc3k": _icc_estimate("ICC3k"),
    "kendall_w": lambda x, weights, categories, confidence, n_boot: kendall_w(
        x, confidence=confidence, layout="subjects_x_raters"
    ),
}


def _format(est: float, low: float, high: float, digits: int) -> str:
    if not np.isfinite(est):
        return "NA"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def agreement_table(
    data: pd.DataFrame,
    *,
    subject: str,
    rater: str,
    rating: str,
    item: str | None = None,
    coefficients: Sequence[str] = ("percent_agreement", "fleiss_kappa", "gwet_ac2", "krippendorff_ordinal"),
    weights: WeightsArg = "quadratic",
    categories: Sequence[Any] | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    digits: int = 2,
) -> pd.DataFrame:
    """Run a set of coefficients over every item of a long ratings table; one row per (item, coefficient).

    Parameters
    ----------
    data : DataFrame
        Long table with ``subject``, ``rater``, ``rating`` (and ``item``) columns.
    item : str, optional
        Column splitting the table into items (e.g. lobes); one item when omitted.
    coefficients : sequence of str
        Names from :data:`COEFFICIENTS`.
    weights : None, "linear", "quadratic" or matrix
        Weights for the weighted coefficients (Fleiss, Conger, Brennan-Prediger, percent agreement, AC2).
    categories : sequence, optional
        Declared categories (same for every item).
    n_boot : int
        Bootstrap replicates added to each row (``boot_ci_low``/``boot_ci_high``), 0 = none.

    Returns
    -------
    DataFrame
        Columns ``item, coefficient, estimate, se, ci_low, ci_high, p, n, n_raters, summary, convention`` (and
        bootstrap limits when requested). ``summary`` is "estimate (low to high)" rounded to ``digits``.
    """
    unknown = [c for c in coefficients if c not in COEFFICIENTS]
    if unknown:
        raise AnalysisError(f"unknown coefficients {unknown}; available: {sorted(COEFFICIENTS)}")
    needed = [subject, rater, rating] + ([item] if item else [])
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise AnalysisError(f"columns {missing} not in the ratings table (columns: {list(data.columns)})")
    groups = data.groupby(item, sort=False) if item else [("all", data)]
    rows = []
    for name, part in groups:
        wide = to_wide(part, subject, rater, rating)
        for coef in coefficients:
            try:
                est = COEFFICIENTS[coef](wide.values, weights, categories, confidence, n_boot)
            except AnalysisError as exc:
                rows.append(
                    {
                        "item": name,
                        "coefficient": coef,
                        "estimate": np.nan,
                        "summary": "NA",
                        "convention": f"not computed: {exc}",
                    }
                )
                continue
            row = {
                "item": name,
                "coefficient": coef,
                "estimate": est.estimate,
                "se": est.se,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "p": est.p,
                "n": est.n,
                "n_raters": wide.values.shape[1],
                "summary": _format(est.estimate, est.ci_low, est.ci_high, digits),
                "convention": est.convention,
            }
            if n_boot and "boot_ci_low" in est.extra:
                row.update(boot_ci_low=est.extra["boot_ci_low"], boot_ci_high=est.extra["boot_ci_high"])
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(
        confidence=confidence, weights=str(weights), categories=None if categories is None else list(categories)
    )
    return table


def pairwise_table(
    data: pd.DataFrame,
    *,
    subject: str,
    rater: str,
    rating: str,
    weights: WeightsArg = "quadratic",
    categories: Sequence[Any] | None = None,
    confidence: float = 0.95,
    digits: int = 2,
) -> pd.DataFrame:
    """Cohen's (weighted) kappa for every pair of raters, one row per pair."""
    wide = to_wide(data, subject, rater, rating, numeric=False)
    rows = []
    for i, j in combinations(range(wide.values.shape[1]), 2):
        est = cat.cohen_kappa(
            wide.values[:, i], wide.values[:, j], weights=weights, categories=categories, confidence=confidence
        )
        rows.append(
            {
                "rater_a": wide.raters[i],
                "rater_b": wide.raters[j],
                "estimate": est.estimate,
                "se": est.se,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "p": est.p,
                "n": est.n,
                "dropped": sum(est.extra["dropped"].values()),
                "summary": _format(est.estimate, est.ci_low, est.ci_high, digits),
                "convention": est.convention,
            }
        )
    return pd.DataFrame(rows)


def confusion_matrix(
    data: pd.DataFrame,
    rater_a: Any,
    rater_b: Any,
    *,
    subject: str,
    rater: str,
    rating: str,
    categories: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Counts of rater A's category (rows) against rater B's (columns); every declared category appears."""
    wide = to_wide(data, subject, rater, rating, numeric=False)
    raters = list(wide.raters)
    for r in (rater_a, rater_b):
        if r not in raters:
            raise AnalysisError(f"rater {r!r} not found; raters are {raters}")
    a = wide.values[:, raters.index(rater_a)]
    b = wide.values[:, raters.index(rater_b)]
    est = cat.cohen_kappa(a, b, categories=categories)
    cats = est.extra["categories"]
    frame = pd.DataFrame(
        est.extra["table"].astype(int),
        index=pd.Index(cats, name=str(rater_a)),
        columns=pd.Index(cats, name=str(rater_b)),
    )
    frame.attrs["dropped"] = est.extra["dropped"]
    return frame
