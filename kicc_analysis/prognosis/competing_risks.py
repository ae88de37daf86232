"""Competing risks: Aalen–Johansen cumulative incidence, Gray-type test, Fine–Gray and cause-specific Cox.

In KICC-19, death (``outco_outcome == 2``) competes with discharge alive (``== 1``);
other outcomes are censored at ``outco_day`` (:func:`competing_outcome` builds
``event_type`` = 0 censored / 1 death / 2 discharge).

Conventions
-----------
* CIF: Aalen–Johansen, ``F_c(t) = sum_{t_j <= t} S(t_j-) d_cj / n_j`` with S the
  all-cause Kaplan–Meier (R ``cmprsk::cuminc``, ``survival::survfit`` multi-state).
* CIF standard error: delta method (Marubini & Valsecchi 1995 / Choudhury 2002),
  which reproduces Stata ``stcompet`` and ``statsmodels`` ``CumIncidenceRight``;
  ``variance="cmprsk"`` gives Gray's counting-process variance printed by ``cmprsk::cuminc``. CIs are on the
  log(-log) scale (``conf_type="log-log"``, as stcompet) or plain.
* :func:`gray_test` is Gray's (1988) K-sample test with weight ``(1 - F(t-))^rho``
  (default rho = 0) and Gray's variance estimator, as ``cmprsk::cuminc`` computes it
  (re-derived and vectorised over distinct times here); stratified tests sum scores
  and variances over strata.
* :func:`fine_gray`: subdistribution-hazard regression as ``cmprsk::crr``:
  subjects who fail from a competing cause stay in the risk set with weight
  ``G(t-) / G(T_i-)`` (G = Kaplan–Meier of censoring), implemented as R
  ``survival::finegray`` does (counting-process expansion at censoring times) and
  fitted with the weighted Cox engine; Breslow ties (crr); G is the censoring
  Kaplan–Meier with crr's tie convention. The reported ``se`` is Fine & Gray's (1999)
  sandwich with the ``psi`` term for the estimation of G (what ``crr`` reports);
  ``se_robust`` omits that term (``coxph(..., cluster=id)`` on ``finegray`` data) and
  ``se_model`` is the model-based (inverse information) one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_columns, complete_mask
from kicc_analysis.prognosis._coxcore import CoxFit, fit_cox, score_residuals
from kicc_analysis.prognosis._km import product_limit, step_left, step_right, survival_from_counts
from kicc_analysis.prognosis.cox import CoxResult, cox
from kicc_analysis.prognosis.survival import group_order

__all__ = [
    "CumulativeIncidence",
    "CumulativeIncidenceFit",
    "cumulative_incidence",
    "gray_test",
    "fine_gray",
    "FineGrayResult",
    "cause_specific_cox",
    "competing_outcome",
]


@dataclass(frozen=True)
class CumulativeIncidence:
    """Aalen–Johansen CIFs. ``table``: ``time, n_risk, cause, n_event, cif, se, ci_low, ci_high``
    (one row per distinct time and cause); ``group`` labels the subgroup (or None)."""

    table: pd.DataFrame
    causes: list[Any]
    group: Any = None

    def cif(self, cause: Any) -> pd.DataFrame:
        return self.table[self.table["cause"] == cause].reset_index(drop=True)

    def at(self, cause: Any, times: Any) -> np.ndarray:
        t = self.cif(cause)
        return step_right(t["time"].to_numpy(), t["cif"].to_numpy(), np.atleast_1d(times), start=0.0)


class CumulativeIncidenceFit(dict):
    """What :func:`cumulative_incidence` returns, grouped or not: a mapping ``label -> CumulativeIncidence``.

    Ungrouped fits have the single label ``"all"``; with one group its attributes (``table``, ``cif``,
    ``at``, ``causes``) are available on the fit itself.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if len(self) == 1:
            return getattr(next(iter(self.values())), name)
        raise AttributeError(
            f"CumulativeIncidenceFit has {len(self)} groups ({list(self)}); '{name}' belongs to one group: "
            f"use fit[label].{name}"
        )

    def to_frame(self) -> pd.DataFrame:
        """All groups' CIF tables stacked with a ``group`` column."""
        parts = [ci.table.assign(group=lab) for lab, ci in self.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["group", *[c for c in out.columns if c != "group"]]]


