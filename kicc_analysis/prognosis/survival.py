"""Kaplan–Meier estimation and the log-rank family of tests.

Conventions
-----------
* Kaplan–Meier variance: Greenwood. ``se`` is the standard error of S(t)
  (``S * sqrt(sum d / (n (n - d)))``), as printed by R ``survfit``.
* Confidence intervals: ``conf_type="log"`` (R ``survfit`` default:
  ``S * exp(+-z * se(log S))``, upper limit capped at 1), ``"log-log"``
  (lifelines' default, ``S ** exp(+-z * se(log S) / log S)``) or ``"plain"``.
* Median survival: smallest time with S(t) <= 0.5; when S(t) equals 0.5
  exactly over an interval the midpoint of that interval is reported (R).
  Its CI is read off the confidence bands in the same way (R ``survfit``,
  Brookmeyer–Crowley style).
* Log-rank family (``weights``): ``"logrank"`` (w = 1, R ``survdiff(rho=0)``),
  ``"wilcoxon"``/``"gehan"`` (w = n at risk, Gehan–Breslow), ``"tarone-ware"``
  (w = sqrt(n)), ``"peto"`` (w = prod(1 - d / (n + 1)), Peto–Peto as in Klein &
  Moeschberger 2003 §7.3), ``"fleming-harrington"`` (w = S(t-)^p (1 - S(t-))^q
  with the pooled KM left limit; p = 1, q = 0 reproduces R ``survdiff(rho=1)``).
  Variance is the hypergeometric one; stratified tests sum the score and
  variance over strata (R ``survdiff(... + strata(s))``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_survival, complete_mask

__all__ = ["KaplanMeier", "LogRankResult", "kaplan_meier", "logrank", "km_table", "median_survival"]


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan–Meier estimate of one group.

    ``table`` has one row per distinct time with an event or censoring:
    ``time, n_risk, n_event, n_censor, surv, se, ci_low, ci_high``.
    """

    table: pd.DataFrame
    group: Any
    conf_type: str
    confidence: float
    median: float
    median_ci: tuple[float, float]

    def survival_at(self, times: Any) -> np.ndarray:
        """S(t) at arbitrary ``times`` (right-continuous step function)."""
        t = np.atleast_1d(np.asarray(times, dtype=float))
        idx = np.searchsorted(self.table["time"].to_numpy(), t, side="right") - 1
        surv = np.r_[1.0, self.table["surv"].to_numpy()]
        return surv[idx + 1]

    @property
    def events(self) -> pd.DataFrame:
        """Rows at event times only (the R ``summary(survfit)`` layout)."""
        return self.table[self.table["n_event"] > 0].reset_index(drop=True)


