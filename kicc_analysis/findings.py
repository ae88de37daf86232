"""Structured CT findings: frequencies with confidence intervals, inter-reader agreement, association with outcome.

Input is a reader-score table (:func:`kicc_analysis.readings.read_reader_scores`) holding the schemes
``ct_findings``, ``rsna_ct`` and ``co_rads`` of :data:`kicc_analysis.readings.SCHEMES`. Every reading becomes a row
of 0/1 *indicators* (:data:`INDICATORS`: each finding present, each distribution, each RSNA category, each
CO-RADS level, three or more lobes); a patient's call is one reader's or the majority of the readers
(:func:`finding_calls`).

==========================  ==================================================================================
function                    what it gives
==========================  ==================================================================================
:func:`proportion_ci`       binomial CI: Wilson score (default; Wilson 1927, Newcombe 1998 method 3), or any
                            ``statsmodels.stats.proportion.proportion_confint`` method (``beta`` = Clopper-Pearson,
                            ``agresti_coull``, ``jeffreys``, ``normal`` = Wald, ``binom_test``)
:func:`finding_frequencies` count / n, proportion and CI per indicator, overall and per group (clinical severity,
                            :func:`onset_group` 0-4, 5-9, >= 10 days from symptom onset)
:func:`frequency_table`     the guideline-style table ``k/n (p %, lo-hi)`` with one column per group
:func:`agreement_indices`   2x2 indices of Byrt, Bishop & Carlin (J Clin Epidemiol 1993;46:423-429): observed
                            agreement, kappa, PABAK = 2 po - 1, prevalence index PI = (a - d) / n, bias index
                            BI = (b - c) / n; kappa = (PABAK - PI^2 + BI^2) / (1 - PI^2 + BI^2)
:func:`finding_agreement`   per indicator and reader pair: Cohen's kappa with its CI
                            (:func:`kicc_analysis.agreement.cohen_kappa`, Fleiss-Cohen-Everitt SE) and the indices
:func:`finding_outcome`     per indicator: odds ratio for the outcome adjusted for covariates (age by default),
                            logistic regression (statsmodels GLM binomial, Wald CI), with the number of tests and
                            Benjamini-Hochberg false-discovery-rate q-values (statsmodels ``multipletests``)
==========================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from kicc_analysis.errors import AnalysisError, ReadingsError
from kicc_analysis.readings.schemes import FINDING_ITEMS, SCHEMES

__all__ = [
    "CI_METHODS",
    "INDICATORS",
    "ONSET_GROUPS",
    "agreement_indices",
    "finding_agreement",
    "finding_calls",
    "finding_frequencies",
    "finding_outcome",
    "frequency_figure",
    "frequency_table",
    "onset_group",
    "proportion_ci",
    "reader_indicators",
]

CI_METHODS = ("wilson", "beta", "agresti_coull", "jeffreys", "normal", "binom_test")
ONSET_GROUPS = ("0-4", "5-9", ">=10")


def _indicators() -> dict[str, tuple[str, str, tuple[int, ...], str, str]]:
    """name -> (scheme, item, codes meaning 'yes', label, section)."""
    out: dict[str, tuple[str, str, tuple[int, ...], str, str]] = {}
    for name, text in FINDING_ITEMS.items():
        out[name] = ("ct_findings", name, (1,), text.split(" (")[0], "finding")
    for code, level in ((1, "peripheral"), (2, "central"), (3, "diffuse")):
        out[level] = ("ct_findings", "axial_distribution", (code,), f"{level} distribution", "distribution")
    out["lower_zone"] = ("ct_findings", "lower_zone", (1,), "lower-zone predominance", "distribution")
    out["unilateral"] = ("ct_findings", "laterality", (1,), "unilateral", "distribution")
    out["bilateral"] = ("ct_findings", "laterality", (2,), "bilateral", "distribution")
    out["lobes_3plus"] = ("ct_findings", "lobes_involved", (3, 4, 5), ">= 3 lobes involved", "distribution")
    for code, level in enumerate(SCHEMES["rsna_ct"].item("category").levels):
        out[f"rsna_{level}"] = ("rsna_ct", "category", (code,), f"RSNA {level}", "RSNA category")
    for code in range(1, 6):
        out[f"co_rads_{code}"] = ("co_rads", "co_rads", (code,), f"CO-RADS {code}", "CO-RADS")
    return out


#: indicator -> (scheme, item, codes meaning "yes", label, section)
INDICATORS: dict[str, tuple[str, str, tuple[int, ...], str, str]] = _indicators()


def reader_indicators(readings: pd.DataFrame) -> pd.DataFrame:
    """0/1 indicators of every reading: one row per (subject, study, reader), one column per :data:`INDICATORS`.

    A missing or invalid score (NaN, out of range: see :func:`kicc_analysis.readings.validate_readings`) gives a
    missing indicator (NaN), never 0.

    Examples
    --------
    >>> t = pd.DataFrame({"subject": "P1", "study": "", "reader": "R1", "scheme": ["ct_findings", "ct_findings"],
    ...                   "item": ["ggo", "laterality"], "score": [1, 2]})
    >>> reader_indicators(t).loc[0, ["ggo", "bilateral", "unilateral", "consolidation"]].astype(float).tolist()
    [1.0, 1.0, 0.0, nan]
    """
    needed = ("subject", "reader", "scheme", "item", "score")
    missing = [c for c in needed if c not in readings.columns]
    if missing:
        raise ReadingsError(f"finding readings lack columns {missing} (found {list(readings.columns)})")
    table = readings.copy()
    table["study"] = table["study"].fillna("").astype(str) if "study" in table.columns else ""
    table["score"] = pd.to_numeric(table["score"], errors="coerce")
    for scheme in ("ct_findings", "rsna_ct", "co_rads"):
        definition = SCHEMES[scheme]
        for item in definition.item_list:
            rows = (table["scheme"] == scheme) & (table["item"] == item.name)
            bad = rows & ((table["score"] < item.min) | (table["score"] > item.max) | (table["score"] % 1 != 0))
            table.loc[bad, "score"] = np.nan
    keys = ["subject", "study", "reader"]
    table = table.drop_duplicates([*keys, "scheme", "item"], keep=False)  # duplicates are reported by validation
    wide = table.pivot_table(index=keys, columns=["scheme", "item"], values="score", aggfunc="first", dropna=False)
    out = pd.DataFrame(index=wide.index)
    for name, (scheme, item, codes, _, _) in INDICATORS.items():
        if (scheme, item) in wide.columns:
            values = wide[(scheme, item)]
            out[name] = values.isin(codes).astype(float).where(values.notna())
        else:
            out[name] = np.nan
    if ("ct_findings", "lobes_involved") in wide.columns:
        out["lobes_involved"] = wide[("ct_findings", "lobes_involved")]
    return out.reset_index()


def finding_calls(readings: pd.DataFrame, reader: str = "majority") -> pd.DataFrame:
    """One call per (subject, study): one reader's indicators or the majority of the readers.

    Parameters
    ----------
    readings : DataFrame
        Reader-score table (common format).
    reader : str
        A reader code, or ``"majority"``: an indicator is 1 when more than half of the readers who recorded it say
        1, 0 when more than half say 0, missing on a tie (counted out of n, never guessed).
        ``lobes_involved`` is then the median over readers.

    Returns
    -------
    DataFrame
        ``subject, study, n_readers`` and one 0/1/NaN column per indicator (plus ``lobes_involved``).
    """
    per_reader = reader_indicators(readings)
    names = [c for c in per_reader.columns if c not in ("subject", "study", "reader")]
    if reader != "majority":
        chosen = per_reader[per_reader["reader"] == reader]
        if chosen.empty:
            known = ", ".join(sorted(per_reader["reader"].dropna().unique()))
            raise AnalysisError(f"finding_calls: no readings by reader {reader!r} (readers: {known})")
        return chosen.drop(columns="reader").assign(n_readers=1).reset_index(drop=True)
    grouped = per_reader.groupby(["subject", "study"], sort=True)
    share = grouped[[n for n in names if n != "lobes_involved"]].mean()
    calls = (share > 0.5).astype(float).where(share != 0.5).where(share.notna())
    if "lobes_involved" in names:
        calls["lobes_involved"] = grouped["lobes_involved"].median()
    calls.insert(0, "n_readers", grouped["reader"].nunique())
    return calls.reset_index()


def proportion_ci(count: Any, nobs: Any, method: str = "wilson", confidence: float = 0.95) -> tuple[Any, Any]:
    """Confidence interval of a binomial proportion ``count / nobs``.

    ``method`` is a ``statsmodels.stats.proportion.proportion_confint`` method: ``wilson`` (default, score
    interval), ``beta`` (Clopper-Pearson exact), ``agresti_coull``, ``jeffreys``, ``normal`` (Wald), ``binom_test``.

    Examples
    --------
    >>> [round(float(x), 4) for x in proportion_ci(81, 263)]  # Newcombe 1998, Table I, method 3
    [0.2553, 0.3662]
    """
    if method not in CI_METHODS:
        raise AnalysisError(f"proportion_ci: method {method!r} is not one of {', '.join(CI_METHODS)}")
    if not 0 < confidence < 1:
        raise AnalysisError(f"proportion_ci: confidence must lie in (0, 1), got {confidence!r}")
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, nobs, alpha=1 - confidence, method=method)
    # the score interval's closed form leaves rounding error at 0/n and n/n (e.g. 5.6e-17 above a proportion of 0):
    # a limit within 1e-12 beyond the observed proportion is set to it (Jeffreys' real 0/n lower limit > 0 stays)
    with np.errstate(invalid="ignore", divide="ignore"):
        proportion = np.asarray(count, dtype=float) / np.asarray(nobs, dtype=float)
    low = np.where((low > proportion) & (low - proportion < 1e-12), proportion, low)
    high = np.where((high < proportion) & (proportion - high < 1e-12), proportion, high)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def onset_group(days: Any) -> pd.Series:
    """Days from symptom onset to CT in the groups ``0-4``, ``5-9``, ``>=10`` (negative or missing: missing).

    >>> onset_group([0, 4, 4.5, 5, 9, 10, 30, -1, None]).tolist()
    ['0-4', '0-4', '0-4', '5-9', '5-9', '>=10', '>=10', nan, nan]
    """
    values = pd.to_numeric(pd.Series(days), errors="coerce")
    groups = pd.cut(values, [-0.5, 4.999999, 9.999999, np.inf], labels=list(ONSET_GROUPS), right=True)
    return groups.astype(object).where(values >= 0, np.nan)


def finding_frequencies(
    calls: pd.DataFrame,
    by: str | None = None,
    indicators: Sequence[str] | None = None,
    method: str = "wilson",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Frequency of each indicator with its confidence interval, overall or per level of ``by``.

    Parameters
    ----------
    calls : DataFrame
        One row per patient (:func:`finding_calls`, merged with the grouping column when ``by`` is given).
    by : str, optional
        Grouping column (e.g. ``sever_national`` or an :func:`onset_group` column); rows with a missing group are
        left out of the grouped rows and counted in ``n_missing_group``.
    indicators : sequence of str, optional
        Defaults to every :data:`INDICATORS` column present.
    method, confidence
        See :func:`proportion_ci`.

    Returns
    -------
    DataFrame
        ``indicator, label, section, by, group, count, n, proportion, ci_low, ci_high, method, n_missing_group``;
        ``n`` counts the patients with a call for the indicator.

    Examples
    --------
    >>> calls = pd.DataFrame({"ggo": [1, 1, 0, np.nan], "sev": ["mild", "severe", "mild", "mild"]})
    >>> finding_frequencies(calls, by="sev", indicators=["ggo"])[["group", "count", "n"]].values.tolist()
    [['mild', 1, 2], ['severe', 1, 1]]
    """
    names = list(indicators) if indicators is not None else [n for n in INDICATORS if n in calls.columns]
    absent = [n for n in names if n not in calls.columns]
    if absent:
        raise AnalysisError(f"finding_frequencies: indicators {absent} not in the calls (found {list(calls.columns)})")
    if by is not None and by not in calls.columns:
        raise AnalysisError(f"finding_frequencies: grouping column {by!r} not in the calls")
    if by is None:
        groups = [("all", calls)]
        n_missing = 0
    else:
        keep = calls[by].notna()
        n_missing = int((~keep).sum())
        groups = list(calls[keep].groupby(by, sort=True))
    rows = []
    for name in names:
        _, _, _, label, section = INDICATORS.get(name, ("", "", (), name, ""))
        for level, group in groups:
            values = pd.to_numeric(group[name], errors="coerce").dropna()
            k, n = int((values == 1).sum()), int(len(values))
            low, high = proportion_ci(k, n, method, confidence) if n else (np.nan, np.nan)
            rows.append({"indicator": name, "label": label, "section": section, "by": by or "", "group": level,
                         "count": k, "n": n, "proportion": k / n if n else np.nan, "ci_low": float(low),
                         "ci_high": float(high), "method": method, "n_missing_group": n_missing})  # fmt: skip
    return pd.DataFrame(rows)


