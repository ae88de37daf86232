"""Continuous agreement: Kendall's W with and without the tie correction, Lin's CCC shifts and intervals, layout."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kicc_analysis.agreement import LayoutWarning, icc, kendall_w, lin_ccc
from kicc_analysis.results import KendallW

# 6 subjects x 4 raters with ties within raters (scores 1-5)
TIED = np.array([[1, 2, 2, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 4, 4, 3], [5, 4, 5, 5], [5, 5, 5, 4]], dtype=float)


def test_kendall_w_tie_correction_against_scipy_friedman():
    n, m = TIED.shape
    friedman = stats.friedmanchisquare(
        *TIED
    ).statistic  # blocks = raters; scipy corrects Friedman's chi-square for ties
    w = kendall_w(TIED)
    assert isinstance(w, KendallW) and w.tie_correction
    assert w.chi_square == pytest.approx(friedman, rel=1e-12)
    assert (w.statistic, w.statistic_name, w.df) == (w.chi_square, "chi-square", n - 1)
    assert w.p == pytest.approx(stats.chi2.sf(friedman, n - 1))
    # Friedman's tie correction factor C = 1 - sum(t^3 - t) / (m n (n^2 - 1)): the uncorrected statistic is chi2 * C
    ties = sum(np.sum(c**3 - c) for c in (np.unique(col, return_counts=True)[1] for col in TIED.T))
    factor = 1 - ties / (m * n * (n**2 - 1))
    raw = kendall_w(TIED, tie_correction=False)
    assert raw.chi_square == pytest.approx(friedman * factor, rel=1e-12)
    assert raw.estimate == pytest.approx(raw.chi_square / (m * (n - 1)))
    assert raw.estimate < w.estimate and "uncorrected" in raw.convention
    # without ties both are the same number
    untied = np.argsort(np.argsort(TIED + np.arange(4) * 1e-3, axis=0), axis=0).astype(float)
    assert kendall_w(untied).estimate == pytest.approx(kendall_w(untied, tie_correction=False).estimate)


def test_kendall_w_chi_square_is_not_in_z():
    w = kendall_w(TIED)
    frame = w.to_frame()
    assert np.isnan(frame.loc[0, "z"]) and frame.loc[0, "statistic"] == w.chi_square
    assert frame.loc[0, "chi_square"] == w.chi_square
    with pytest.deprecated_call(match="chi_square"):
        assert w.z == w.chi_square  # old name, one release
    assert "chi-square(5) =" in str(w)


def test_lin_ccc_shifts_follow_epir_direction():
    # y = a + b x: epiR epi.ccc's s.shift = sd(y)/sd(x) = b, l.shift = (mean y - mean x) / sqrt(sd x sd y)
    # (1/n SDs), rho_c = 2 b s^2 / (s^2 + b^2 s^2 + (mean y - mean x)^2).
    rng = np.random.default_rng(7)
    x = rng.normal(50, 10, 40)
    a, b = 5.0, 1.3
    y = a + b * x
    s = x.std()
    shift = a + (b - 1) * x.mean()
    est = lin_ccc(x, y)
    assert est.extra["scale_shift"] == pytest.approx(b)
    assert est.extra["location_shift"] == pytest.approx(shift / (np.sqrt(b) * s))
    assert est.estimate == pytest.approx(2 * b * s**2 / (s**2 + b**2 * s**2 + shift**2))
    assert est.extra["accuracy"] == pytest.approx(est.estimate)  # r = 1
    back = lin_ccc(y, x)  # swapping the methods inverts the scale shift and negates the location shift
    assert back.extra["scale_shift"] == pytest.approx(1 / b)
    assert back.extra["location_shift"] == pytest.approx(-est.extra["location_shift"])
    with pytest.deprecated_call(match="location_shift"):
        assert est.extra["u"] == pytest.approx(back.extra["location_shift"])
    with pytest.deprecated_call(match="scale_shift"):
        assert est.extra["v"] == pytest.approx(1 / b)


def test_lin_ccc_asymptotic_and_z_transform_intervals():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 60)
    y = x + rng.normal(0.2, 0.4, 60)
    z_ci = lin_ccc(x, y)
    asym = lin_ccc(x, y, ci="asymptotic")
    q = stats.norm.ppf(0.975)
    # asymptotic: rho_c +/- z * SE with Lin's (2000) SE; z-transform: tanh(atanh(rho_c) +/- z * SE / (1 - rho_c^2))
    assert (asym.ci_low, asym.ci_high) == pytest.approx((asym.estimate - q * asym.se, asym.estimate + q * asym.se))
    se_z = z_ci.se / (1 - z_ci.estimate**2)
    expected = np.tanh(np.arctanh(z_ci.estimate) + np.array([-q, q]) * se_z)
    assert (z_ci.ci_low, z_ci.ci_high) == pytest.approx(tuple(expected))
    assert (asym.extra["z_ci_low"], asym.extra["z_ci_high"]) == (z_ci.ci_low, z_ci.ci_high)
    assert (z_ci.extra["asymptotic_ci_low"], z_ci.extra["asymptotic_ci_high"]) == (asym.ci_low, asym.ci_high)
    assert z_ci.ci_high < 1 and "z scale" in z_ci.convention and "asymptotic" in asym.convention


def test_transposed_icc_input_warns_and_layout_gives_the_same_table():
    sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    with pytest.warns(LayoutWarning):
        icc(sf.T)  # 4 "subjects" x 6 "raters"
    right = icc(sf.T, layout="raters_x_subjects")
    assert right.loc["ICC3", "estimate"] == pytest.approx(0.714841, abs=1e-6)  # Shrout & Fleiss (1979)
    assert right.loc["ICC3", "estimate"] == icc(sf).loc["ICC3", "estimate"]


def test_icc_table_and_bland_altman_carry_the_estimate_protocol():
    from kicc_analysis.agreement import bland_altman

    sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    table = icc(sf, icc2k_ci="mcgraw_wong")
    assert {"estimate", "se", "ci_low", "ci_high", "p", "n", "method", "convention"} <= set(table.columns)
    assert table["n"].eq(6).all() and table.loc["ICC2k", "convention"].endswith("CI McGraw & Wong")
    ba = bland_altman([1.0, 2.0, 3.0, 4.0, 5.5], [1.1, 2.2, 2.9, 4.3, 5.0])
    frame = ba.to_frame()
    assert {"p", "method", "convention"} <= set(frame.columns)
    text = str(ba)
    assert text.startswith("Bland-Altman, n = 5") and f"bias: {ba.bias.estimate:.3f}" in text
    assert "convention: " in text