def _km_counts(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct times with numbers at risk, events and censorings (vectorised)."""
    utimes, inverse = np.unique(time, return_inverse=True)
    n_event = np.bincount(inverse, weights=event, minlength=len(utimes))
    n_total = np.bincount(inverse, minlength=len(utimes)).astype(float)
    n_risk = n_total[::-1].cumsum()[::-1]
    return utimes, n_risk, n_event, n_total - n_event


def _conf_band(surv: np.ndarray, var_log: np.ndarray, z: float, conf_type: str) -> tuple[np.ndarray, np.ndarray]:
    se_log = np.sqrt(var_log)
    with np.errstate(divide="ignore", invalid="ignore"):
        if conf_type == "log":
            low, high = surv * np.exp(-z * se_log), np.minimum(surv * np.exp(z * se_log), 1.0)
        elif conf_type == "log-log":
            loglog_se = se_log / np.abs(np.log(surv))
            low, high = surv ** np.exp(z * loglog_se), surv ** np.exp(-z * loglog_se)
        elif conf_type == "plain":
            se = surv * se_log
            low, high = np.maximum(surv - z * se, 0.0), np.minimum(surv + z * se, 1.0)
        else:
            raise AnalysisError(f"conf_type must be 'log', 'log-log' or 'plain', found {conf_type!r}")
    # Where S = 0 or S = 1 the band collapses (R: NA when S = 0 on the log scale).
    low = np.where(surv == 0, np.nan if conf_type != "plain" else 0.0, low)
    high = np.where(surv == 0, np.nan if conf_type != "plain" else 0.0, high)
    low = np.where(surv == 1, 1.0, low)
    high = np.where(surv == 1, 1.0, high)
    return low, high


def _first_crossing(times: np.ndarray, curve: np.ndarray, level: float = 0.5) -> float:
    """R's quantile rule: first time the step curve drops to <= level, midpoint on an exact plateau."""
    ok = ~np.isnan(curve)
    times, curve = times[ok], curve[ok]
    below = np.nonzero(curve <= level + 1e-12)[0]
    if len(below) == 0:
        return float("nan")
    i = below[0]
    if abs(curve[i] - level) < 1e-12:
        later = np.nonzero(curve < level - 1e-12)[0]
        if len(later):
            return float((times[i] + times[later[0]]) / 2)
    return float(times[i])


def median_survival(km: KaplanMeier) -> tuple[float, float, float]:
    """Return (median, ci_low, ci_high) of a fitted Kaplan–Meier curve."""
    return km.median, km.median_ci[0], km.median_ci[1]


def _fit_one(time: np.ndarray, event: np.ndarray, group: Any, conf_type: str, confidence: float) -> KaplanMeier:
    utimes, n_risk, n_event, n_censor = _km_counts(time, event)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - n_event / n_risk)
        terms = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    var_log = np.cumsum(terms)
    with np.errstate(invalid="ignore"):
        se = np.where(surv > 0, surv * np.sqrt(var_log), np.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    low, high = _conf_band(surv, var_log, z, conf_type)
    table = pd.DataFrame(
        {
            "time": utimes,
            "n_risk": n_risk.astype(int),
            "n_event": n_event.astype(int),
            "n_censor": n_censor.astype(int),
            "surv": surv,
            "se": se,
            "ci_low": low,
            "ci_high": high,
        }
    )
    ev = n_event > 0
    median = _first_crossing(utimes[ev], surv[ev])
    med_low = _first_crossing(utimes[ev], low[ev])
    med_high = _first_crossing(utimes[ev], high[ev])
    return KaplanMeier(table, group, conf_type, confidence, median, (med_low, med_high))


def kaplan_meier(
    time: Any,
    event: Any,
    group: Any = None,
    *,
    conf_type: str = "log",
    confidence: float = 0.95,
) -> KaplanMeier | dict[Any, KaplanMeier]:
    """Kaplan–Meier survival curve(s) with Greenwood CIs and median survival.

    Parameters
    ----------
    time : array-like
        Follow-up time (any unit, e.g. days) per subject.
    event : array-like of 0/1
        1 = event observed at ``time``, 0 = censored.
    group : array-like, optional
        Group label per subject; when given a dict ``{label: KaplanMeier}`` is returned.
    conf_type : {"log", "log-log", "plain"}
        Scale of the pointwise CI; ``"log"`` is R's default.
    confidence : float
        Confidence level of the pointwise CIs and of the median CI.

    Returns
    -------
    KaplanMeier or dict of KaplanMeier

    Examples
    --------
    >>> km = kaplan_meier([6, 6, 7, 10], [1, 0, 1, 1])
    >>> km.events["surv"].round(3).tolist()
    [0.75, 0.375, 0.0]
    """
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    g = None if group is None else np.asarray(group, dtype=object)
    keep = complete_mask("kaplan_meier", time=t, event=e, group=g)
    t, e = t[keep], e[keep]
    check_survival(t, e, "kaplan_meier")
    if g is None:
        return _fit_one(t, e, None, conf_type, confidence)
    g = g[keep]
    labels = group_order(group, g)
    return {lab: _fit_one(t[g == lab], e[g == lab], lab, conf_type, confidence) for lab in labels}


def group_order(original: Any, present: np.ndarray) -> list[Any]:
    """Group labels in display order: category order for a pandas Categorical, else sorted."""
    seen = set(pd.unique(present).tolist())
    dtype = getattr(original, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        return [c for c in dtype.categories if c in seen]
    try:
        return sorted(seen)
    except TypeError:
        return sorted(seen, key=str)


def km_table(fits: KaplanMeier | dict[Any, KaplanMeier]) -> pd.DataFrame:
    """Summary table: n, events, median and its CI per group."""
    if isinstance(fits, KaplanMeier):
        fits = {"all": fits}
    rows = []
    for lab, km in fits.items():
        rows.append(
            {
                "group": lab,
                "n": int(km.table["n_risk"].iloc[0]),
                "events": int(km.table["n_event"].sum()),
                "median": km.median,
                "median_ci_low": km.median_ci[0],
                "median_ci_high": km.median_ci[1],
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class LogRankResult:
    """Result of a (weighted, possibly stratified) k-sample log-rank test."""

    chisq: float
    df: int
    p: float
    weights: str
    table: pd.DataFrame  # per group: n, observed, expected, (O-E)
    variance: np.ndarray = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"test": self.weights, "chisq": self.chisq, "df": self.df, "p": self.p}])


def _weights(kind: str, n_risk: np.ndarray, n_event: np.ndarray, p: float, q: float) -> np.ndarray:
    kind = kind.lower().replace("_", "-")
    if kind in ("logrank", "log-rank", "mantel-haenszel"):
        return np.ones_like(n_risk)
    if kind in ("wilcoxon", "gehan", "gehan-breslow", "breslow"):
        return n_risk.copy()
    if kind == "tarone-ware":
        return np.sqrt(n_risk)
    if kind in ("peto", "peto-peto"):
        return np.cumprod(1.0 - n_event / (n_risk + 1.0))
    if kind in ("fleming-harrington", "fh"):
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.cumprod(np.where(n_risk > 0, 1.0 - n_event / n_risk, 1.0))
        s_left = np.r_[1.0, s[:-1]]
        return s_left**p * (1.0 - s_left) ** q
    raise AnalysisError(
        f"weights must be one of logrank, wilcoxon, tarone-ware, peto, fleming-harrington; found {kind!r}"
    )


def _score_and_variance(
    time: np.ndarray, event: np.ndarray, gidx: np.ndarray, k: int, kind: str, p: float, q: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    utimes, inverse = np.unique(time, return_inverse=True)
    m = len(utimes)
    # counts per (time, group)
    cell = inverse * k + gidx
    d_tg = np.bincount(cell, weights=event, minlength=m * k).reshape(m, k)
    n_tg_at = np.bincount(cell, minlength=m * k).reshape(m, k).astype(float)
    r_tg = n_tg_at[::-1].cumsum(axis=0)[::-1]
    d = d_tg.sum(axis=1)
    r = r_tg.sum(axis=1)
    has = d > 0
    d_tg, r_tg, d, r = d_tg[has], r_tg[has], d[has], r[has]
    w = _weights(kind, r, d, p, q)
    e_tg = r_tg * (d / r)[:, None]
    score = (w[:, None] * (d_tg - e_tg)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(r > 1, w**2 * d * (r - d) / (r - 1) / r, 0.0)
    var = np.diag((c[:, None] * r_tg).sum(axis=0))
    var = var - np.einsum("t,tg,th->gh", c / r, r_tg, r_tg)
    return score, var, d_tg.sum(axis=0), e_tg.sum(axis=0)


def logrank(
    time: Any,
    event: Any,
    group: Any,
    *,
    strata: Any = None,
    weights: str = "logrank",
    p: float = 1.0,
    q: float = 0.0,
) -> LogRankResult:
    """k-sample log-rank test and its weighted variants, optionally stratified.

    Parameters
    ----------
    time, event : array-like
        Follow-up time and 0/1 event indicator per subject.
    group : array-like
        Group label per subject (two or more groups).
    strata : array-like, optional
        Stratum per subject; score and variance are summed over strata.
    weights : str
        ``"logrank"`` (default), ``"wilcoxon"`` (Gehan–Breslow), ``"tarone-ware"``,
        ``"peto"`` (Peto–Peto) or ``"fleming-harrington"`` (with ``p``, ``q``).
    p, q : float
        Fleming–Harrington exponents (``p=rho`` of R ``survdiff`` with ``q=0``).

    Returns
    -------
    LogRankResult
        ``chisq`` on ``k - 1`` df, ``p`` and a per-group table of observed and
        expected events (for the unweighted test these are R's ``O`` and ``E``).
    """
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    g = np.asarray(group, dtype=object)
    s = None if strata is None else np.asarray(strata, dtype=object)
    keep = complete_mask("logrank", time=t, event=e, group=g, strata=s)
    t, e, g = t[keep], e[keep], g[keep]
    check_survival(t, e, "logrank")
    labels, gidx = np.unique(g.astype(str), return_inverse=True)
    k = len(labels)
    if k < 2:
        raise AnalysisError(f"logrank: at least two groups are needed, found {labels.tolist()}")
    s = np.zeros(len(t)) if s is None else s[keep]
    score = np.zeros(k)
    var = np.zeros((k, k))
    obs = np.zeros(k)
    exp = np.zeros(k)
    for stratum in pd.unique(s):
        sel = s == stratum
        u, v, o, ex = _score_and_variance(t[sel], e[sel], gidx[sel], k, weights, p, q)
        score += u
        var += v
        obs += o
        exp += ex
    sub = slice(0, k - 1)
    chisq = float(score[sub] @ np.linalg.pinv(var[sub, sub]) @ score[sub])
    df = int(np.linalg.matrix_rank(var[sub, sub]))
    table = pd.DataFrame(
        {
            "group": labels,
            "n": np.bincount(gidx, minlength=k),
            "observed": obs,
            "expected": exp,
            "weighted_o_minus_e": score,
        }
    )
    return LogRankResult(chisq, df, float(stats.chi2.sf(chisq, df)), weights, table, var)