def frequency_table(frequencies: pd.DataFrame, digits: int = 0) -> pd.DataFrame:
    """Guideline-style table: one row per indicator, one column per group, cells ``k/n (p %, lo-hi)``.

    >>> f = finding_frequencies(pd.DataFrame({"ggo": [1, 1, 0, 1]}), indicators=["ggo"])
    >>> frequency_table(f).iloc[0].tolist()
    ['3/4 (75 %, 30-95)']
    """

    def cell(row: pd.Series) -> str:
        if row["n"] == 0:
            return "0/0"
        pct = [f"{100 * row[c]:.{digits}f}" for c in ("proportion", "ci_low", "ci_high")]
        return f"{row['count']}/{row['n']} ({pct[0]} %, {pct[1]}-{pct[2]})"

    frame = frequencies.assign(cell=frequencies.apply(cell, axis=1))
    order = list(dict.fromkeys(frame["label"]))
    table = frame.pivot_table(index="label", columns="group", values="cell", aggfunc="first", sort=False)
    table = table.reindex(order)
    table.columns.name = None
    table.index.name = "finding"
    return table


def agreement_indices(table: Any) -> dict[str, float]:
    """Two readers' 2x2 agreement indices of Byrt, Bishop & Carlin (1993).

    Parameters
    ----------
    table : 2x2 array-like
        ``[[a, b], [c, d]]``: rows reader 1 (present, absent), columns reader 2 (present, absent).

    Returns
    -------
    dict
        ``n, po`` (observed agreement), ``kappa`` (Cohen), ``pabak`` (2 po - 1), ``prevalence_index`` (a - d) / n,
        ``bias_index`` (b - c) / n.

    Examples
    --------
    >>> {k: round(v, 4) for k, v in agreement_indices([[80, 10], [5, 5]]).items()}
    {'n': 100, 'po': 0.85, 'kappa': 0.3182, 'pabak': 0.7, 'prevalence_index': 0.75, 'bias_index': 0.05}
    """
    t = np.asarray(table, dtype=float)
    if t.shape != (2, 2) or (t < 0).any() or not np.isfinite(t).all():
        raise AnalysisError(f"agreement_indices: expected a 2x2 table of non-negative counts, got {t.tolist()}")
    (a, b), (c, d) = t
    n = t.sum()
    if n == 0:
        raise AnalysisError("agreement_indices: the 2x2 table is empty")
    po = (a + d) / n
    pe = ((a + b) * (a + c) + (c + d) * (b + d)) / n**2
    kappa = (po - pe) / (1 - pe) if pe < 1 else np.nan
    return {"n": int(n), "po": float(po), "kappa": float(kappa), "pabak": float(2 * po - 1),
            "prevalence_index": float((a - d) / n), "bias_index": float((b - c) / n)}  # fmt: skip


