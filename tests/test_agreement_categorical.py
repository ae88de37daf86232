"""Categorical agreement: Krippendorff's alpha SE conventions, input layout, weights by value or by rank."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kicc_analysis.agreement import LayoutWarning, krippendorff_alpha
from kicc_analysis.errors import AnalysisError

NAN = np.nan
# Krippendorff (2011) reliability data: 4 observers (rows) x 12 units; = irrCAC's cac.raw4raters transposed.
RELIABILITY_DATA = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, NAN],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)
# irrCAC's distrib.6raters: 15 subjects x 5 diagnoses, number of the 6 psychiatrists choosing each.
DISTRIB_6RATERS = np.array(
    [
        [0, 0, 0, 6, 0],
        [0, 3, 0, 0, 3],
        [0, 1, 4, 0, 1],
        [0, 0, 0, 0, 6],
        [0, 3, 0, 3, 0],
        [2, 0, 4, 0, 0],
        [0, 0, 4, 0, 2],
        [2, 0, 3, 1, 0],
        [2, 0, 0, 4, 0],
        [0, 0, 0, 0, 6],
        [1, 0, 0, 5, 0],
        [1, 1, 0, 4, 0],
        [0, 3, 3, 0, 0],
        [1, 0, 0, 5, 0],
        [0, 2, 0, 3, 1],
    ]
)


def test_krippendorff_se_default_reproduces_current_irrcac_raw():
    # R irrCAC, kgwet/irrCAC README.md (package 1.4 source, krippen.alpha.raw(cac.raw4raters)):
    #   coeff.val 0.74342, coeff.se 0.14548, conf.int (0.423,1), p.value 0.0001693123 (one-sided, t with n0 - 1 = 11 df)
    est = krippendorff_alpha(RELIABILITY_DATA, layout="raters_x_subjects", categories=[1, 2, 3, 4, 5])
    assert est.estimate == pytest.approx(0.74342, abs=6e-6)
    assert est.se == pytest.approx(0.14548, abs=6e-6)
    assert (round(est.ci_low, 3), est.ci_high) == (0.423, 1.0)
    assert est.p / 2 == pytest.approx(0.0001693123, rel=1e-5)  # ours is two-sided
    assert (est.extra["pa"], est.extra["pe"]) == pytest.approx((0.805, 0.24))


def test_krippendorff_se_irrcac_1_0_reproduces_the_cran_vignette():
    # R irrCAC 1.0 (CRAN), vignette "overview" printout of krippen.alpha.raw(cac.raw4raters):
    #   0.74342, SE 0.14557, (0.419,1), p 0.000459425698 (two-sided, t with 10 df); ../shared reference case too.
    est = krippendorff_alpha(
        RELIABILITY_DATA, layout="raters_x_subjects", categories=[1, 2, 3, 4, 5], se_method="irrcac_1.0"
    )
    assert est.se == pytest.approx(0.14557, abs=6e-6)
    assert round(est.ci_low, 3) == 0.419
    assert est.p == pytest.approx(0.000459425698154714, rel=1e-4)


def test_corrected_and_uncorrected_centres_agree_without_missing_ratings():
    # With every subject rated by every rater r_i = rbar and the centring term vanishes: both forms coincide.
    complete = RELIABILITY_DATA[:, 1:9]
    a = krippendorff_alpha(complete, layout="raters_x_subjects")
    b = krippendorff_alpha(complete, layout="raters_x_subjects", se_method="irrcac_1.0")
    assert a.se == pytest.approx(b.se, rel=1e-12)


def test_krippendorff_count_table_se_reproduces_irrcac_dist():
    # R irrCAC krippen.alpha.dist(distrib.6raters), kgwet/irrCAC README.md:
    #   coeff 0.4204384, stderr 0.08243228, conf.int (0.244,0.597), p.value 8.078607e-05 (one-sided), pa 0.5560988,
    #   pe 0.2340741, n 15
    est = krippendorff_alpha(counts=DISTRIB_6RATERS, se_method="irrcac_dist")
    assert est.estimate == pytest.approx(0.4204384, abs=1e-7)
    assert est.se == pytest.approx(0.08243228, abs=1e-8)
    assert (round(est.ci_low, 3), round(est.ci_high, 3)) == (0.244, 0.597)
    assert est.p / 2 == pytest.approx(8.078607e-05, rel=1e-6)
    assert (est.extra["pa"], est.extra["pe"], est.n) == pytest.approx((0.5560988, 0.2340741, 15), abs=1e-7)
    # the raw-data linearisation on the same counts is a different (documented) number
    assert krippendorff_alpha(counts=DISTRIB_6RATERS).se != pytest.approx(est.se, abs=1e-4)
    with pytest.raises(AnalysisError, match="se_method"):
        krippendorff_alpha(counts=DISTRIB_6RATERS, se_method="gwet")


def test_transposed_reliability_data_warns_and_explicit_layout_matches_krippendorff_package():
    kd = pytest.importorskip("krippendorff")
    with pytest.warns(LayoutWarning, match="raters_x_subjects"):
        wrong = krippendorff_alpha(RELIABILITY_DATA)  # 4 "subjects" x 12 "raters": the silent trap of issue 14
    assert wrong.estimate < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right = krippendorff_alpha(RELIABILITY_DATA, layout="raters_x_subjects")
        same = krippendorff_alpha(RELIABILITY_DATA.T, layout="subjects_x_raters")
    peer = kd.alpha(reliability_data=RELIABILITY_DATA, level_of_measurement="nominal")
    assert right.estimate == pytest.approx(peer, abs=1e-12) and round(peer, 2) == 0.74
    assert same.estimate == right.estimate
    with pytest.raises(AnalysisError, match="layout"):
        krippendorff_alpha(RELIABILITY_DATA, layout="units_by_coders")


# Two raters' scores on a 0-5 scale where nobody used 3 and 4: observed values 0, 1, 2, 5 are not equally spaced.
SCORES_A = [0, 1, 2, 5, 5, 1, 0, 2, 2, 5, 1, 0, 5, 2, 1]
SCORES_B = [0, 2, 2, 5, 2, 1, 1, 2, 5, 5, 0, 0, 5, 1, 1]


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weights_by_rank_reproduce_sklearn_and_statsmodels(weights):
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa, to_table

    from kicc_analysis.agreement import ConventionWarning, cohen_kappa

    peer = cohen_kappa_score(SCORES_A, SCORES_B, weights=weights)
    ours = cohen_kappa(SCORES_A, SCORES_B, weights=weights, weight_scale="rank")
    assert ours.estimate == pytest.approx(peer, abs=1e-12)
    assert ours.extra["weights"] == f"{weights} (ranks)"
    table = to_table(np.column_stack([SCORES_A, SCORES_B]))[0]
    sm = cohens_kappa(table, wt=weights)
    assert ours.estimate == pytest.approx(sm.kappa, abs=1e-12)
    assert ours.se == pytest.approx(sm.std_kappa, abs=1e-12)
    # declared 0-5 levels: ranks = values, and scikit-learn with labels=range(6) agrees with the default
    declared = cohen_kappa(SCORES_A, SCORES_B, weights=weights, categories=range(6), weight_scale="rank")
    assert declared.estimate == pytest.approx(
        cohen_kappa_score(SCORES_A, SCORES_B, weights=weights, labels=list(range(6))), abs=1e-12
    )
    # the default (values) differs here, and says so
    with pytest.warns(ConventionWarning, match="weight_scale='rank'"):
        by_value = cohen_kappa(SCORES_A, SCORES_B, weights=weights)
    assert by_value.estimate != pytest.approx(ours.estimate, abs=1e-3)
    assert by_value.estimate == pytest.approx(declared.estimate, abs=1e-12)  # values 0..5 = declared ranks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cohen_kappa(SCORES_A, SCORES_B, weights=weights, weight_scale="value")  # explicit: no warning
        cohen_kappa(SCORES_A, SCORES_B, weights=weights, categories=range(6))  # equally spaced: no warning


def test_weight_scale_reaches_multi_rater_coefficients():
    from kicc_analysis.agreement import gwet_ac

    x = np.column_stack([SCORES_A, SCORES_B, SCORES_A[::-1]])
    rank = gwet_ac(x, weights="quadratic", weight_scale="rank")
    declared = gwet_ac(x, weights="quadratic", categories=[0, 1, 2, 5], weight_scale="rank")
    value = gwet_ac(x, weights="quadratic", weight_scale="value")
    assert rank.estimate == declared.estimate != value.estimate
    with pytest.raises(AnalysisError, match="weight_scale"):
        gwet_ac(x, weights="quadratic", weight_scale="position")