def _cmprsk_variance(
    n: np.ndarray, d: np.ndarray, dc: np.ndarray, s_left: np.ndarray, surv: np.ndarray, f: np.ndarray
) -> np.ndarray:
    """Variance of the CIF as R ``cmprsk::cuminc`` computes it (Gray's counting-process estimator).

    Contributions of each event time are accumulated in three running sums; the variance is
    updated at event times of the cause and carried forward in between.
    """
    d_other = d - dc
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_s = np.where(surv > 0, 1.0 / surv, 0.0)
        t5_o = np.where(d_other > 1, 1 - (d_other - 1) / (n - 1), 1.0)
        t6_o = np.where((d_other > 0) & (surv > 0), s_left**2 * t5_o * d_other / n**2, 0.0)
        t5_c = np.where(dc > 1, 1 - (dc - 1) / (n - 1), 1.0)
        t6_c = np.where(dc > 0, s_left**2 * t5_c * dc / n**2, 0.0)
    t4_o = f * inv_s
    t4_c = 1 + inv_s * f
    v1 = np.cumsum(t4_o**2 * t6_o + t4_c**2 * t6_c)
    v2 = np.cumsum(inv_s * t4_o * t6_o + inv_s * t4_c * t6_c)
    v3 = np.cumsum(inv_s**2 * t6_o + inv_s**2 * t6_c)
    at_event = np.where(dc > 0, v1 + f**2 * v3 - 2 * f * v2, np.nan)
    filled = pd.Series(at_event).ffill().fillna(0.0).to_numpy()
    return filled