def finding_agreement(
    readings: pd.DataFrame, indicators: Sequence[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Inter-reader agreement per indicator and reader pair: Cohen's kappa with CI, PABAK, prevalence and bias
    indices, and each reader's frequency.

    Returns
    -------
    DataFrame
        ``indicator, label, reader_1, reader_2, n, positive_1, positive_2, po, kappa, ci_low, ci_high, se, pabak,
        prevalence_index, bias_index, convention``. Kappa is NaN (CI too) when it is undefined (both readers
        constant on the same value): the indices still describe the table.
    """
    from kicc_analysis.agreement import cohen_kappa

    per_reader = reader_indicators(readings)
    names = list(indicators) if indicators is not None else list(INDICATORS)
    readers = sorted(per_reader["reader"].dropna().unique())
    rows = []
    for first, second in combinations(readers, 2):
        left = per_reader[per_reader["reader"] == first].set_index(["subject", "study"])
        right = per_reader[per_reader["reader"] == second].set_index(["subject", "study"])
        both = left.join(right, how="inner", lsuffix="_1", rsuffix="_2")
        for name in names:
            pair = both[[f"{name}_1", f"{name}_2"]].dropna()
            if pair.empty:
                continue
            x, y = pair.iloc[:, 0].to_numpy(), pair.iloc[:, 1].to_numpy()
            t = [[np.sum((x == 1) & (y == 1)), np.sum((x == 1) & (y == 0))],
                 [np.sum((x == 0) & (y == 1)), np.sum((x == 0) & (y == 0))]]  # fmt: skip
            idx = agreement_indices(t)
            est_row = {"kappa": np.nan, "ci_low": np.nan, "ci_high": np.nan, "se": np.nan, "convention": ""}
            if np.isfinite(idx["kappa"]):
                est = cohen_kappa(table=np.array(t)[::-1, ::-1], categories=[0, 1], confidence=confidence)
                est_row = {"kappa": est.estimate, "ci_low": est.ci_low, "ci_high": est.ci_high, "se": est.se,
                           "convention": est.convention}  # fmt: skip
            rows.append({"indicator": name, "label": INDICATORS[name][3], "reader_1": first, "reader_2": second,
                         "n": idx["n"], "positive_1": int(x.sum()), "positive_2": int(y.sum()), "po": idx["po"],
                         **est_row, "pabak": idx["pabak"], "prevalence_index": idx["prevalence_index"],
                         "bias_index": idx["bias_index"]})  # fmt: skip
    columns = ["indicator", "label", "reader_1", "reader_2", "n", "positive_1", "positive_2", "po", "kappa",
               "ci_low", "ci_high", "se", "pabak", "prevalence_index", "bias_index", "convention"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def finding_outcome(
    data: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str] = ("demog_age",),
    indicators: Sequence[str] | None = None,
    confidence: float = 0.95,
    fdr: float = 0.05,
) -> pd.DataFrame:
    """Odds ratio of ``outcome`` for each indicator, adjusted for ``covariates`` (logistic regression).

    One model per indicator: ``logit P(outcome) = b0 + b1 indicator + covariates`` (statsmodels GLM binomial),
    OR = exp(b1) with its Wald CI. Patients with a missing outcome, indicator or covariate are left out of that
    model (``n`` says how many entered). An indicator that is constant among them, or that separates the outcome
    (no events, or all events, in one level), gets no estimate and a ``note``. The p-values of the fitted models
    are a family of ``n_tests`` tests; ``q_bh`` are Benjamini-Hochberg adjusted p-values and ``significant_bh``
    says which stay below ``fdr``.

    Returns
    -------
    DataFrame
        ``indicator, label, n, events, exposed, odds_ratio, ci_low, ci_high, p, q_bh, significant_bh, n_tests,
        adjusted_for, note``.
    """
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests

    needed = [outcome, *covariates]
    absent = [c for c in needed if c not in data.columns]
    if absent:
        raise AnalysisError(f"finding_outcome: columns {absent} not in the data")
    names = list(indicators) if indicators is not None else [n for n in INDICATORS if n in data.columns]
    z = float(norm.ppf(0.5 + confidence / 2))
    rows = []
    for name in names:
        frame = data[[name, *needed]].apply(pd.to_numeric, errors="coerce").dropna()
        y, x = frame[outcome].to_numpy(), frame[name].to_numpy()
        row = {"indicator": name, "label": INDICATORS.get(name, ("", "", (), name))[3], "n": len(frame),
               "events": int(y.sum()), "exposed": int(x.sum()), "odds_ratio": np.nan, "ci_low": np.nan,
               "ci_high": np.nan, "p": np.nan, "note": ""}  # fmt: skip
        if not set(np.unique(y)) <= {0, 1}:
            raise AnalysisError(f"finding_outcome: outcome {outcome!r} must be 0/1, found {sorted(np.unique(y))[:5]}")
        table = pd.crosstab(x, y).reindex(index=[0, 1], columns=[0, 1], fill_value=0)
        if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
            row["note"] = "indicator or outcome constant: not estimable"
        elif (table.to_numpy() == 0).any():
            row["note"] = f"a zero cell in the 2x2 table {table.to_numpy().tolist()} (separation): not estimable"
        else:
            design = sm.add_constant(frame[[name, *covariates]].astype(float), has_constant="add")
            fit = sm.GLM(y, design, family=sm.families.Binomial()).fit()
            beta, se = float(fit.params[name]), float(fit.bse[name])
            row.update(odds_ratio=np.exp(beta), ci_low=np.exp(beta - z * se), ci_high=np.exp(beta + z * se),
                       p=float(fit.pvalues[name]))  # fmt: skip
        rows.append(row)
    result = pd.DataFrame(rows)
    fitted = result["p"].notna()
    result["q_bh"] = np.nan
    result["significant_bh"] = False
    if fitted.any():
        reject, q, _, _ = multipletests(result.loc[fitted, "p"], alpha=fdr, method="fdr_bh")
        result.loc[fitted, "q_bh"] = q
        result.loc[fitted, "significant_bh"] = reject
    result["n_tests"] = int(fitted.sum())
    result["adjusted_for"] = ", ".join(covariates)
    order = ["indicator", "label", "n", "events", "exposed", "odds_ratio", "ci_low", "ci_high", "p", "q_bh",
             "significant_bh", "n_tests", "adjusted_for", "note"]  # fmt: skip
    return result[order]


def frequency_figure(frequencies: pd.DataFrame, title: str = "") -> Any:
    """Dot-and-interval figure of :func:`finding_frequencies` (one row per indicator, one colour per group).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(frequencies["label"]))
    groups = list(dict.fromkeys(frequencies["group"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(labels) + 1.2))
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    step = 0.7 / max(len(groups), 1)
    for i, group in enumerate(groups):
        sub = frequencies[frequencies["group"] == group].set_index("label").reindex(labels)
        ypos = np.arange(len(labels)) + (i - (len(groups) - 1) / 2) * step
        ax.errorbar(100 * sub["proportion"], ypos, xerr=[100 * (sub["proportion"] - sub["ci_low"]),
                    100 * (sub["ci_high"] - sub["proportion"])], fmt="o", ms=3, capsize=1.5, lw=0.8,
                    color=palette[i % len(palette)], label=str(group))  # fmt: skip
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    method = frequencies["method"].iloc[0] if len(frequencies) else ""
    ax.set_xlabel(f"patients with the finding (%), 95 % CI ({method})")
    if len(groups) > 1:
        ax.legend(fontsize=7, title=str(frequencies["by"].iloc[0]), title_fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
