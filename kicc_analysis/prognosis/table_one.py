"""Baseline characteristics table ("Table 1").

Conventions (R ``tableone::CreateTableOne`` unless stated)
----------------------------------------------------------
* Continuous, normal: mean (SD), SD with ddof = 1 on available cases;
  p-value from one-way ANOVA (= two-sample t-test with equal variances for two groups).
* Continuous, ``nonnormal``: median [Q1, Q3] (quantile type 7); p from Kruskal–Wallis
  (= Wilcoxon rank-sum for two groups).
* Categorical: n (%) per level, percentages of the non-missing values; p from
  Pearson's chi-square (continuity-corrected for 2x2 tables as R ``chisq.test``);
  Fisher's exact test on request: ``exact="auto"`` (2x2 tables with an expected count < 5)
  or ``"always"`` (default ``"never"``, as tableone without ``exact=``).
* Missing values are never dropped silently: a ``missing`` column gives the
  count per variable (overall).
* SMD: continuous ``(m1 - m2) / sqrt((s1^2 + s2^2) / 2)``; categorical the
  multinomial Yang & Dalton (2012) SMD; with > 2 groups the mean of the pairwise
  absolute SMDs (tableone).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import check_columns

__all__ = ["TableOne", "table_one"]


@dataclass(frozen=True)
class TableOne:
    """Result of :func:`table_one`.

    ``table`` is the formatted publication table (strings); ``stats`` the
    numeric long table (``variable, level, group, n, mean, sd, median, q1, q3,
    count, pct, missing``); ``tests`` one row per variable (``test, p, smd``).
    """

    table: pd.DataFrame
    stats: pd.DataFrame
    tests: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table


def _smd_cont(a: pd.Series, b: pd.Series) -> float:
    den = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float(abs(a.mean() - b.mean()) / den) if den > 0 else np.nan


def _smd_cat(a: pd.Series, b: pd.Series, levels: list[Any]) -> float:
    """Yang & Dalton multinomial SMD (levels beyond the first)."""
    p1 = np.array([(a == lv).mean() for lv in levels])[1:]
    p2 = np.array([(b == lv).mean() for lv in levels])[1:]
    k = len(p1)
    if k == 0:
        return np.nan
    s = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            if i == j:
                s[i, j] = (p1[i] * (1 - p1[i]) + p2[i] * (1 - p2[i])) / 2
            else:
                s[i, j] = (p1[i] * p1[j] + p2[i] * p2[j]) / -2
    diff = p1 - p2
    try:
        val = float(diff @ np.linalg.pinv(s) @ diff)
    except np.linalg.LinAlgError:
        return np.nan
    return float(np.sqrt(max(val, 0.0)))


def _fmt(value: float, decimals: int) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_one(
    cohort: pd.DataFrame,
    groupby: str | None,
    variables: Sequence[str],
    nonnormal: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    labels: dict[str, str] | None = None,
    decimals: int = 2,
    exact: str = "never",
    overall: bool = True,
) -> TableOne:
    """Baseline table by group with tests and standardised mean differences.

    Parameters
    ----------
    cohort : DataFrame
        One row per patient.
    groupby : str or None
        Grouping column (e.g. outcome); ``None`` gives the overall column only.
        Rows with a missing group are reported in the ``n`` row as excluded.
    variables : sequence of str
        Variables to summarise, in table order.
    nonnormal : sequence of str
        Continuous variables summarised as median [IQR] and tested non-parametrically.
    categorical : sequence of str
        Variables summarised as n (%) per level (object/bool/category columns are
        treated as categorical automatically).
    labels : dict, optional
        Display labels (with units) per variable.
    decimals : int
        Decimals of continuous summaries (percentages use 1).
    exact : {"never", "auto", "always"}
        Fisher's exact test for 2x2 tables: never (R tableone default), when an expected count < 5, or always.
    overall : bool
        Include the overall column.

    Returns
    -------
    TableOne
    """
    variables = list(variables)
    if exact not in ("never", "auto", "always"):
        raise AnalysisError(f"table_one: exact must be 'never', 'auto' or 'always', found {exact!r}")
    check_columns(cohort, [*variables, *([groupby] if groupby else [])], "table_one")
    labels = labels or {}
    if groupby is not None:
        gcol = cohort[groupby]
        if isinstance(gcol.dtype, pd.CategoricalDtype):  # keep the declared order (e.g. Mild < ... < Critical)
            groups = [g for g in gcol.cat.categories if (gcol == g).any()]
        else:
            groups = sorted(gcol.dropna().unique().tolist())
        if len(groups) < 2:
            raise AnalysisError(f"table_one: groupby={groupby!r} has fewer than two groups: {groups}")
        frames = {str(g): cohort[gcol == g] for g in groups}
        n_missing_group = int(gcol.isna().sum())
    else:
        frames = {}
        n_missing_group = 0
    columns = (["Overall"] if overall or not frames else []) + list(frames)
    all_frames = {"Overall": cohort, **frames}
    cat_set = set(categorical)
    for v in variables:
        if v not in cat_set and not pd.api.types.is_numeric_dtype(cohort[v]):
            cat_set.add(v)
    rows: list[dict[str, Any]] = []
    stat_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    head = {"variable": "n", "level": ""}
    for c in columns:
        head[c] = str(len(all_frames[c]))
    head.update({"p": "", "test": "", "smd": "", "missing": str(n_missing_group) if n_missing_group else ""})
    rows.append(head)
    group_frames = list(frames.values())
    for v in variables:
        label = labels.get(v, v)
        missing = int(cohort[v].isna().sum())
        if v in cat_set:
            if isinstance(cohort[v].dtype, pd.CategoricalDtype):
                levels = [lv for lv in cohort[v].cat.categories if (cohort[v] == lv).any()]
            else:
                levels = sorted(cohort[v].dropna().unique().tolist(), key=lambda x: (str(type(x)), x))
            p, test, smd = np.nan, "", np.nan
            if group_frames:
                ct = np.array([[int((f[v] == lv).sum()) for f in group_frames] for lv in levels])
                ct = ct[ct.sum(axis=1) > 0]
                if ct.shape[0] >= 2:
                    expected = stats.contingency.expected_freq(ct)
                    use_exact = ct.shape == (2, 2) and (exact == "always" or (exact == "auto" and (expected < 5).any()))
                    if use_exact:
                        p, test = float(stats.fisher_exact(ct)[1]), "Fisher exact"
                    else:
                        p = float(stats.chi2_contingency(ct, correction=True)[1])
                        test = "chi-square"
                pairs = list(itertools.combinations(group_frames, 2))
                smd = float(np.mean([_smd_cat(a[v].dropna(), b[v].dropna(), levels) for a, b in pairs]))
            test_rows.append({"variable": v, "test": test, "p": p, "smd": smd, "missing": missing})
            first = True
            for lv in levels:
                row = {"variable": f"{label}, n (%)" if first else "", "level": str(lv)}
                for c in columns:
                    col = all_frames[c][v]
                    n_ok = int(col.notna().sum())
                    cnt = int((col == lv).sum())
                    pct = 100 * cnt / n_ok if n_ok else np.nan
                    row[c] = f"{cnt} ({_fmt(pct, 1)})"
                    stat_rows.append(
                        {
                            "variable": v,
                            "level": lv,
                            "group": c,
                            "n": n_ok,
                            "count": cnt,
                            "pct": pct,
                            "missing": int(col.isna().sum()),
                        }
                    )
                row.update(
                    {"p": _fmt_p(p) if first else "", "test": test if first else "", "smd": _fmt(smd, 3) if first else "",
                     "missing": str(missing) if first else ""}
                )  # fmt: skip
                rows.append(row)
                first = False
        else:
            is_nn = v in nonnormal
            row = {"variable": f"{label}, {'median [IQR]' if is_nn else 'mean (SD)'}", "level": ""}
            for c in columns:
                col = pd.to_numeric(all_frames[c][v], errors="coerce").astype(float).dropna()
                q1, med, q3 = np.quantile(col, [0.25, 0.5, 0.75]) if len(col) else (np.nan,) * 3
                mean, sd = (float(col.mean()), float(col.std(ddof=1))) if len(col) else (np.nan, np.nan)
                row[c] = (
                    f"{_fmt(med, decimals)} [{_fmt(q1, decimals)}, {_fmt(q3, decimals)}]"
                    if is_nn
                    else f"{_fmt(mean, decimals)} ({_fmt(sd, decimals)})"
                )
                stat_rows.append(
                    {"variable": v, "level": "", "group": c, "n": len(col), "mean": mean, "sd": sd, "median": med,
                     "q1": q1, "q3": q3, "missing": int(all_frames[c][v].isna().sum())}
                )  # fmt: skip
            p, test, smd = np.nan, "", np.nan
            if group_frames:
                samples = [pd.to_numeric(f[v], errors="coerce").astype(float).dropna() for f in group_frames]
                if all(len(s) >= 2 for s in samples):
                    if is_nn:
                        p, test = float(stats.kruskal(*samples).pvalue), "Kruskal-Wallis"
                    else:
                        p, test = float(stats.f_oneway(*samples).pvalue), "ANOVA"
                    pairs = list(itertools.combinations(samples, 2))
                    smd = float(np.mean([_smd_cont(a, b) for a, b in pairs]))
            test_rows.append({"variable": v, "test": test, "p": p, "smd": smd, "missing": missing})
            row.update({"p": _fmt_p(p), "test": test, "smd": _fmt(smd, 3), "missing": str(missing)})
            rows.append(row)
    table = pd.DataFrame(rows)
    if not group_frames:
        table = table.drop(columns=["p", "test", "smd"])
    return TableOne(table, pd.DataFrame(stat_rows), pd.DataFrame(test_rows))
