"""The one product-limit (Kaplan–Meier) core of the prognosis package (private).

Every module that needs a Kaplan–Meier curve or a step-function lookup (survival, cox, concordance,
competing_risks, decision_curve) calls :func:`product_limit` and :func:`step_right` / :func:`step_left`.

Ties between the counted transition and the other kind (an event and a censoring at the same time) are
an explicit argument, ``tied_other``:

* ``"at_risk"`` — subjects whose *other* transition happens at t are still at risk at t. For the survival
  curve (counted transition = event) this is the usual convention that censorings at t happen just after
  the deaths at t: R ``survival::survfit`` (Therneau & Grambsch 2000, §2.1), SAS ``PROC LIFETEST``,
  lifelines. For the censoring distribution G it is what R ``cmprsk::crr`` uses
  (``survfit(Surv(ftime, cenind) ~ 1)``: a subject failing at a censoring time is at risk for it).
* ``"leave_first"`` — subjects whose other transition happens at t leave the risk set first. For G this
  places censorings tied with events just after the events (events are not at risk of being censored at
  their own time): Uno et al. (2011) IPCW, R ``survAUC``/``timeROC`` style and scikit-survival
  ``kaplan_meier_estimator(reverse=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ProductLimit", "product_limit", "survival_from_counts", "step_right", "step_left"]

TIED_OTHER = ("at_risk", "leave_first")


@dataclass(frozen=True)
class ProductLimit:
    """A product-limit curve on the distinct observed times (right-continuous steps).

    Attributes
    ----------
    time : ndarray
        Distinct observed times (every subject's time, whatever its status), ascending.
    n_risk : ndarray
        Number (or weight) at risk for the counted transition at each time.
    n_event : ndarray
        Number of counted transitions at each time.
    n_other : ndarray
        Number of subjects with the other status at each time.
    surv : ndarray
        Product-limit estimate just after each time, ``prod(1 - n_event / n_risk)``.
    var_log : ndarray
        Greenwood variance of ``log surv``: cumulative ``d / (n (n - d))`` (inf from the time S reaches 0).
    """

    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_other: np.ndarray
    surv: np.ndarray
    var_log: np.ndarray

    def at(self, t: np.ndarray | float) -> np.ndarray:
        """S(t), right-continuous (1 before the first time)."""
        return step_right(self.time, self.surv, t)

    def before(self, t: np.ndarray | float) -> np.ndarray:
        """S(t-), the left limit (1 up to and including the first time)."""
        return step_left(self.time, self.surv, t)


def product_limit(
    time: np.ndarray,
    event: np.ndarray,
    *,
    tied_other: str = "at_risk",
    weights: np.ndarray | None = None,
) -> ProductLimit:
    """Product-limit estimate of the transition flagged by ``event`` (clean 1-D arrays).

    Parameters
    ----------
    time : ndarray
        Observed time per subject.
    event : ndarray of 0/1
        1 = the counted transition (death for S, censoring for G), 0 = the other status.
    tied_other : {"at_risk", "leave_first"}
        Whether subjects with the other status at a time count at risk at that time (see module notes).
    weights : ndarray, optional
        Case weights (default 1).

    Returns
    -------
    ProductLimit
    """
    if tied_other not in TIED_OTHER:
        raise ValueError(f"tied_other must be one of {TIED_OTHER}, found {tied_other!r}")
    time = np.asarray(time, dtype=float)
    ev = np.asarray(event, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    counted = _counts_integer_times(time, ev, w)
    if counted is None:
        counted = _counts_sorted(time, ev, w)
    utimes, n_total, n_event = counted
    n_other = n_total - n_event
    n_risk = n_total[::-1].cumsum()[::-1]
    if tied_other == "leave_first":
        n_risk = n_risk - n_other
    surv = survival_from_counts(n_risk, n_event)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)  # inf once S reaches 0
    return ProductLimit(utimes, n_risk, n_event, n_other, surv, np.cumsum(terms))


def survival_from_counts(n_risk: np.ndarray, n_event: np.ndarray) -> np.ndarray:
    """Product limit ``prod(1 - d / n)`` down axis 0 from counts at successive times (1-D, or 2-D with one
    column per group on a shared time grid); a time where nobody is at risk leaves the curve unchanged."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.cumprod(np.where(n_risk > 0, 1.0 - n_event / n_risk, 1.0), axis=0)


def _counts_integer_times(
    time: np.ndarray, ev: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Counts per distinct time without sorting when times are whole numbers over a short range (days)."""
    if len(time) < 256:
        return None
    lo, hi = float(time.min()), float(time.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > 4 * len(time):
        return None
    head = time[:256]
    if not np.array_equal(head, np.round(head)) or not np.array_equal(time, np.round(time)):
        return None
    idx = (time - lo).astype(np.int64)
    size = int(hi - lo) + 1
    n_total = np.bincount(idx, weights=w, minlength=size).astype(float)
    n_event = np.bincount(idx, weights=ev if w is None else w * ev, minlength=size)
    present = np.flatnonzero(np.bincount(idx, minlength=size))
    return lo + present.astype(float), n_total[present], n_event[present]


def _counts_sorted(time: np.ndarray, ev: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per distinct time from one sort (reduceat over the runs of equal times)."""
    order = np.argsort(time)
    ts = time[order]
    if len(ts) == 0:
        return ts, np.zeros(0), np.zeros(0)
    starts = np.r_[0, np.flatnonzero(ts[1:] != ts[:-1]) + 1]
    evs = ev[order]
    if w is None:
        n_total = np.diff(np.r_[starts, len(ts)]).astype(float)
        n_event = np.add.reduceat(evs, starts)
    else:
        ws = w[order]
        n_total = np.add.reduceat(ws, starts)
        n_event = np.add.reduceat(ws * evs, starts)
    return ts[starts], n_total, n_event


def step_right(times: np.ndarray, values: np.ndarray, at: np.ndarray | float, start: float = 1.0) -> np.ndarray:
    """Right-continuous step function: ``values[i]`` on ``[times[i], times[i+1])``, ``start`` before ``times[0]``."""
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right")
    return np.r_[start, values][idx]


def step_left(times: np.ndarray, values: np.ndarray, at: np.ndarray | float, start: float = 1.0) -> np.ndarray:
    """Left limit of the step function: ``values[i]`` on ``(times[i], times[i+1]]``, ``start`` up to ``times[0]``."""
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="left")
    return np.r_[start, values][idx]
