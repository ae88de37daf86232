"""Property tests: perfect agreement, label-permutation invariance, CI containment, bootstrap vs analytic CI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kicc_analysis.agreement import (
    brennan_prediger,
    cohen_kappa,
    conger_kappa,
    fleiss_kappa,
    gwet_ac,
    icc,
    krippendorff_alpha,
    light_kappa,
    percent_agreement,
    scott_pi,
)

NOMINAL = [
    cohen_kappa,
    fleiss_kappa,
    conger_kappa,
    light_kappa,
    gwet_ac,
    brennan_prediger,
    percent_agreement,
    scott_pi,
    krippendorff_alpha,
]


def _two_cols(func, x, **kw):
    if func is cohen_kappa:
        return func(x[:, 0], x[:, 1], **kw)
    return func(x, **kw)


ratings_matrix = st.integers(min_value=6, max_value=30).flatmap(
    lambda n: st.integers(min_value=2, max_value=4).flatmap(
        lambda r: st.lists(
            st.lists(st.integers(min_value=0, max_value=3), min_size=r, max_size=r), min_size=n, max_size=n
        )
    )
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4), min_size=4, max_size=40), st.integers(2, 4))
def test_perfect_agreement_gives_one(values, raters):
    if len(set(values)) < 2:
        values = values + [v + 1 for v in values[:1]]
    x = np.repeat(np.array(values, float)[:, None], raters, axis=1)
    for func in NOMINAL:
        est = _two_cols(func, x, categories=range(6))
        assert est.estimate == pytest.approx(1.0), func.__name__
    for weights in ("linear", "quadratic"):
        assert gwet_ac(x, weights=weights, categories=range(6)).estimate == pytest.approx(1.0)
        assert cohen_kappa(x[:, 0], x[:, 1], weights=weights).estimate == pytest.approx(1.0)
    assert krippendorff_alpha(x, level="ordinal").estimate == pytest.approx(1.0)
    table = icc(x + np.arange(len(values))[:, None] * 0.0)
    assert table.loc["ICC1", "estimate"] == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(ratings_matrix, st.permutations([0, 1, 2, 3]))
def test_nominal_coefficients_invariant_to_relabelling(rows, perm):
    x = np.array(rows, float)
    relabelled = np.array(perm, float)[x.astype(int)]
    for func in NOMINAL:
        a = _two_cols(func, x, categories=[0, 1, 2, 3])
        b = _two_cols(func, relabelled, categories=[0, 1, 2, 3])
        if np.isfinite(a.estimate):
            assert b.estimate == pytest.approx(a.estimate, abs=1e-12), func.__name__
            if np.isfinite(a.se):
                assert b.se == pytest.approx(a.se, abs=1e-10), func.__name__


@settings(max_examples=25, deadline=None)
@given(ratings_matrix)
def test_confidence_interval_contains_estimate(rows):
    x = np.array(rows, float)
    for func in NOMINAL + [lambda d, **kw: gwet_ac(d, weights="quadratic", **kw)]:
        est = _two_cols(func, x, categories=[0, 1, 2, 3])
        if np.isfinite(est.estimate) and np.isfinite(est.ci_low):
            assert est.ci_low <= est.estimate + 1e-12 <= est.ci_high + 2e-12
            assert -1 <= est.ci_low and est.ci_high <= 1


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_missing_ratings_match_complete_when_nothing_missing(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(25, 3)).astype(float)
    y = np.vstack([x, np.full((1, 3), np.nan)])  # an unrated subject is dropped, nothing else changes
    assert fleiss_kappa(y).estimate == pytest.approx(fleiss_kappa(x).estimate)
    assert fleiss_kappa(y).extra["dropped"] == {"no_rating": 1}


def _simulated(n, raters=3, q=5, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, q, n)
    noise = rng.integers(-1, 2, size=(n, raters)) * (rng.random((n, raters)) < 0.4)
    return np.clip(truth[:, None] + noise, 0, q - 1).astype(float)


@pytest.mark.parametrize(
    "func,kwargs",
    [
        (fleiss_kappa, {}),
        (gwet_ac, {"weights": "quadratic"}),
        (krippendorff_alpha, {"level": "ordinal"}),
        (conger_kappa, {}),
        (brennan_prediger, {}),
    ],
)
def test_bootstrap_close_to_analytic_on_large_sample(func, kwargs):
    x = _simulated(800)
    est = func(x, categories=range(5), n_boot=1000, seed=1, **kwargs)
    assert est.extra["boot_se"] == pytest.approx(est.se, rel=0.15)
    assert est.extra["boot_ci_low"] == pytest.approx(est.ci_low, abs=0.02)
    assert est.extra["boot_ci_high"] == pytest.approx(est.ci_high, abs=0.02)


def test_cohen_bootstrap_close_to_fce():
    x = _simulated(800, raters=2)
    est = cohen_kappa(x[:, 0], x[:, 1], weights="linear", n_boot=1000, seed=2)
    assert est.extra["boot_se"] == pytest.approx(est.se, rel=0.15)
    assert est.extra["boot_ci_low"] == pytest.approx(est.ci_low, abs=0.02)


def test_two_rater_conger_equals_cohen():
    x = _simulated(200, raters=2)
    assert conger_kappa(x).estimate == pytest.approx(cohen_kappa(x[:, 0], x[:, 1]).estimate)
    assert scott_pi(x).estimate == pytest.approx(scott_pi(table=cohen_kappa(x[:, 0], x[:, 1]).extra["table"]).estimate)


def test_light_fast_jackknife_equals_brute_force():
    from kicc_analysis.agreement._gwet import _prepare
    from kicc_analysis.agreement._multi_rater import _pairwise_kappa_stat

    x = _simulated(120, raters=4, seed=5)
    x[np.random.default_rng(6).random(x.shape) < 0.1] = np.nan  # missing ratings change the pair tables
    est = light_kappa(x, categories=range(5))
    prep = _prepare(x, None, None, None, range(5), None)
    jack = _pairwise_kappa_stat(prep.codes, 5, prep.weights)(1.0 - np.eye(prep.codes.shape[0]))
    m = jack.size
    assert est.se == pytest.approx(np.sqrt((m - 1) / m * np.sum((jack - jack.mean()) ** 2)), rel=1e-10)
