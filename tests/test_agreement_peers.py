"""Cross-checks against independent implementations on random data (peers used as oracles, not copied)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kicc_analysis.agreement import (
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    icc,
    kendall_w,
    krippendorff_alpha,
    light_kappa,
    percent_agreement,
    scott_pi,
)


def _ratings(n=60, r=4, q=5, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, q, n)
    x = np.clip(truth[:, None] + rng.integers(-1, 2, size=(n, r)), 0, q - 1).astype(float)
    if missing:
        x[rng.random(x.shape) < missing] = np.nan
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icc_matches_pingouin(seed):
    pg = pytest.importorskip("pingouin")
    x = _ratings(seed=seed) + np.random.default_rng(seed).normal(0, 0.3, (60, 4))
    long = pd.DataFrame({"t": np.repeat(np.arange(60), 4), "r": np.tile(np.arange(4), 60), "y": x.ravel()})
    theirs = pg.intraclass_corr(long, "t", "r", "y")
    # pingouin < 0.7 labels rows ICC1..ICC3k, >= 0.7 with McGraw & Wong style names
    labels = ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"]
    theirs = theirs.assign(form=labels).set_index("form")
    ours = icc(long, "t", "r", "y")
    for form in labels:
        assert ours.loc[form, "estimate"] == pytest.approx(theirs.loc[form, "ICC"], abs=1e-10)
        assert ours.loc[form, "F"] == pytest.approx(theirs.loc[form, "F"], rel=1e-10)
        assert ours.loc[form, "p"] == pytest.approx(theirs.loc[form, "pval"], rel=1e-6, abs=1e-300)
        # pingouin rounds its CI to 2 decimals
        assert ours.loc[form, "ci_low"] == pytest.approx(theirs.loc[form, "CI95"][0], abs=0.006)
        assert ours.loc[form, "ci_high"] == pytest.approx(theirs.loc[form, "CI95"][1], abs=0.006)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_matches_sklearn_and_statsmodels(weights):
    sk = pytest.importorskip("sklearn.metrics")
    ir = pytest.importorskip("statsmodels.stats.inter_rater")
    x = _ratings(n=150, r=2, q=6, seed=4).astype(int)
    ours = cohen_kappa(x[:, 0], x[:, 1], weights=weights, categories=range(6))
    assert ours.estimate == pytest.approx(sk.cohen_kappa_score(x[:, 0], x[:, 1], weights=weights), abs=1e-12)
    table, _ = ir.to_table(x, bins=np.arange(7))
    sm = ir.cohens_kappa(table, wt={None: None, "linear": "linear", "quadratic": "quadratic"}[weights])
    assert ours.estimate == pytest.approx(sm.kappa, abs=1e-12)
    assert ours.se == pytest.approx(sm.std_kappa, rel=1e-9)
    assert ours.extra["se0"] == pytest.approx(sm.std_kappa0, rel=1e-9)


def test_fleiss_matches_statsmodels():
    ir = pytest.importorskip("statsmodels.stats.inter_rater")
    x = _ratings(n=80, r=5, seed=5).astype(int)
    counts, _ = ir.aggregate_raters(x, n_cat=5)
    assert fleiss_kappa(x, categories=range(5)).estimate == pytest.approx(ir.fleiss_kappa(counts), abs=1e-12)
    randolph = ir.fleiss_kappa(counts, method="randolph")
    assert fleiss_kappa(x, categories=range(5), method="randolph").estimate == pytest.approx(randolph, abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_matches_package_with_missing(level):
    kd = pytest.importorskip("krippendorff")
    x = _ratings(n=70, r=4, seed=6, missing=0.25) + 1  # ratio metric needs positive values
    theirs = kd.alpha(reliability_data=x.T, level_of_measurement=level, value_domain=[1, 2, 3, 4, 5])
    ours = krippendorff_alpha(x, level=level, categories=[1, 2, 3, 4, 5])
    assert ours.estimate == pytest.approx(theirs, abs=1e-10)


def test_kendall_w_matches_friedman_chi_square():
    x = _ratings(n=25, r=4, seed=7)  # many ties: exercises the tie correction
    w = kendall_w(x)
    friedman = stats.friedmanchisquare(*x)  # treatments = subjects, blocks = raters
    assert w.chi_square == pytest.approx(friedman.statistic, rel=1e-10)
    assert w.p == pytest.approx(friedman.pvalue, rel=1e-8)


@pytest.mark.parametrize("weights", [None, "quadratic"])
def test_raw_two_rater_point_estimates_equal_table_versions(weights):
    x = _ratings(n=120, r=2, q=5, seed=8)
    table = cohen_kappa(x[:, 0], x[:, 1], categories=range(5)).extra["table"]
    for func in (scott_pi, gwet_ac, brennan_prediger, percent_agreement):
        raw = func(x, weights=weights, categories=range(5))
        tab = func(table=table, weights=weights, categories=range(5))
        assert raw.estimate == pytest.approx(tab.estimate, abs=1e-12), func.__name__
        # conditional (raw, n-1) and unconditional (table, n) variances differ by O(1/n)
        assert raw.se == pytest.approx(tab.se, rel=0.05), func.__name__
    raw_alpha = krippendorff_alpha(x, categories=range(5), weights=weights)
    tab_alpha = krippendorff_alpha(table=table, categories=range(5), weights=weights)
    assert raw_alpha.estimate == pytest.approx(tab_alpha.estimate, abs=1e-12)


def test_light_kappa_is_mean_pairwise_and_jackknife_close_to_bootstrap():
    x = _ratings(n=400, r=3, seed=9)
    pairs = [cohen_kappa(x[:, a], x[:, b]).estimate for a, b in ((0, 1), (0, 2), (1, 2))]
    est = light_kappa(x, n_boot=800, seed=3)
    assert est.estimate == pytest.approx(np.mean(pairs), abs=1e-12)
    assert est.se == pytest.approx(est.extra["boot_se"], rel=0.15)
