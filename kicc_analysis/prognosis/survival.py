"""Kaplan–Meier estimation, survival quantiles and the log-rank family of tests.

Conventions
-----------
* Product limit from the package's one core (:mod:`kicc_analysis.prognosis._km`, censorings tied with
  deaths stay at risk at the death time, as R ``survfit`` and SAS ``LIFETEST``).
* Kaplan–Meier variance: Greenwood. ``se`` is the standard error of S(t)
  (``S * sqrt(sum d / (n (n - d)))``), as printed by R ``survfit`` and SAS.
* Pointwise confidence intervals, ``conf_type`` (R ``survfit(conf.type=)`` name / SAS ``CONFTYPE=`` name):
  ``"log"`` (default, R's default; SAS ``LOG``): ``S exp(+-z se_log)``, upper limit capped at 1;
  ``"log-log"`` (SAS's and lifelines' default; SAS ``LOGLOG``, statsmodels ``cloglog``): ``S ** exp(+-z se_log / log S)``;
  ``"plain"`` (SAS ``LINEAR``): ``S +- z se`` clipped to [0, 1];
  ``"logit"`` (SAS ``LOGIT``): ``logit S +- z se_log / (1 - S)``;
  ``"arcsin"`` (SAS ``ASINSQRT``): ``asin(sqrt S) +- z se_log sqrt(S / (1 - S)) / 2`` (limits kept in [0, pi/2]).
  ``se_log = sqrt(sum d / (n (n - d)))``; SAS names are accepted as aliases.
* Quantiles (:meth:`KaplanMeier.quantiles`; 25th, 50th, 75th percentile = times where S drops to 0.75,
  0.5, 0.25): smallest event time with S(t) <= 1 - p; when S(t) equals 1 - p exactly over an interval the
  midpoint of that interval is reported (R ``quantile.survfit``, SAS LIFETEST). Brookmeyer–Crowley CI
  (generalised to any p and transform, Klein & Moeschberger 1997 §4.5): the set of event times whose
  transformed pointwise interval contains 1 - p, i.e. the lower limit is where the lower band reaches
  1 - p and the upper limit where the upper band does (NaN when it never does; R prints NA, SAS ".").
  This is R ``quantile(survfit(..., conf.type=))`` and SAS ``LIFETEST CONFTYPE=`` "Quartile Estimates".
* Log-rank family (``weights``): ``"logrank"`` (w = 1, R ``survdiff(rho=0)``), ``"wilcoxon"``/``"gehan"``
  (w = n at risk, Gehan–Breslow), ``"tarone-ware"`` (w = sqrt(n)), ``"peto"`` (w = prod(1 - d / (n + 1)),
  Peto–Peto as in Klein & Moeschberger 2003 §7.3), ``"fleming-harrington"`` (w = S(t-)^p (1 - S(t-))^q
  with the pooled KM left limit; p = 1, q = 0 reproduces R ``survdiff(rho=1)``).
  Variance is the hypergeometric one; stratified tests sum the score and
  variance over strata (R ``survdiff(... + strata(s))``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_survival, complete_mask
from kicc_analysis.prognosis._km import product_limit, step_right, survival_from_counts
from kicc_analysis.results import Estimate

__all__ = [
    "CONF_TYPES", "KaplanMeier", "KaplanMeierFit", "LogRankResult", "kaplan_meier", "logrank", "km_table",
    "median_survival",
]  # fmt: skip

#: canonical pointwise-CI transforms (R ``survfit`` names) and their accepted aliases (SAS, statsmodels)
CONF_TYPES = {
    "log": "log", "log-log": "log-log", "loglog": "log-log", "cloglog": "log-log", "plain": "plain",
    "linear": "plain", "logit": "logit", "arcsin": "arcsin", "asinsqrt": "arcsin",
}  # fmt: skip
_SAS_NAME = {"log": "LOG", "log-log": "LOGLOG", "plain": "LINEAR", "logit": "LOGIT", "arcsin": "ASINSQRT"}


def _conf_type(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    if key not in CONF_TYPES:
        raise AnalysisError(
            f"conf_type must be one of log, log-log, plain, logit, arcsin (or SAS LOG, LOGLOG, LINEAR, LOGIT, "
            f"ASINSQRT); found {name!r}"
        )
    return CONF_TYPES[key]


def _conf_band(surv: np.ndarray, var_log: np.ndarray, z: float, conf_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI of S under ``conf_type`` (canonical name); R ``survfit`` ``survfit_confint``."""
    se_log = np.sqrt(var_log)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if conf_type == "log":
            low, high = surv * np.exp(-z * se_log), np.minimum(surv * np.exp(z * se_log), 1.0)
        elif conf_type == "log-log":
            loglog_se = se_log / np.abs(np.log(surv))
            low, high = surv ** np.exp(z * loglog_se), surv ** np.exp(-z * loglog_se)
        elif conf_type == "plain":
            se = surv * se_log
            low, high = np.maximum(surv - z * se, 0.0), np.minimum(surv + z * se, 1.0)
        elif conf_type == "logit":
            centre = np.log(surv / (1 - surv))
            half = z * se_log / (1 - surv)
            low, high = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
        elif conf_type == "arcsin":
            centre = np.arcsin(np.sqrt(surv))
            half = 0.5 * z * se_log * np.sqrt(surv / (1 - surv))
            low = np.sin(np.maximum(0.0, centre - half)) ** 2
            high = np.sin(np.minimum(np.pi / 2, centre + half)) ** 2
        else:  # pragma: no cover - names are canonicalised by _conf_type
            raise AnalysisError(f"unknown conf_type {conf_type!r}")
    # Where S = 0 or S = 1 the band collapses (R: NA when S = 0 except on the plain scale).
    low = np.where(surv == 0, np.nan if conf_type != "plain" else 0.0, low)
    high = np.where(surv == 0, np.nan if conf_type != "plain" else 0.0, high)
    low = np.where(surv == 1, 1.0, low)
    high = np.where(surv == 1, 1.0, high)
    return low, high


