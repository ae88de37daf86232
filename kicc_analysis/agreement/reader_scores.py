"""Inter-reader agreement of zone scores (Brixia, RALE, CT per-lobe ...) per item and on the total.

:func:`score_agreement` takes reader scores in the common format of :mod:`kicc_analysis.readings` (``subject,
study, reader, scheme, item, score``) and returns one long table, one row per (item, comparison, coefficient):

=====================  =======================================================================================
coefficient            definition (what ``setting`` states)
=====================  =======================================================================================
``weighted_kappa``     Cohen's weighted kappa of each reader pair, agreement weights ``quadratic`` (Fleiss-Cohen,
                       1 - (i-j)^2/(q-1)^2) and ``linear`` (Cicchetti-Allison, 1 - abs(i-j)/(q-1)) over the
                       declared categories of the scheme (0-3 for a Brixia zone, 0-18 for its total); FCE SE
                       and Wald CI (:func:`~kicc_analysis.agreement.cohen_kappa`).
``icc``                Shrout & Fleiss ICC2 = McGraw & Wong ICC(A,1) (two-way random, absolute agreement, single
                       reader) and ICC3 = ICC(C,1) (two-way mixed, consistency) over all readers, F-based CI.
``krippendorff_alpha`` all readers; ``ordinal`` metric for items, ``interval`` for totals; Gwet's SE.
``bland_altman``       each reader pair, ``bias`` (first - second reader) and the 95 % limits ``lower_loa`` /
                       ``upper_loa`` = bias -/+ 1.96 SD (SD with n - 1), t CIs (Bland & Altman 1999).
=====================  =======================================================================================

Subjects missing a reader's score are left out of that comparison (``n`` says how many entered).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from kicc_analysis.agreement.categorical import cohen_kappa, krippendorff_alpha
from kicc_analysis.agreement.continuous import bland_altman, icc
from kicc_analysis.errors import AnalysisError
from kicc_analysis.readings import get_scheme, reading_totals

__all__ = ["AGREEMENT_COLUMNS", "score_agreement", "score_matrix"]

AGREEMENT_COLUMNS = ["item", "comparison", "coefficient", "setting", "estimate", "ci_low", "ci_high", "n"]


def score_matrix(readings: pd.DataFrame, scheme: str, item: str) -> pd.DataFrame:
    """Subjects x readers scores of one item (or of a total computed from the items).

    The subject label is ``subject`` joined with ``study`` when studies are given. Declared totals are ignored:
    totals are always computed from the items (see :func:`kicc_analysis.readings.reading_totals`).
    """
    definition = get_scheme(scheme)
    rows = readings[readings["scheme"] == definition.name]
    if item in definition.items:
        long = rows[rows["item"] == item][["subject", "study", "reader", "score"]]
    else:
        totals = reading_totals(rows, definition.name, item)
        long = totals[["subject", "study", "reader", "score"]]
    if long.empty:
        raise AnalysisError(f"no {definition.name} scores for item {item!r}")
    key = long["subject"].astype(str) + np.where(long["study"].notna(), "/" + long["study"].astype(str), "")
    long = long.assign(case=key)
    if long.duplicated(["case", "reader"]).any():
        raise AnalysisError(f"{definition.name} {item}: a reader scored the same subject/study twice; validate first")
    return long.pivot(index="case", columns="reader", values="score").astype(float)


def score_agreement(
    readings: pd.DataFrame,
    scheme: str = "brixia",
    *,
    items: list[str] | None = None,
    totals: list[str] | None = None,
    readers: list[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Agreement between readers per item and on each total of a scheme (see the module docstring).

    Parameters
    ----------
    readings : DataFrame
        Common reader-score format (e.g. from :func:`kicc_analysis.readings.read_reader_scores`).
    scheme : str
        Scheme name (``brixia``, ``rale``, ``cohen``, ``ct_lobe``...).
    items, totals : list of str, optional
        Items and totals to analyse (default: all of the scheme).
    readers : list of str, optional
        Readers to compare, in this order (pairs are first-second); default: all, sorted.

    Returns
    -------
    DataFrame
        Columns ``item, comparison, coefficient, setting, estimate, ci_low, ci_high, n``.
    """
    definition = get_scheme(scheme)
    items = list(definition.items) if items is None else items
    totals = [t.name for t in definition.totals] if totals is None else totals
    rows = []
    for name in [*items, *totals]:
        is_total = name in totals
        wide = score_matrix(readings, definition.name, name)
        chosen = sorted(wide.columns) if readers is None else list(readers)
        missing = [r for r in chosen if r not in wide.columns]
        if missing or len(chosen) < 2:
            raise AnalysisError(f"{definition.name} {name}: readers {chosen} requested, found {list(wide.columns)}")
        wide = wide[chosen]
        low, high = definition.total_range(name) if is_total else (definition.item(name).min, definition.item(name).max)
        categories = list(range(int(low), int(high) + 1))
        for first, second in combinations(chosen, 2):
            pair = wide[[first, second]].dropna()
            label = f"{first} vs {second}"
            for weights in ("quadratic", "linear"):
                est = cohen_kappa(pair[first], pair[second], weights=weights, categories=categories,
                                  confidence=confidence)  # fmt: skip
                rows.append((name, label, "weighted_kappa", weights, est.estimate, est.ci_low, est.ci_high, est.n))
            ba = bland_altman(pair[first], pair[second], confidence=confidence)
            for quantity, est in (("bias", ba.bias), ("lower_loa", ba.lower), ("upper_loa", ba.upper)):
                rows.append((name, label, "bland_altman", quantity, est.estimate, est.ci_low, est.ci_high, ba.n))
        complete = wide.dropna()
        everyone = "all readers" if len(chosen) > 2 else f"{chosen[0]} vs {chosen[1]}"
        long = complete.rename_axis("case").reset_index().melt(id_vars="case", var_name="reader", value_name="score")
        forms = icc(long, targets="case", raters="reader", ratings="score", confidence=confidence)
        for form, setting in (("ICC2", "ICC2 = ICC(A,1) absolute agreement"), ("ICC3", "ICC3 = ICC(C,1) consistency")):
            r = forms.loc[form]
            rows.append((name, everyone, "icc", setting, r["estimate"], r["ci_low"], r["ci_high"], len(complete)))
        level = "interval" if is_total else "ordinal"
        every = wide.rename_axis("case").reset_index().melt(id_vars="case", var_name="reader", value_name="score")
        alpha = krippendorff_alpha(every.dropna(subset=["score"]), subject="case", rater="reader", rating="score",
                                   level=level, categories=categories, confidence=confidence)  # fmt: skip
        rows.append((name, everyone, "krippendorff_alpha", level, alpha.estimate, alpha.ci_low, alpha.ci_high,
                     alpha.n))  # fmt: skip
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
