"""The one Kaplan–Meier core (:mod:`kicc_analysis.prognosis._km`) against the copies it replaced.

Each ``_old_*`` function below is the product-limit code that one module carried before the core existed
(verbatim apart from its name), frozen here so that the equivalence stays checked after the switch. On
random data with heavy ties (integer times, events and censorings sharing times) the core must give the
same values to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

from kicc_analysis.prognosis._km import product_limit, step_left, step_right


# --- frozen copies of the replaced code -------------------------------------------------------------------
def _old_survival_km(time: np.ndarray, event: np.ndarray):  # survival._km_counts + _fit_one
    utimes, inverse = np.unique(time, return_inverse=True)
    n_event = np.bincount(inverse, weights=event, minlength=len(utimes))
    n_total = np.bincount(inverse, minlength=len(utimes)).astype(float)
    n_risk = n_total[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - n_event / n_risk)
        terms = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    return utimes, n_risk, n_event, n_total - n_event, surv, np.cumsum(terms)


def _old_cox_km_left(time: np.ndarray, event: np.ndarray):  # cox._km_left
    utimes, inverse = np.unique(time, return_inverse=True)
    d = np.bincount(inverse, weights=event, minlength=len(utimes))
    n_at = np.bincount(inverse, minlength=len(utimes)).astype(float)
    risk = n_at[::-1].cumsum()[::-1]
    surv = np.cumprod(1 - d / risk)

    def left_limit(t: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(utimes, t, side="left") - 1
        return np.r_[1.0, surv][idx + 1]

    return left_limit


def _old_concordance_censoring_survival(time: np.ndarray, event: np.ndarray):  # concordance.censoring_survival
    utimes, inverse = np.unique(time, return_inverse=True)
    cens = np.bincount(inverse, weights=(event == 0).astype(float), minlength=len(utimes))
    tot = np.bincount(inverse, minlength=len(utimes)).astype(float)
    events = tot - cens
    at_risk = tot[::-1].cumsum()[::-1] - events
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.cumprod(np.where(at_risk > 0, 1.0 - cens / at_risk, 1.0))
    return utimes, g


def _old_concordance_step(times, values, at, left=False):  # concordance._step
    idx = np.searchsorted(times, at, side="left" if left else "right") - 1
    return np.r_[1.0, values][idx + 1]


def _old_concordance_km_weights(t, e, tt):  # time_dependent_auc: KM for the mean-AUC weights
    ut, inv = np.unique(t, return_inverse=True)
    d = np.bincount(inv, weights=e, minlength=len(ut))
    nrisk = np.bincount(inv, minlength=len(ut))[::-1].cumsum()[::-1]
    s = np.cumprod(1 - d / nrisk)
    return _old_concordance_step(ut, s, tt)


def _old_cr_all_cause(time: np.ndarray, etype: np.ndarray):  # competing_risks._aj (all-cause KM)
    utimes, inv = np.unique(time, return_inverse=True)
    m = len(utimes)
    tot = np.bincount(inv, minlength=m).astype(float)
    n = tot[::-1].cumsum()[::-1]
    d = np.bincount(inv, weights=(etype != 0).astype(float), minlength=m)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(np.where(n > 0, 1 - d / n, 1.0))
    return utimes, n, d, surv, np.r_[1.0, surv[:-1]]


def _old_cr_censoring_km(time: np.ndarray, etype: np.ndarray):  # competing_risks._censoring_km
    utimes, inv = np.unique(time, return_inverse=True)
    tot = np.bincount(inv, minlength=len(utimes)).astype(float)
    cens = np.bincount(inv, weights=(etype == 0).astype(float), minlength=len(utimes))
    at_risk = tot[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.cumprod(np.where(at_risk > 0, 1 - cens / at_risk, 1.0))
    return utimes, g


def _old_cr_g_left(gt, gv, t):  # competing_risks._g_left
    return np.r_[1.0, gv][np.searchsorted(gt, t, side="left")]


def _old_dca_km_at(time, event, horizon):  # decision_curve._km_at
    if len(time) == 0:
        return np.nan
    ut, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event, minlength=len(ut))
    tot = np.bincount(inv, minlength=len(ut)).astype(float)
    risk = tot[::-1].cumsum()[::-1]
    s = np.cumprod(1 - d / risk)
    if horizon > ut[-1]:
        return np.nan
    i = np.searchsorted(ut, horizon, side="right") - 1
    return 1.0 if i < 0 else float(s[i])


def _old_fh_weights(n_risk, n_event, p, q):  # survival._weights("fleming-harrington")
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(np.where(n_risk > 0, 1.0 - n_event / n_risk, 1.0))
    s_left = np.r_[1.0, s[:-1]]
    return s_left**p * (1.0 - s_left) ** q


def _old_gray_group_km(t, e, g, ng):  # competing_risks._gray_stratum: all-cause KM per group, pooled grid
    ut, inv = np.unique(t, return_inverse=True)
    nt = len(ut)
    cell = inv * ng + g

    def count(mask):
        return np.bincount(cell[mask], minlength=nt * ng).reshape(nt, ng).astype(float)

    d = count(e != 0)
    n = count(np.ones(len(t), dtype=bool))[::-1].cumsum(axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(n > 0, (n - d) / n, 1.0)
    return ut, np.cumprod(step, axis=0)


# --- random data with many ties ---------------------------------------------------------------------------
def _data(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 40, n).astype(float)
    etype = rng.choice([0, 1, 2], n, p=[0.35, 0.4, 0.25])
    if seed % 2:  # make the last time all events so that S reaches 0
        time[rng.integers(0, n)] = 100.0
        etype[time == 100.0] = 1
    if seed == 7:  # non-integer times (the sorting path of the core rather than the integer-count path)
        time = time + np.round(rng.random(n), 1)
    probe = np.r_[0.0, 0.5, np.unique(time), np.unique(time) + 0.5, 1e6]
    return time, etype, (etype > 0).astype(float), probe


SEEDS = [0, 1, 2, 3, 7]


def test_integer_and_sorting_paths_agree_with_weights() -> None:
    from kicc_analysis.prognosis._km import _counts_integer_times, _counts_sorted

    time, _, event, _ = _data(0)
    w = np.random.default_rng(9).random(len(time))
    fast = _counts_integer_times(time, event, w)
    assert fast is not None and _counts_integer_times(time + 0.5, event, w) is None
    for a, b in zip(fast, _counts_sorted(time, event, w), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    weighted = product_limit(time, event, weights=np.full(len(time), 2.0))
    np.testing.assert_allclose(weighted.surv, product_limit(time, event).surv, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_survival_copy(seed: int) -> None:
    time, _, event, _ = _data(seed)
    old = _old_survival_km(time, event)
    km = product_limit(time, event)
    for a, b in zip(old, (km.time, km.n_risk, km.n_event, km.n_other, km.surv, km.var_log), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_cox_left_limit(seed: int) -> None:
    time, _, event, probe = _data(seed)
    km = product_limit(time, event)
    np.testing.assert_allclose(km.before(probe), _old_cox_km_left(time, event)(probe), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(step_left(km.time, km.surv, probe), km.before(probe))


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_concordance_copies(seed: int) -> None:
    time, _, event, probe = _data(seed)
    gt, gv = _old_concordance_censoring_survival(time, event)
    g = product_limit(time, 1 - event, tied_other="leave_first")
    np.testing.assert_allclose(g.time, gt)
    np.testing.assert_allclose(g.surv, gv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.at(probe), _old_concordance_step(gt, gv, probe), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(step_left(gt, gv, probe), _old_concordance_step(gt, gv, probe, left=True))
    km = product_limit(time, event)
    np.testing.assert_allclose(km.at(probe), _old_concordance_km_weights(time, event, probe), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_competing_risks_copies(seed: int) -> None:
    time, etype, event, probe = _data(seed)
    ut, n, d, surv, s_left = _old_cr_all_cause(time, etype)
    km = product_limit(time, event)
    np.testing.assert_allclose(km.n_risk, n)
    np.testing.assert_allclose(km.n_event, d)
    np.testing.assert_allclose(km.surv, surv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(km.before(km.time), s_left, rtol=1e-12, atol=1e-14)
    gt, gv = _old_cr_censoring_km(time, etype)
    g = product_limit(time, (etype == 0).astype(float), tied_other="at_risk")
    np.testing.assert_allclose(g.surv, gv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.before(probe), _old_cr_g_left(gt, gv, probe), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_decision_curve_copy(seed: int) -> None:
    from kicc_analysis.prognosis.decision_curve import _km_at

    time, _, event, probe = _data(seed)
    for h in probe:
        old = _old_dca_km_at(time, event, h)
        new = _km_at(time, event, h)
        assert (np.isnan(old) and np.isnan(new)) or new == pytest.approx(old, abs=1e-14)
    assert np.isnan(_km_at(time[:0], event[:0], 1.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_core_matches_old_fleming_harrington_and_gray_group_curves(seed: int) -> None:
    from kicc_analysis.prognosis._km import survival_from_counts
    from kicc_analysis.prognosis.survival import _weights

    time, etype, event, _ = _data(seed)
    km = product_limit(time, event)
    ev = km.n_event > 0
    r, d = km.n_risk[ev], km.n_event[ev]
    np.testing.assert_allclose(_weights("fleming-harrington", r, d, 1.0, 0.5), _old_fh_weights(r, d, 1.0, 0.5),
                               rtol=1e-12, atol=1e-14)  # fmt: skip
    group = np.random.default_rng(seed).integers(0, 3, len(time))
    ut, old = _old_gray_group_km(time, etype, group, 3)
    for j in range(3):  # the core per group, looked up on the pooled grid
        mine = product_limit(time[group == j], event[group == j]).at(ut)
        np.testing.assert_allclose(mine, old[:, j], rtol=1e-12, atol=1e-14)
    n = np.vstack([np.bincount(np.searchsorted(ut, time[group == j]), minlength=len(ut)) for j in range(3)]).T
    dd = np.vstack([np.bincount(np.searchsorted(ut, time[(group == j) & (etype > 0)]), minlength=len(ut))
                    for j in range(3)]).T  # fmt: skip
    np.testing.assert_allclose(survival_from_counts(n[::-1].cumsum(axis=0)[::-1].astype(float), dd), old,
                               rtol=1e-12, atol=1e-14)  # fmt: skip


def test_tied_other_conventions_differ_as_documented() -> None:
    # one event and one censoring at t = 2: the censoring curve G drops by 1/2 when the event stays at
    # risk (crr) and by 1/1 when it leaves first (Uno / scikit-survival reverse=True)
    time = np.array([1.0, 2.0, 2.0, 3.0])
    censored = np.array([0.0, 1.0, 0.0, 0.0])
    assert product_limit(time, censored, tied_other="at_risk").at(2.0) == pytest.approx(2 / 3)
    assert product_limit(time, censored, tied_other="leave_first").at(2.0) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="tied_other"):
        product_limit(time, censored, tied_other="after")


def test_step_functions() -> None:
    t = np.array([1.0, 3.0])
    v = np.array([0.5, 0.25])
    np.testing.assert_allclose(step_right(t, v, [0, 1, 2, 3, 4]), [1, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(step_left(t, v, [0, 1, 2, 3, 4]), [1, 1, 0.5, 0.5, 0.25])
