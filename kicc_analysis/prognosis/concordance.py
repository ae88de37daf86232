"""Concordance (C-index) for survival predictions: Harrell's C and Uno's IPCW C.

Conventions
-----------
* A higher ``risk`` means a *shorter* expected survival (a Cox linear predictor).
* Comparable pair (i, j): i had an event and ``time_j > time_i``; or the times are
  equal, i had an event and j was censored (j is taken to have outlived i).
  Two events at the same time are not comparable. This is R ``survival::concordance``
  and scikit-survival's ``concordance_index_censored``.
* Ties in risk count 1/2 (``tied_risk``); ``tied_time`` counts comparable pairs
  sharing the same time (event vs censored), as scikit-survival reports them.
* Uno's C (Uno et al. 2011, Stat Med 30:1105) weights each comparable pair by
  ``1 / G(time_i)^2`` with G the Kaplan–Meier estimate of the censoring
  distribution (censorings tied with events are placed just after them, as
  scikit-survival ``reverse=True``; G evaluated right-continuously at ``time_i``) and only uses events
  with ``time_i < tau``.

The counting is O(n log^2 n) and fully vectorised (a radix/bit decomposition of
the dominance count), so it runs on 10^5 subjects in well under a second. No
installed library offers this without a Python-level loop over subjects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_survival, complete_mask
from kicc_analysis.prognosis._km import product_limit, step_right
from kicc_analysis.results import Estimate

__all__ = [
    "Concordance", "ConcordanceCounts", "SurvivalCurveMetric", "harrell_c", "concordance_estimate", "uno_c", "concordance_counts", "censoring_survival", "time_dependent_auc",
    "brier_score",
]  # fmt: skip


@dataclass(frozen=True)
class ConcordanceCounts:
    """Pair counts behind a C-index."""

    c: float
    concordant: float
    discordant: float
    tied_risk: float
    tied_time: int
    comparable: float
    se: float = float("nan")  # infinitesimal-jackknife SE (R concordance); NaN for weighted (Uno) C
    pair_sums: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"'{old}' is deprecated and will be removed in the next release; use {new}", DeprecationWarning,
                  stacklevel=3)  # fmt: skip


class Concordance(Estimate):
    """A C-index as an :class:`~kicc_analysis.results.Estimate` (``estimate`` = C).

    The pair counts are in ``extra`` (``concordant, discordant, tied_risk, tied_time, comparable``). The old
    attribute names of the pre-protocol result (``c`` and the counts) still work for one release with a
    :class:`DeprecationWarning`.
    """

    @property
    def c(self) -> float:
        _deprecated("c", "'.estimate'")
        return self.estimate

    def _count(self, name: str) -> float:
        _deprecated(name, f"'.extra[\"{name}\"]'")
        return self.extra[name]

    concordant = property(lambda self: self._count("concordant"))
    discordant = property(lambda self: self._count("discordant"))
    tied_risk = property(lambda self: self._count("tied_risk"))
    tied_time = property(lambda self: self._count("tied_time"))
    comparable = property(lambda self: self._count("comparable"))


def concordance_estimate(counts: ConcordanceCounts, n: int, *, method: str, convention: str,
                         confidence: float = 0.95, **extra: Any) -> Concordance:  # fmt: skip
    """Wrap pair counts as a :class:`Concordance`: Wald CI ``C +- z se`` clipped to [0, 1], z and p for C = 0.5."""
    se = counts.se
    zc = stats.norm.ppf(0.5 + confidence / 2)
    finite = bool(np.isfinite(se) and se > 0)
    z = (counts.c - 0.5) / se if finite else np.nan
    return Concordance(
        counts.c, se=se,
        ci_low=float(max(0.0, counts.c - zc * se)) if finite else np.nan,
        ci_high=float(min(1.0, counts.c + zc * se)) if finite else np.nan,
        z=float(z), p=float(2 * stats.norm.sf(abs(z))) if finite else np.nan, n=n, method=method,
        statistic=float(z), statistic_name="z" if finite else "",
        convention=convention, confidence=confidence,
        extra={"concordant": counts.concordant, "discordant": counts.discordant, "tied_risk": counts.tied_risk,
               "tied_time": counts.tied_time, "comparable": counts.comparable, **extra},
    )  # fmt: skip


HARRELL_CONVENTION = (
    "Harrell's C, R survival::concordance: tied times comparable only event vs censored, tied risks count 1/2; "
    "infinitesimal-jackknife SE, Wald CI"
)


@dataclass(frozen=True)
class SurvivalCurveMetric:
    """A metric over prediction times (time-dependent AUC, Brier score) and its summary over the times.

    Attributes
    ----------
    table : DataFrame
        One row per time (``time, auc, n_cases, n_controls`` or ``time, brier``).
    summary_estimate : Estimate
        The summary over the times (KM-weighted mean AUC, integrated Brier score).

    The pre-protocol return value was the DataFrame itself with the summary in ``attrs``; indexing the
    result (``res["auc"]``), DataFrame attributes and ``attrs`` still work for one release with a
    :class:`DeprecationWarning`.
    """

    table: pd.DataFrame
    summary_estimate: Estimate

    def to_frame(self) -> pd.DataFrame:
        """The per-time table."""
        return self.table

    def __getitem__(self, key: Any) -> Any:
        _deprecated("indexing the result", "'.table[...]'")
        return self.table[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("table", "summary_estimate"):
            raise AttributeError(name)
        _deprecated(name, f"'.table.{name}' (summary: '.summary_estimate')")
        return getattr(self.table, name)

    def __len__(self) -> int:
        return len(self.table)

    def __str__(self) -> str:
        est = self.summary_estimate
        return f"{est.method} = {est.estimate:.4f} ({est.convention})\n{self.table.to_string(index=False)}"


def _later_smaller(rank: np.ndarray, outer: np.ndarray | None = None, counted: np.ndarray | None = None) -> np.ndarray:
    """For elements in sequence order, count later elements with a strictly smaller rank.

    ``outer`` (optional) restricts the count to elements sharing the same outer label; ``counted``
    (optional boolean mask) restricts which later elements are counted.
    Bit decomposition: pairs differing first at bit k are counted at level k.
    """
    n = len(rank)
    out = np.zeros(n)
    if n == 0:
        return out
    levels = max(int(rank.max()).bit_length(), 1)
    pos = np.arange(n)
    outer_key = np.zeros(n, dtype=np.int64) if outer is None else outer.astype(np.int64)
    for k in range(levels):
        bit = (rank >> k) & 1
        grp = rank >> (k + 1)
        idx = np.lexsort((pos, grp, outer_key))
        gs, os_, bs = grp[idx], outer_key[idx], bit[idx]
        zero = (bs == 0).astype(np.int64)
        if counted is not None:
            zero = zero * counted[idx]
        cz = np.cumsum(zero)
        new_group = np.r_[True, (gs[1:] != gs[:-1]) | (os_[1:] != os_[:-1])]
        gid = np.cumsum(new_group) - 1
        ends = np.r_[np.nonzero(new_group)[0][1:], n] - 1
        later_zero = cz[ends][gid] - cz
        ones = bs == 1
        out[idx[ones]] += later_zero[ones]
    return out


def _earlier_counts(
    rank: np.ndarray, counted: np.ndarray, outer: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element (sequence order): earlier counted elements with larger rank, equal rank, and in total."""
    n = len(rank)
    outer_key = np.zeros(n, dtype=np.int64) if outer is None else outer.astype(np.int64)
    c = counted.astype(np.int64)
    rev_rank = (rank.max() - rank)[::-1]
    larger = _later_smaller(rev_rank, outer_key[::-1], c[::-1].astype(bool))[::-1]

    def within(keys: tuple[np.ndarray, ...]) -> np.ndarray:
        idx = np.lexsort((np.arange(n), *keys))
        cs = np.cumsum(c[idx])
        ks = np.column_stack([k[idx] for k in keys])
        start = np.r_[True, np.any(ks[1:] != ks[:-1], axis=1)]
        gid = np.cumsum(start) - 1
        base = np.r_[0, cs][np.nonzero(start)[0]][gid]
        out = np.empty(n)
        out[idx] = cs - base - c[idx]
        return out

    equal = within((rank, outer_key))
    total = within((outer_key,))
    return larger, equal, total