def _first_crossing(times: np.ndarray, curve: np.ndarray, level: float = 0.5) -> float:
    """R's quantile rule: first time the step curve drops to <= level, midpoint on an exact plateau."""
    below = curve <= level + 1e-12  # NaN compares False: undefined band values are skipped
    if not below.any():  # never reaches the level, or no step at all (a group without events)
        return float("nan")
    i = int(np.argmax(below))
    if abs(curve[i] - level) < 1e-12:
        later = curve[i:] < level - 1e-12
        j = int(np.argmax(later))
        if later[j]:
            return float((times[i] + times[i + j]) / 2)
    return float(times[i])


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan–Meier estimate of one group.

    ``table`` (built on first access) has one row per distinct time with an event or censoring:
    ``time, n_risk, n_event, n_censor, surv, se, ci_low, ci_high`` (CI under ``conf_type``); ``curve``
    holds the same columns as NumPy arrays.
    """

    curve: dict[str, np.ndarray] = field(repr=False, compare=False)
    group: Any
    conf_type: str
    confidence: float
    median: float
    median_ci: tuple[float, float]
    var_log: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    _table: list[pd.DataFrame] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def table(self) -> pd.DataFrame:
        """The curve as a DataFrame (built once, on first access)."""
        if not self._table:
            frame = pd.DataFrame(self.curve)
            for col in ("n_risk", "n_event", "n_censor"):
                frame[col] = frame[col].astype(int)
            self._table.append(frame)
        return self._table[0]

    @property
    def n(self) -> int:
        """Subjects in the curve."""
        return int(self.curve["n_risk"][0]) if len(self.curve["n_risk"]) else 0

    @property
    def n_events(self) -> int:
        """Events in the curve."""
        return int(self.curve["n_event"].sum())

    def survival_at(self, times: Any) -> np.ndarray:
        """S(t) at arbitrary ``times`` (right-continuous step function)."""
        return step_right(self.curve["time"], self.curve["surv"], np.atleast_1d(times))

    @property
    def events(self) -> pd.DataFrame:
        """Rows at event times only (the R ``summary(survfit)`` layout)."""
        return self.table[self.table["n_event"] > 0].reset_index(drop=True)

    def confidence_band(self, conf_type: str | None = None, confidence: float | None = None) -> pd.DataFrame:
        """Pointwise CI of S(t) under another transform: ``time, surv, se, ci_low, ci_high``.

        Parameters
        ----------
        conf_type : str, optional
            ``"log"``, ``"log-log"``, ``"plain"``, ``"logit"``, ``"arcsin"`` or a SAS name (default: the fit's).
        confidence : float, optional
            Confidence level (default: the fit's).
        """
        ct = _conf_type(conf_type or self.conf_type)
        z = stats.norm.ppf(0.5 + (confidence or self.confidence) / 2)
        low, high = _conf_band(self.curve["surv"], self.var_log, z, ct)
        return pd.DataFrame({"time": self.curve["time"], "surv": self.curve["surv"], "se": self.curve["se"],
                             "ci_low": low, "ci_high": high})  # fmt: skip

    def quantiles(
        self, probs: Sequence[float] = (0.25, 0.5, 0.75), conf_type: str | None = None,
        confidence: float | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Survival-time percentiles with Brookmeyer–Crowley CIs.

        Parameters
        ----------
        probs : sequence of float
            Percentiles as fractions: 0.25 is the time by which 25 % have had the event (S = 0.75).
        conf_type : str, optional
            Transform of the CI (see the module notes; default: the fit's ``conf_type``).
        confidence : float, optional
            Confidence level (default: the fit's).

        Returns
        -------
        DataFrame
            ``prob, time, ci_low, ci_high, conf_type`` (time units of the input; NaN where not reached).

        Examples
        --------
        >>> km = kaplan_meier([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 0, 1, 1, 0, 1, 1])
        >>> km.quantiles(conf_type="log-log")["time"].tolist()
        [3.0, 5.0, 7.0]
        """
        ct = _conf_type(conf_type or self.conf_type)
        level_ci = confidence or self.confidence
        ev = self.curve["n_event"] > 0
        t = self.curve["time"][ev]
        surv = self.curve["surv"][ev]
        if ct == self.conf_type and level_ci == self.confidence:  # the fit's own band
            low, high = self.curve["ci_low"][ev], self.curve["ci_high"][ev]
        else:
            low, high = _conf_band(surv, self.var_log[ev], stats.norm.ppf(0.5 + level_ci / 2), ct)
        rows = []
        for p in probs:
            if not 0 < p < 1:
                raise AnalysisError(f"quantiles: probs must lie in (0, 1), found {p}")
            level = 1.0 - p
            rows.append({"prob": float(p), "time": _first_crossing(t, surv, level),
                         "ci_low": _first_crossing(t, low, level), "ci_high": _first_crossing(t, high, level),
                         "conf_type": ct})  # fmt: skip
        return pd.DataFrame(rows)

    def median_estimate(self) -> Estimate:
        """Median survival time as an :class:`~kicc_analysis.results.Estimate` (Brookmeyer–Crowley CI)."""
        return Estimate(
            self.median, ci_low=self.median_ci[0], ci_high=self.median_ci[1],
            n=self.n, method="median_survival",
            convention=f"Kaplan-Meier median, Brookmeyer-Crowley CI on the {self.conf_type} scale "
            f"(R survfit conf.type='{self.conf_type}', SAS CONFTYPE={_SAS_NAME[self.conf_type]})",
            confidence=self.confidence, extra={"group": self.group, "events": self.n_events},
        )  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """One-row summary: ``group, n, events, median, median_ci_low, median_ci_high, conf_type``."""
        return pd.DataFrame([{
            "group": "all" if self.group is None else self.group,
            "n": self.n, "events": self.n_events, "median": self.median,
            "median_ci_low": self.median_ci[0], "median_ci_high": self.median_ci[1], "conf_type": self.conf_type,
        }])  # fmt: skip

    def summary(self) -> str:
        """Readable summary (n, events, median and CI, the convention used)."""
        return _summary_text([self], self.conf_type, self.confidence)

    def __str__(self) -> str:
        return self.summary()


def _summary_text(curves: Sequence[KaplanMeier], conf_type: str, confidence: float) -> str:
    frame = pd.concat([c.to_frame() for c in curves], ignore_index=True).drop(columns="conf_type")
    head = (f"Kaplan-Meier estimate ({len(curves)} curve{'s' if len(curves) != 1 else ''}); "
            f"{confidence:.0%} CI of the median: Brookmeyer-Crowley, {conf_type} transform "
            f"(R survfit conf.type='{conf_type}', SAS CONFTYPE={_SAS_NAME[conf_type]}); Greenwood variance")  # fmt: skip
    return head + "\n" + frame.to_string(index=False)


class KaplanMeierFit(dict):
    """What :func:`kaplan_meier` returns, grouped or not: a mapping ``label -> KaplanMeier``.

    Ungrouped fits have the single label ``"all"``. With one curve the curve's attributes (``table``,
    ``events``, ``median``, ``survival_at``, ``quantiles``...) are available on the fit itself.
    """

    conf_type: str = "log"
    confidence: float = 0.95

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if len(self) == 1:
            return getattr(next(iter(self.values())), name)
        raise AttributeError(
            f"KaplanMeierFit has {len(self)} curves ({list(self)}); '{name}' belongs to one curve: "
            f"use fit[label].{name}"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per curve: ``group, n, events, median, median_ci_low, median_ci_high, conf_type``."""
        return pd.concat([km.to_frame() for km in self.values()], ignore_index=True)

    def quantiles(
        self, probs: Sequence[float] = (0.25, 0.5, 0.75), conf_type: str | None = None,
        confidence: float | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """:meth:`KaplanMeier.quantiles` of every curve, stacked with a ``group`` column."""
        parts = [km.quantiles(probs, conf_type, confidence).assign(group=lab) for lab, km in self.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["group", *[c for c in out.columns if c != "group"]]]

    def summary(self) -> str:
        return _summary_text(list(self.values()), self.conf_type, self.confidence)

    def __str__(self) -> str:
        return self.summary()


def median_survival(km: KaplanMeier) -> tuple[float, float, float]:
    """Return (median, ci_low, ci_high) of a fitted Kaplan–Meier curve."""
    return km.median, km.median_ci[0], km.median_ci[1]


def _fit_one(time: np.ndarray, event: np.ndarray, group: Any, conf_type: str, confidence: float) -> KaplanMeier:
    pl = product_limit(time, event)
    surv, var_log = pl.surv, pl.var_log
    with np.errstate(invalid="ignore"):
        se = np.where(surv > 0, surv * np.sqrt(var_log), np.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    low, high = _conf_band(surv, var_log, z, conf_type)
    curve = {"time": pl.time, "n_risk": pl.n_risk, "n_event": pl.n_event, "n_censor": pl.n_other, "surv": surv,
             "se": se, "ci_low": low, "ci_high": high}  # fmt: skip
    ev = pl.n_event > 0
    median = _first_crossing(pl.time[ev], surv[ev])
    med_low = _first_crossing(pl.time[ev], low[ev])
    med_high = _first_crossing(pl.time[ev], high[ev])
    return KaplanMeier(curve, group, conf_type, confidence, median, (med_low, med_high), var_log)


def kaplan_meier(
    time: Any,
    event: Any,
    group: Any = None,
    *,
    conf_type: str = "log",
    confidence: float = 0.95,
) -> KaplanMeierFit:
    """Kaplan–Meier survival curve(s) with Greenwood CIs, median survival and quantiles.

    Parameters
    ----------
    time : array-like
        Follow-up time (any unit, e.g. days) per subject.
    event : array-like of 0/1
        1 = event observed at ``time``, 0 = censored.
    group : array-like, optional
        Group label per subject; one curve per label.
    conf_type : {"log", "log-log", "plain", "logit", "arcsin"}
        Transform of the pointwise CI and of the median's CI; ``"log"`` is R's default, ``"log-log"``
        SAS's. SAS names (``LINEAR``, ``LOGLOG``, ``ASINSQRT``...) are accepted.
    confidence : float
        Confidence level of the pointwise CIs and of the median CI.

    Returns
    -------
    KaplanMeierFit
        A mapping ``label -> KaplanMeier`` (label ``"all"`` without ``group``); with a single curve its
        attributes are reachable on the fit directly.

    Examples
    --------
    >>> km = kaplan_meier([6, 6, 7, 10], [1, 0, 1, 1])
    >>> km.events["surv"].round(3).tolist()
    [0.75, 0.375, 0.0]
    >>> sorted(kaplan_meier([1, 2, 3, 4], [1, 1, 0, 1], group=["a", "b", "a", "b"]))
    ['a', 'b']
    """
    ct = _conf_type(conf_type)
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    g = None if group is None else np.asarray(group, dtype=object)
    keep = complete_mask("kaplan_meier", time=t, event=e, group=g)
    t, e = t[keep], e[keep]
    check_survival(t, e, "kaplan_meier")
    fit = KaplanMeierFit()
    fit.conf_type, fit.confidence = ct, confidence
    if g is None:
        fit["all"] = _fit_one(t, e, None, ct, confidence)
        return fit
    g = g[keep]
    for lab in group_order(group, g):
        fit[lab] = _fit_one(t[g == lab], e[g == lab], lab, ct, confidence)
    return fit


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
    """Summary table: n, events, median and its CI per group (same as ``fit.to_frame()``)."""
    if isinstance(fits, KaplanMeier):
        fits = {"all": fits}
    frame = pd.concat([km.to_frame().assign(group=lab) for lab, km in fits.items()], ignore_index=True)
    return frame.drop(columns="conf_type")


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

    def summary(self) -> str:
        """Readable summary: the test, its weights convention, chi-square, df, p and the O/E table."""
        return (f"{self.weights} test (weighted log-rank family, hypergeometric variance; R survdiff): "
                f"chi-square = {self.chisq:.4f} on {self.df} df, p = {self.p:.4g}\n"
                + self.table.to_string(index=False))  # fmt: skip

    def __str__(self) -> str:
        return self.summary()


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
        s = survival_from_counts(n_risk, n_event)  # pooled Kaplan–Meier at the event times
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