def _aj(
    time: np.ndarray, etype: np.ndarray, causes: list[Any], confidence: float, conf_type: str, variance: str
) -> pd.DataFrame:
    km = product_limit(time, (etype != 0).astype(float))  # all-cause Kaplan–Meier
    utimes, n, d, surv = km.time, km.n_risk, km.n_event, km.surv
    inv = np.searchsorted(utimes, time)
    m = len(utimes)
    s_left = np.r_[1.0, surv[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.where(n - d > 0, d / (n * (n - d)), 0.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    out = []
    for c in causes:
        dc = np.bincount(inv, weights=(etype == c).astype(float), minlength=m)
        f = np.cumsum(s_left * dc / n)
        # delta-method variance, expanded (F(t) - F_j)^2 = F^2 - 2 F F_j + F_j^2 so that cumsums suffice
        a = gw
        b = s_left**2 * dc * (n - dc) / n**3
        cterm = s_left * dc / n**2
        ca, caf, caf2 = np.cumsum(a), np.cumsum(a * f), np.cumsum(a * f**2)
        cb = np.cumsum(b)
        cc, ccf = np.cumsum(cterm), np.cumsum(cterm * f)
        var = f**2 * ca - 2 * f * caf + caf2 + cb - 2 * (f * cc - ccf)
        if variance == "cmprsk":
            var = _cmprsk_variance(n, d, dc, s_left, surv, f)
        elif variance != "delta":
            raise AnalysisError(f"variance must be 'delta' (Stata stcompet) or 'cmprsk', found {variance!r}")
        se = np.sqrt(np.maximum(var, 0.0))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if conf_type == "log-log":
                k = z * se / (f * np.abs(np.log(f)))
                lo, hi = f ** np.exp(k), f ** np.exp(-k)
            elif conf_type == "plain":
                lo, hi = np.maximum(f - z * se, 0), np.minimum(f + z * se, 1)
            else:
                raise AnalysisError(f"conf_type must be 'log-log' or 'plain', found {conf_type!r}")
        lo = np.where(f > 0, lo, 0.0)
        hi = np.where(f > 0, hi, 0.0)
        out.append(
            pd.DataFrame(
                {
                    "time": utimes,
                    "n_risk": n.astype(int),
                    "cause": c,
                    "n_event": dc.astype(int),
                    "cif": f,
                    "se": se,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )  # fmt: skip
        )
    return pd.concat(out, ignore_index=True)


def _clean_cr(time: Any, event_type: Any, where: str, group: Any = None, strata: Any = None):
    t = as_float_array(time, "time")
    e = as_float_array(event_type, "event_type")
    g = None if group is None else np.asarray(group, dtype=object)
    st = None if strata is None else np.asarray(strata, dtype=object)
    keep = complete_mask(where, time=t, event_type=e, group=g, strata=st)
    t, e = t[keep], e[keep]
    if (t < 0).any():
        raise AnalysisError(f"{where}: times must be >= 0")
    if (e < 0).any() or (e != np.round(e)).any():
        raise AnalysisError(f"{where}: event_type must be 0 (censored) or a positive integer cause code")
    return t, e.astype(int), (None if g is None else g[keep]), (None if st is None else st[keep])


def cumulative_incidence(
    time: Any,
    event_type: Any,
    group: Any = None,
    *,
    causes: Sequence[Any] | None = None,
    confidence: float = 0.95,
    conf_type: str = "log-log",
    variance: str = "delta",
) -> CumulativeIncidenceFit:
    """Aalen–Johansen cumulative incidence functions with delta-method SEs.

    Parameters
    ----------
    time : array-like
        Time to the first event or censoring (e.g. days from admission).
    event_type : array-like of int
        0 = censored, k > 0 = failed from cause k.
    group : array-like, optional
        Group labels; one result per group.
    causes : sequence, optional
        Causes to report (default: all observed non-zero codes).
    confidence : float
        CI level.
    conf_type : {"log-log", "plain"}
        CI scale.
    variance : {"delta", "cmprsk"}
        ``"delta"``: delta-method SE (Stata ``stcompet``, statsmodels; default);
        ``"cmprsk"``: Gray's estimator as R ``cmprsk::cuminc`` prints it.

    Returns
    -------
    CumulativeIncidenceFit
        A mapping ``label -> CumulativeIncidence`` (label ``"all"`` without ``group``); with a single
        group its attributes are reachable on the fit directly.

    Examples
    --------
    At t = 4 the one subject still at risk fails from cause 1, so F_1 rises by S(4-) * 1/1 = 0.5:

    >>> ci = cumulative_incidence([1, 2, 3, 4], [1, 2, 0, 1])
    >>> ci.cif(1)["cif"].round(3).tolist()
    [0.25, 0.25, 0.25, 0.75]
    """
    t, e, g, _ = _clean_cr(time, event_type, "cumulative_incidence", group)
    causes = sorted(set(e[e > 0].tolist())) if causes is None else list(causes)
    if not causes:
        raise AnalysisError("cumulative_incidence: no events of any cause")
    out = CumulativeIncidenceFit()
    if g is None:
        out["all"] = CumulativeIncidence(_aj(t, e, causes, confidence, conf_type, variance), causes)
        return out
    for lab in group_order(group, g):
        sel = g == lab
        out[lab] = CumulativeIncidence(_aj(t[sel], e[sel], causes, confidence, conf_type, variance), causes, lab)
    return out


def _censoring_km(time: np.ndarray, etype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution G (right-continuous steps at the distinct times).

    As ``cmprsk::crr`` (``survfit(Surv(ftime, cenind) ~ 1)``): the number at risk at a censoring time
    counts every subject still under observation, including those failing at that time
    (``tied_other="at_risk"`` of the package's product-limit core).
    """
    g = product_limit(time, (etype == 0).astype(float), tied_other="at_risk")
    return g.time, g.surv


def _g_left(gt: np.ndarray, gv: np.ndarray, t: np.ndarray) -> np.ndarray:
    """G(t-) from the right-continuous steps (gt, gv)."""
    return step_left(gt, gv, t)


def _fine_gray_psi(time: np.ndarray, etype: np.ndarray, x: np.ndarray, beta: np.ndarray, cause: int) -> np.ndarray:
    """Per-subject correction psi_i for the estimation of G in the Fine–Gray score (Fine & Gray 1999, §3).

    ``psi_i = sum_u [dNc_i(u) - Y_i(u) dLambda_c(u)] q(u) / pi(u)`` over censoring times u, with
    ``pi(u)`` the number at risk and ``q(u) = C1(u) B0(u) - C0(u) B1(u)`` where C sums
    ``r_j x_j / G(T_j-)`` over competing failures before u and B sums ``G(t-) / S0(t)`` (times the
    risk-set mean for B1) over failures of ``cause`` at or after u. Everything is a cumulative sum
    over sorted times (this is the quantity ``cmprsk::crr`` accumulates with nested loops).
    """
    n, p = x.shape
    gt, gv = _censoring_km(time, etype)
    r = np.exp(x @ beta)
    order = np.argsort(time, kind="stable")
    ts = time[order]
    comp = (etype != cause) & (etype != 0)
    fail = etype == cause

    def after(v: np.ndarray, at: np.ndarray) -> np.ndarray:  # sum over subjects with T >= at
        vs = v[order]
        rc = np.vstack([np.cumsum(vs[::-1], axis=0)[::-1], np.zeros((1,) + vs.shape[1:])])
        return rc[np.searchsorted(ts, at, side="left")]

    def before(v: np.ndarray, mask: np.ndarray, at: np.ndarray) -> np.ndarray:  # sum over mask with T < at
        tm = time[mask]
        o = np.argsort(tm, kind="stable")
        cs = np.vstack([np.zeros((1,) + v.shape[1:]), np.cumsum(v[mask][o], axis=0)])
        return cs[np.searchsorted(tm[o], at, side="left")]

    g_comp = _g_left(gt, gv, time)
    rx = np.column_stack([r, r[:, None] * x])  # column 0: r, columns 1..p: r x
    w_comp = rx / g_comp[:, None]
    tf = time[fail]
    s_all = after(rx, tf) + _g_left(gt, gv, tf)[:, None] * before(w_comp, comp, tf)
    s0, s1 = s_all[:, 0], s_all[:, 1:]
    gf = _g_left(gt, gv, tf)
    b = np.column_stack([gf / s0, (gf / s0)[:, None] * (s1 / s0[:, None])])  # B0, B1 terms per failure
    cens_times, c_count = np.unique(time[etype == 0], return_counts=True)
    if len(cens_times) == 0:
        return np.zeros((n, p))
    of = np.argsort(tf, kind="stable")
    tf_sorted = tf[of]
    rb = np.vstack([np.cumsum(b[of][::-1], axis=0)[::-1], np.zeros((1, p + 1))])
    b_at = rb[np.searchsorted(tf_sorted, cens_times, side="left")]  # failures at or after u
    c_at = before(w_comp, comp, cens_times)  # competing failures before u
    q = c_at[:, 1:] * b_at[:, :1] - c_at[:, :1] * b_at[:, 1:]
    pi = np.searchsorted(ts, cens_times, side="left")
    pi = n - pi  # number with T >= u
    comp_increment = -(c_count / pi**2)[:, None] * q
    cum = np.vstack([np.zeros((1, p)), np.cumsum(comp_increment, axis=0)])
    psi = cum[np.searchsorted(cens_times, time, side="right")]
    censored = etype == 0
    idx = np.searchsorted(cens_times, time[censored])
    psi[censored] += q[idx] / pi[idx][:, None]
    return psi


def finegray_expand(
    time: np.ndarray, etype: np.ndarray, cause: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counting-process expansion of competing-risks data for a Fine–Gray fit.

    Returns ``(row_subject, start, stop, status, weight)``: each subject failing from
    another cause keeps its follow-up row (0, T] and gets extra rows between the
    censoring-distribution jumps after T (up to the last event of ``cause``) with
    weight ``G(a) / G(T-)`` on the row (a, b].
    """
    n = len(time)
    ev_times = time[etype == cause]
    if len(ev_times) == 0:
        raise AnalysisError(f"fine_gray: no events of cause {cause}")
    t_max = ev_times.max()
    gt, gv = _censoring_km(time, etype)
    jumps = gt[np.r_[True, gv[1:] != gv[:-1]] & (np.r_[1.0, gv[:-1]] != gv)]
    jumps = jumps[jumps < t_max]
    # keep only jumps followed by an event of `cause` before the next jump: on merged intervals
    # every event time sees the same G(t-), so the fit is unchanged and far fewer rows are made
    uk = np.unique(ev_times)
    last = np.searchsorted(jumps, uk, side="left") - 1
    jumps = jumps[np.unique(last[last >= 0])]

    def g_right(t: np.ndarray) -> np.ndarray:
        return step_right(gt, gv, t)

    def g_left(t: np.ndarray) -> np.ndarray:
        return step_left(gt, gv, t)

    subj = [np.arange(n)]
    start = [np.zeros(n)]
    stop = [time.astype(float)]
    status = [(etype == cause).astype(float)]
    weight = [np.ones(n)]
    comp = np.nonzero((etype != cause) & (etype != 0) & (time < t_max))[0]
    if len(comp):
        ti = time[comp]
        first_jump = np.searchsorted(jumps, ti, side="right")  # jumps strictly after T_i
        n_rows = len(jumps) - first_jump + 1
        rep = np.repeat(np.arange(len(comp)), n_rows)
        offset = np.arange(len(rep)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
        jpos = first_jump[rep] + offset  # index of the row's right end in jumps (== len(jumps) -> t_max)
        ext = np.r_[jumps, t_max]
        a = np.where(offset == 0, ti[rep], ext[np.maximum(jpos - 1, 0)])
        b = ext[np.minimum(jpos, len(jumps))]
        keep = b > a
        rep, a, b = rep[keep], a[keep], b[keep]
        w = g_right(a) / g_left(ti[rep])
        subj.append(comp[rep])
        start.append(a)
        stop.append(b)
        status.append(np.zeros(len(a)))
        weight.append(w)
    return (np.concatenate(subj), np.concatenate(start), np.concatenate(stop), np.concatenate(status),
            np.concatenate(weight))  # fmt: skip


@dataclass
class FineGrayResult:
    """Fine–Gray subdistribution-hazard model. ``table``: ``covariate, coef, shr, se, se_robust, se_model, z, p,
    shr_ci_low, shr_ci_high`` (``se``: Fine–Gray sandwich with the G-estimation term, as crr)."""

    table: pd.DataFrame
    loglik: float
    loglik_null: float
    n: int
    events: int
    competing: int
    censored: int
    n_dropped: int
    cause: Any
    covariates: list[str]
    fit: CoxFit = field(repr=False)
    data: dict[str, Any] = field(repr=False, default_factory=dict)

    def predict_cif(self, frame: pd.DataFrame, times: Any) -> np.ndarray:
        """Predicted CIF of ``cause`` at ``times`` for each row: 1 - exp(-H0(t) exp(lp))."""
        x = frame[self.covariates].to_numpy(dtype=float)
        lp = (x - self.fit.center) @ self.fit.beta
        tk, cumhaz = self.fit.baseline[0]
        h0 = step_right(tk, cumhaz, np.atleast_1d(times), start=0.0)
        return 1.0 - np.exp(-np.outer(np.exp(lp), h0))


def fine_gray(
    cohort: pd.DataFrame,
    duration: str,
    event_type: str,
    cause: Any,
    covariates: Sequence[str],
    *,
    ties: str = "breslow",
    confidence: float = 0.95,
) -> FineGrayResult:
    """Fine & Gray (1999) proportional subdistribution-hazards regression.

    Parameters
    ----------
    cohort : DataFrame
        One row per subject.
    duration : str
        Time to first event or censoring.
    event_type : str
        0 = censored, k > 0 = cause code.
    cause : int
        Cause of interest (e.g. 1 = death); other positive codes are competing events.
    covariates : sequence of str
        Numeric covariates.
    ties : {"breslow", "efron"}
        Tie handling (crr: breslow).
    confidence : float
        CI level for the subdistribution hazard ratios (SHR).
    """
    covariates = list(covariates)
    check_columns(cohort, [duration, event_type, *covariates], "fine_gray")
    x = cohort[covariates].to_numpy(dtype=float)
    t = cohort[duration].to_numpy(dtype=float)
    e = cohort[event_type].to_numpy(dtype=float)
    keep = complete_mask("fine_gray", **{duration: t, event_type: e}, covariates=x)
    x, t, e = x[keep], t[keep], e[keep].astype(int)
    if (t < 0).any():
        raise AnalysisError("fine_gray: negative times")
    subj, start, stop, status, w = finegray_expand(t, e, cause)
    xe = x[subj]
    # the first row of every subject starts at 0: use start only where > 0 (counting process)
    fit = fit_cox(xe, stop, status, ties=ties, start=np.where(start > 0, start, -np.inf), weights=w)
    resid = score_residuals(xe, stop, status, fit.beta, start=np.where(start > 0, start, -np.inf), weights=w)
    u = np.zeros((len(t), len(covariates)))
    np.add.at(u, subj, resid)  # eta_i: score residual of subject i (sum over its rows)
    u_psi = u + _fine_gray_psi(t, e, x - fit.center, fit.beta, cause)
    robust = fit.var @ (u_psi.T @ u_psi) @ fit.var
    robust_no_psi = fit.var @ (u.T @ u) @ fit.var
    se = np.sqrt(np.diag(robust))
    se_model = np.sqrt(np.diag(fit.var))
    z = fit.beta / se
    zc = stats.norm.ppf(0.5 + confidence / 2)
    table = pd.DataFrame(
        {"covariate": covariates, "coef": fit.beta, "shr": np.exp(fit.beta), "se": se, "se_robust": np.sqrt(np.diag(robust_no_psi)),
         "se_model": se_model, "z": z,
         "p": 2 * stats.norm.sf(np.abs(z)), "shr_ci_low": np.exp(fit.beta - zc * se),
         "shr_ci_high": np.exp(fit.beta + zc * se)}
    )  # fmt: skip
    return FineGrayResult(
        table, fit.loglik, fit.loglik_null, len(t), int((e == cause).sum()), int(((e != cause) & (e > 0)).sum()),
        int((e == 0).sum()), int((~keep).sum()), cause, covariates, fit, {"x": x, "time": t, "event_type": e},
    )  # fmt: skip


def _gray_stratum(t: np.ndarray, e: np.ndarray, g: np.ndarray, ng: int, cause: int, rho: float):
    """Score (ng - 1) and variance (ng - 1 x ng - 1) of Gray's (1988) test in one stratum.

    Vectorised over the distinct times (arrays time x group x group); the recursion and the
    variance estimator follow Gray (1988, Ann Stat 16:1141) as implemented in R ``cmprsk``.
    """
    ut, inv = np.unique(t, return_inverse=True)
    nt = len(ut)
    cell = inv * ng + g

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(cell[mask], minlength=nt * ng).reshape(nt, ng).astype(float)

    d1 = count(e == cause)
    d2 = count((e != cause) & (e != 0))
    tot = count(np.ones(len(t), dtype=bool))
    n = tot[::-1].cumsum(axis=0)[::-1]  # at risk just before each time, per group
    s_right = survival_from_counts(n, d1 + d2)  # group KM (all causes) on the pooled grid, right-continuous
    s_left = np.vstack([np.ones((1, ng)), s_right[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = np.where(n > 0, s_left * d1 / n, 0.0)
        f_right = np.cumsum(inc, axis=0)
        f_left = f_right - inc
        h = np.where(n > 0, n / s_left, 0.0)  # "h_r" per group
        rr = np.where(n > 0, n * (1 - f_left) / s_left, 0.0)  # subdistribution risk set R_r
    D1 = d1.sum(axis=1)
    D2 = d2.sum(axis=1)
    tr = h.sum(axis=1)
    tq = rr.sum(axis=1)
    active = (D1 + D2) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f_pool = np.cumsum(np.where(active & (tr > 0), D1 / tr, 0.0))
    fm_pool = np.r_[0.0, f_pool[:-1]]
    fb = np.where(active, (1 - fm_pool) ** rho, 0.0)
    # a[t, i, j] = fb h_i (delta_ij - h_j / tr)
    with np.errstate(divide="ignore", invalid="ignore"):
        hj = np.where(tr[:, None] > 0, h / tr[:, None], 0.0)
    eye = np.eye(ng)
    a = fb[:, None, None] * h[:, :, None] * (eye[None, :, :] - hj[:, None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = np.where(active & (tr > 0) & (fm_pool < 1), D1 / (tr * (1 - fm_pool)), 0.0)
    c = np.cumsum(a * cw[:, None, None], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score_terms = fb[:, None] * (d1 - D1[:, None] * np.where(tq[:, None] > 0, rr / tq[:, None], 0.0))
    score = score_terms.sum(axis=0)[: ng - 1]
    v = np.zeros((ng, ng))
    v2 = np.zeros((ng, ng))  # v2[i, k]
    v3 = np.zeros(ng)
    ok1 = (D1 > 0)[:, None] & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t4 = np.where(s_right > 0, 1 - (1 - f_pool[:, None]) / s_right, 1.0)
        t5 = np.where(D1[:, None] > 1, 1 - (D1[:, None] - 1) / (tr[:, None] * s_left - 1), 1.0)
        t3 = np.where(ok1, t5 * s_left * D1[:, None] / (tr[:, None] * n), 0.0)
    t1 = a - t4[:, None, :] * c  # [t, i, k]
    v3 += (t4**2 * t3).sum(axis=0)
    v2 += np.einsum("tik,tk->ik", t1, t4 * t3)
    v += np.einsum("tik,tjk,tk->ij", t1, t1, t3)
    ok2 = (D2 > 0)[:, None] & (s_right > 0) & (d2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t4b = np.where(ok2, (1 - f_pool[:, None]) / s_right, 0.0)
        t5b = np.where(d2 > 1, 1 - (d2 - 1) / (n - 1), 1.0)
        t3b = np.where(ok2, t5b * s_left**2 * d2 / n**2, 0.0)
    t1b = t4b[:, None, :] * c
    v3 += (t4b**2 * t3b).sum(axis=0)
    v2 -= np.einsum("tik,tk->ik", t1b, t4b * t3b)
    v += np.einsum("tik,tjk,tk->ij", t1b, t1b, t3b)
    cf = c[-1]
    v += np.einsum("ik,jk,k->ij", cf, cf, v3) + cf @ v2.T + v2 @ cf.T
    return score, v[: ng - 1, : ng - 1]


def gray_test(
    time: Any, event_type: Any, group: Any, cause: Any = 1, *, strata: Any = None, rho: float = 0.0
) -> pd.DataFrame:
    """Gray's (1988) K-sample test of equal cumulative incidence of ``cause`` between groups.

    Parameters
    ----------
    time, event_type : array-like
        Time to first event or censoring; 0 = censored, k > 0 = cause code.
    group : array-like
        Group labels (two or more).
    cause : int
        Cause whose cumulative incidence is compared.
    strata : array-like, optional
        Stratified test (scores and variances summed over strata).
    rho : float
        Power of the weight ``(1 - F(t-))^rho`` (0 = Gray's default, as ``cmprsk::cuminc``).

    Returns
    -------
    DataFrame
        One row: ``cause, chisq, df, p`` (chi-square on groups - 1 df).
    """
    t, e, g, st = _clean_cr(time, event_type, "gray_test", group, strata)
    st = np.zeros(len(t)) if st is None else st
    labels = group_order(group, g)
    if len(labels) < 2:
        raise AnalysisError(f"gray_test: need at least two groups, found {labels}")
    gi = pd.Categorical(g, categories=labels).codes.astype(int)
    ng = len(labels)
    score = np.zeros(ng - 1)
    var = np.zeros((ng - 1, ng - 1))
    for s_ in pd.unique(st):
        sel = st == s_
        sc, v = _gray_stratum(t[sel], e[sel], gi[sel], ng, cause, rho)
        score += sc
        var += v
    chisq = float(score @ np.linalg.solve(var, score))
    df = ng - 1
    return pd.DataFrame([{"cause": cause, "chisq": chisq, "df": df, "p": float(stats.chi2.sf(chisq, df))}])


def cause_specific_cox(
    cohort: pd.DataFrame,
    duration: str,
    event_type: str,
    cause: Any,
    covariates: Sequence[str],
    **kwargs: Any,
) -> CoxResult:
    """Cause-specific Cox model: events of other causes are treated as censored at their time."""
    check_columns(cohort, [duration, event_type, *covariates], "cause_specific_cox")
    frame = cohort.copy()
    et = frame[event_type]
    frame["_cs_event"] = np.where(et.isna(), np.nan, (et == cause).astype(float))
    return cox(frame, duration, "_cs_event", covariates, **kwargs)


def competing_outcome(
    cohort: pd.DataFrame,
    outcome: str = "outco_outcome",
    day: str = "outco_day",
    death_code: int = 2,
    discharge_code: int = 1,
) -> pd.DataFrame:
    """Build ``time``/``event_type`` columns for death (1) vs discharge alive (2), others censored (0).

    Rows with a missing outcome or day keep NaN and are reported by the analysis functions.
    """
    check_columns(cohort, [outcome, day], "competing_outcome")
    o = cohort[outcome]
    etype = np.select([o == death_code, o == discharge_code], [1.0, 2.0], default=0.0)
    etype = np.where(o.isna(), np.nan, etype)
    return pd.DataFrame({"time": cohort[day].astype(float), "event_type": etype}, index=cohort.index)