def concordance_counts(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, weight: np.ndarray | None = None
) -> ConcordanceCounts:
    """Pair counts of Harrell's C on clean arrays; ``weight`` (per event subject) gives Uno's C."""
    n = len(time)
    # order: time ascending, events before censored at tied times
    order = np.lexsort((1 - event, time))
    t, e, rk = time[order], event[order].astype(bool), risk[order]
    _, rank = np.unique(rk, return_inverse=True)
    rank = rank.astype(np.int64)
    later = (n - 1 - np.arange(n)).astype(float)
    smaller = _later_smaller(rank)
    # later elements with the same risk score
    ord_r = np.lexsort((np.arange(n), rank))
    r_sorted = rank[ord_r]
    start = np.r_[True, r_sorted[1:] != r_sorted[:-1]]
    gid = np.cumsum(start) - 1
    gstart = np.nonzero(start)[0]
    gsize = np.bincount(gid)
    pos_in = np.arange(n) - gstart[gid]
    same = np.empty(n)
    same[ord_r] = gsize[gid] - pos_in - 1
    # remove pairs of tied events (same time, both events): not comparable
    _, tgroup = np.unique(t, return_inverse=True)
    ev_group = np.where(e, tgroup, -1)
    later_tie_ev = np.zeros(n)
    smaller_tie_ev = np.zeros(n)
    same_tie_ev = np.zeros(n)
    if e.any():
        has_tie = np.bincount(tgroup[e], minlength=tgroup.max() + 1) > 1
        if has_tie.any():
            sel = e & has_tie[tgroup]
            idx = np.nonzero(sel)[0]
            g = ev_group[idx]
            _, gi, gc = np.unique(g, return_inverse=True, return_counts=True)
            first = np.r_[0, np.cumsum(gc)[:-1]]
            later_tie_ev[idx] = gc[gi] - (np.arange(len(idx)) - first[gi]) - 1
            smaller_tie_ev[idx] = _later_smaller(rank[idx], gi)
            key = gi.astype(np.int64) * (rank.max() + 1) + rank[idx]
            o2 = np.lexsort((np.arange(len(idx)), key))
            k2 = key[o2]
            st2 = np.r_[True, k2[1:] != k2[:-1]]
            gid2 = np.cumsum(st2) - 1
            gs2 = np.bincount(gid2)
            p2 = np.arange(len(idx)) - np.nonzero(st2)[0][gid2]
            tmp = np.empty(len(idx))
            tmp[o2] = gs2[gid2] - p2 - 1
            same_tie_ev[idx] = tmp
    comparable = later - later_tie_ev
    conc = smaller - smaller_tie_ev
    tied = same - same_tie_ev
    disc = comparable - conc - tied
    # tied_time: comparable (event, censored) pairs at the same time
    cens_at_t = np.bincount(tgroup, weights=(~e).astype(float), minlength=tgroup.max() + 1)
    tied_time = int(cens_at_t[tgroup][e].sum())
    w = np.ones(n) if weight is None else weight[order]
    w = np.where(e, w, 0.0)
    num = float(w @ (conc + 0.5 * tied))
    den = float(w @ comparable)
    if den == 0:
        raise AnalysisError("concordance: no comparable pairs (need at least one event before a later time)")
    c_index = num / den
    se = float("nan")
    if weight is None:
        # infinitesimal-jackknife SE (R survival::concordance): influence of each subject on the pair sums,
        # counting the pairs in which it is the earlier event and those in which it is the later member
        larger, equal, total = _earlier_counts(rank, e)
        if e.any() and len(
            idx_tie := np.nonzero(e & (np.bincount(tgroup[e], minlength=tgroup.max() + 1)[tgroup] > 1))[0]
        ):
            _, gi2 = np.unique(tgroup[idx_tie], return_inverse=True)
            l2, e2, t2 = _earlier_counts(rank[idx_tie], np.ones(len(idx_tie), dtype=bool), gi2)
            larger[idx_tie] -= l2
            equal[idx_tie] -= e2
            total[idx_tie] -= t2
        ev = e.astype(float)
        d_num = ev * (conc + 0.5 * tied) + larger + 0.5 * equal
        d_den = ev * comparable + total
        influence = (d_num - c_index * d_den) / den
        se = float(np.sqrt(np.sum(influence**2)))
        parts = (d_num, d_den)
    else:
        parts = None
    return ConcordanceCounts(
        c_index, float(e @ conc), float(e @ disc), float(e @ tied), tied_time, float(w @ comparable), se, parts
    )


def _clean(time: Any, event: Any, risk: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    r = as_float_array(risk, "risk")
    keep = complete_mask(where, time=t, event=e, risk=r)
    t, e, r = t[keep], e[keep], r[keep]
    check_survival(t, e, where)
    return t, e.astype(int), r


def harrell_c(time: Any, event: Any, risk: Any, *, confidence: float = 0.95) -> Concordance:
    """Harrell's concordance index of a risk score (higher = earlier event).

    Parameters
    ----------
    time : array-like
        Follow-up time per subject.
    event : array-like of 0/1
        Event indicator.
    risk : array-like
        Predicted risk (e.g. Cox linear predictor). Use ``-predicted_time`` for time predictions.
    confidence : float
        Confidence level of the Wald CI.

    Returns
    -------
    Concordance
        ``estimate`` = C with its infinitesimal-jackknife ``se`` (R ``concordance``), Wald CI clipped to
        [0, 1], ``z``/``p`` for C = 0.5; ``extra`` holds the concordant, discordant, tied-risk, tied-time
        and comparable pair counts.

    Examples
    --------
    >>> harrell_c([1, 2, 3], [1, 1, 0], [3, 2, 1]).estimate
    1.0
    """
    t, e, r = _clean(time, event, risk, "harrell_c")
    return concordance_estimate(concordance_counts(t, e, r), len(t), method="harrell_c",
                                convention=HARRELL_CONVENTION, confidence=confidence)  # fmt: skip


def censoring_survival(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution G: returns (times, G(t)) right-continuous steps.

    Censorings tied with events are taken to happen just after them (events leave the censoring risk set
    first: ``tied_other="leave_first"`` of the package's product-limit core; scikit-survival ``reverse=True``).
    """
    g = product_limit(np.asarray(time, dtype=float), (np.asarray(event) == 0).astype(float), tied_other="leave_first")
    return g.time, g.surv


def uno_c(
    time: Any,
    event: Any,
    risk: Any,
    *,
    tau: float | None = None,
    train_time: Any = None,
    train_event: Any = None,
) -> Concordance:
    """Uno's IPCW concordance index, truncated at ``tau``.

    Parameters
    ----------
    time, event, risk : array-like
        Test data: follow-up time, 0/1 event, risk score (higher = earlier event).
    tau : float, optional
        Truncation time; only events before ``tau`` count (default: last time).
    train_time, train_event : array-like, optional
        Data to estimate the censoring distribution G (default: the test data).

    Returns
    -------
    Concordance
        ``estimate`` = C (no SE: ``se``, CI and ``p`` are NaN); ``extra`` holds ``tau`` and the weighted
        pair counts.
    """
    t, e, r = _clean(time, event, risk, "uno_c")
    if train_time is None:
        gt, ge = t, e
    else:
        gt = as_float_array(train_time, "train_time")
        ge = as_float_array(train_event, "train_event")
    gtimes, gvals = censoring_survival(gt, ge)
    g_at = step_right(gtimes, gvals, t)
    if tau is not None:
        e = np.where(t < tau, e, 0)
    if np.any((g_at <= 0) & (e == 1)):
        raise AnalysisError("uno_c: censoring survival G(t) = 0 at an event time; choose a smaller tau")
    with np.errstate(divide="ignore"):
        w = np.where(e == 1, 1.0 / np.square(g_at), 0.0)
    counts = concordance_counts(t, e, r, w)
    return concordance_estimate(
        counts, len(t), method="uno_c", tau=tau,
        convention="Uno 2011 IPCW C, G = KM of censoring (censorings tied with events after them) at time_i, "
        "truncated at tau (scikit-survival concordance_index_ipcw)",
    )  # fmt: skip


def _ipcw_g(time: np.ndarray, event: np.ndarray, train_time: Any, train_event: Any):
    if train_time is None:
        gt, ge = time, event
    else:
        gt, ge = as_float_array(train_time, "train_time"), as_float_array(train_event, "train_event")
    gtimes, gvals = censoring_survival(gt, ge)
    return lambda at: step_right(gtimes, gvals, np.asarray(at, dtype=float))


def time_dependent_auc(
    time: Any,
    event: Any,
    risk: Any,
    times: Any,
    *,
    train_time: Any = None,
    train_event: Any = None,
) -> SurvivalCurveMetric:
    """Cumulative/dynamic time-dependent AUC with IPCW (Uno et al. 2007; Hung & Chiang 2010).

    Cases at time t: event at or before t (weighted 1/G(T_i)); controls: still event-free after t.
    Ties in risk count 1/2. ``risk`` may be one score per subject or an (n, len(times)) array.

    Returns
    -------
    SurvivalCurveMetric
        ``table``: ``time, auc, n_cases, n_controls``; ``summary_estimate``: the KM-weighted mean AUC
        over ``times`` (as scikit-survival ``cumulative_dynamic_auc``), method ``"mean_auc"``.
    """
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    r = np.asarray(risk, dtype=float)
    tt = np.atleast_1d(np.asarray(times, dtype=float))
    r2 = r[:, None] * np.ones(len(tt)) if r.ndim == 1 else r
    if r2.shape != (len(t), len(tt)):
        raise AnalysisError(f"time_dependent_auc: risk must have shape (n,) or (n, {len(tt)}), found {r.shape}")
    keep = complete_mask("time_dependent_auc", time=t, event=e, risk=r2)
    t, e, r2 = t[keep], e[keep].astype(int), r2[keep]
    check_survival(t, e, "time_dependent_auc")
    g = _ipcw_g(t, e, train_time, train_event)
    gi = g(t)
    rows = []
    for k, tk in enumerate(tt):
        case = (t <= tk) & (e == 1)
        ctrl = t > tk
        if not case.any() or not ctrl.any():
            rows.append({"time": tk, "auc": np.nan, "n_cases": int(case.sum()), "n_controls": int(ctrl.sum())})
            continue
        rc = np.sort(r2[ctrl, k])
        ri = r2[case, k]
        less = np.searchsorted(rc, ri, side="left")
        ties = np.searchsorted(rc, ri, side="right") - less
        w = 1.0 / gi[case]
        auc = float(w @ (less + 0.5 * ties) / (w.sum() * len(rc)))
        rows.append({"time": tk, "auc": auc, "n_cases": int(case.sum()), "n_controls": int(ctrl.sum())})
    out = pd.DataFrame(rows)
    # KM-weighted mean AUC
    s_at = product_limit(t, e).at(tt)
    wts = -np.diff(np.r_[1.0, s_at])
    ok = np.isfinite(out["auc"].to_numpy())
    mean_auc = float((wts[ok] * out["auc"].to_numpy()[ok]).sum() / (1 - s_at[-1])) if ok.any() else np.nan
    out.attrs["mean_auc"] = mean_auc  # pre-protocol location, kept one release
    return SurvivalCurveMetric(out, Estimate(
        mean_auc, n=len(t), method="mean_auc", extra={"times": tt.tolist()},
        convention="cumulative/dynamic AUC with IPCW (Uno 2007), mean weighted by KM jumps "
        "(scikit-survival cumulative_dynamic_auc)",
    ))  # fmt: skip


def brier_score(
    time: Any,
    event: Any,
    surv_prob: Any,
    times: Any,
    *,
    train_time: Any = None,
    train_event: Any = None,
) -> SurvivalCurveMetric:
    """IPCW Brier score of predicted survival probabilities (Graf et al. 1999).

    Parameters
    ----------
    surv_prob : array (n, len(times))
        Predicted S(t | x_i) at each of ``times``.

    Returns
    -------
    SurvivalCurveMetric
        ``table``: ``time, brier``; ``summary_estimate``: the integrated Brier score, the trapezoidal
        integral over ``times`` divided by its range (NaN for a single time), method ``"integrated_brier"``.
    """
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    tt = np.atleast_1d(np.asarray(times, dtype=float))
    s = np.asarray(surv_prob, dtype=float).reshape(len(t), len(tt))
    keep = complete_mask("brier_score", time=t, event=e, surv_prob=s)
    t, e, s = t[keep], e[keep].astype(int), s[keep]
    check_survival(t, e, "brier_score")
    g = _ipcw_g(t, e, train_time, train_event)
    gi = g(t)
    gt = g(tt)
    scores = []
    for k, tk in enumerate(tt):
        died = (t <= tk) & (e == 1)
        alive = t > tk
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(died, s[:, k] ** 2 / gi, 0.0) + np.where(alive, (1 - s[:, k]) ** 2 / gt[k], 0.0)
        scores.append(float(term.mean()))
    out = pd.DataFrame({"time": tt, "brier": scores})
    ibs = float(np.trapezoid(scores, tt) / (tt[-1] - tt[0])) if len(tt) > 1 else np.nan
    if len(tt) > 1:
        out.attrs["integrated_brier"] = ibs  # pre-protocol location, kept one release
    return SurvivalCurveMetric(out, Estimate(
        ibs, n=len(t), method="integrated_brier", extra={"times": tt.tolist()},
        convention="IPCW Brier score (Graf et al. 1999), trapezoidal integral over the times / their range",
    ))  # fmt: skip
