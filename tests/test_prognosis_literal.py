"""Reference cases copied as literal data so that they run everywhere (no ../shared needed).

Sources: Freireich et al. (1963) 6-MP trial as tabulated by Gehan (1965) with R ``survfit``/``survdiff``
output; scikit-survival's concordance test fixtures (Harrell and Uno C); statsmodels/Stata stcompet CIF
example; Hanley & McNeil (1982) Table 1; R ``survival`` 3.x ``cox.zph`` is tested in the shared-data module.
"""

from __future__ import annotations

import numpy as np
import pytest

from kicc_analysis.prognosis import cumulative_incidence, harrell_c, kaplan_meier, logrank, roc_auc, uno_c

PLACEBO_T = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]
MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
TIME = np.array(PLACEBO_T + MP_T, dtype=float)
EVENT = np.array([1] * 21 + MP_E, dtype=float)
GROUP = np.array(["placebo"] * 21 + ["6-MP"] * 21)


def test_freireich_km_matches_r_survfit() -> None:
    km = kaplan_meier(TIME, EVENT, GROUP)["6-MP"].events
    np.testing.assert_allclose(km["surv"], [0.8571, 0.8067, 0.7529, 0.6902, 0.6275, 0.5378, 0.4482], atol=5e-5)
    np.testing.assert_allclose(km["se"], [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346], atol=5e-5)
    np.testing.assert_allclose(km["ci_low"], [0.720, 0.653, 0.586, 0.510, 0.439, 0.337, 0.249], atol=5e-4)
    np.testing.assert_allclose(km["ci_high"], [1.000, 0.996, 0.968, 0.935, 0.896, 0.858, 0.807], atol=5e-4)
    assert km["n_risk"].tolist() == [21, 17, 15, 12, 11, 7, 6]


def test_freireich_medians_and_ci_match_r_print() -> None:
    # R: survfit(Surv(time, status) ~ group): placebo median 8 (0.95LCL 4, UCL 12); 6-MP 23 (16, NA)
    fits = kaplan_meier(TIME, EVENT, GROUP)
    assert fits["placebo"].median == 8 and fits["placebo"].median_ci == (4.0, 12.0)
    assert fits["6-MP"].median == 23 and fits["6-MP"].median_ci[0] == 16.0
    assert np.isnan(fits["6-MP"].median_ci[1])


def test_freireich_loglog_ci_is_the_lifelines_convention() -> None:
    km = kaplan_meier(TIME, EVENT, GROUP, conf_type="log-log")["6-MP"].events
    assert km.loc[0, "ci_low"] == pytest.approx(0.6197, abs=5e-5)
    assert km.loc[0, "ci_high"] == pytest.approx(0.9516, abs=5e-5)


def test_freireich_logrank_matches_r_survdiff() -> None:
    res = logrank(TIME, EVENT, GROUP)
    assert res.chisq == pytest.approx(16.79, abs=5e-3)
    assert res.p == pytest.approx(4.17e-05, abs=5e-8)
    obs = dict(zip(res.table["group"], res.table["observed"], strict=True))
    assert obs == {"6-MP": 9, "placebo": 21}
    # R survdiff expected counts: 6-MP 19.25, placebo 10.75
    exp = dict(zip(res.table["group"], res.table["expected"], strict=True))
    assert exp["6-MP"] == pytest.approx(19.25, abs=5e-3) and exp["placebo"] == pytest.approx(10.75, abs=5e-3)


def test_stratified_logrank_with_one_stratum_equals_unstratified() -> None:
    a = logrank(TIME, EVENT, GROUP)
    b = logrank(TIME, EVENT, GROUP, strata=np.zeros(len(TIME)))
    assert a.chisq == pytest.approx(b.chisq, rel=1e-12)


# scikit-survival test fixtures (tests/test_metrics.py): expected [C, concordant, discordant, tied risk, tied time]
HARRELL_CASES = [
    ([0, 1, 1, 0, 0, 1, 0, 0], [1, 5, 6, 11, 34, 45, 46, 50], [5, 8, 11, 34, 12, 3, 9, 12], [0.2307692, 3, 10, 0, 0]),
    ([0, 1, 1, 0, 1, 0, 1, 0, 0], [1, 5, 6, 11, 11, 34, 45, 45, 50], [5, 8, 11, 19, 34, 12, 3, 9, 12],
     [0.4, 8, 12, 0, 2]),
    ([0, 1, 0, 1, 1, 0, 1, 0, 0], [1, 5, 6, 11, 11, 34, 45, 45, 50], [5, 8, 11, 19, 34, 12, 3, 9, 12],
     [0.5294118, 9, 8, 0, 1]),
    ([0, 1, 1, 0, 1, 1, 0, 0], [1, 5, 6, 11, 34, 45, 46, 50], [5, 15, 11, 34, 12, 3, 9, 12], [0.59375, 9, 6, 1, 0]),
    ([1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1], [34, 11, 11, 5, 1, 89, 13, 45, 7, 13, 9, 13],
     [1, 19, 13, 13, 15, 14, 19, 23, 11, 10, 11, 1], [0.5681818, 12, 9, 1, 2]),
]  # fmt: skip


@pytest.mark.parametrize("event,time,risk,expected", HARRELL_CASES)
def test_harrell_c_matches_sksurv_fixtures(event, time, risk, expected) -> None:
    res = harrell_c(time, event, risk)
    assert res.estimate == pytest.approx(expected[0], abs=5e-8)
    assert [res.extra[k] for k in ("concordant", "discordant", "tied_risk", "tied_time")] == expected[1:]


UNO_TIME = (1, 5, 6, 10, 11, 34, 45, 46, 50, 56)
UNO_EVENT = (0, 1, 1, 0, 1, 0, 1, 0, 0, 1)
UNO_TRAIN = ((2, 4, 6, 8, 10, 11, 15, 19), (0, 1, 0, 1, 0, 0, 0, 0))


def test_uno_c_matches_sksurv_fixtures() -> None:
    assert uno_c(UNO_TIME, UNO_EVENT, (5, 8, 11, 19, 34, 12, 3, 9, 12, 20)).estimate == pytest.approx(
        0.347890360332615, abs=1e-7
    )
    assert uno_c(UNO_TIME, UNO_EVENT, (5, 8, 11, 11, 34, 12, 11, 9, 12, 20)).estimate == pytest.approx(
        0.387865723332956, abs=1e-7
    )
    truncated = uno_c((1, 3, 5, 8, 12, 13), (1, 0, 0, 1, 1, 1), (5, 8, 13, 11, 9, 4), tau=19,
                      train_time=UNO_TRAIN[0], train_event=UNO_TRAIN[1])  # fmt: skip
    assert truncated.estimate == pytest.approx(0.7543736528146774, abs=1e-7)
    tied = uno_c([34, 11, 11, 5, 1, 89, 13, 45, 7, 13, 9, 13, 90], [1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1],
                 (1, 19, 13, 13, 15, 14, 19, 23, 11, 10, 11, 1, 18))  # fmt: skip
    assert tied.estimate == pytest.approx(0.46795357052737824, abs=1e-7)


def test_cif_matches_cmprsk_and_stata_stcompet() -> None:
    ftime = [1, 1, 2, 4, 4, 4, 6, 6, 7, 8, 9, 9, 9, 1, 2, 2, 4, 4]
    fstat = [1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ci = cumulative_incidence(ftime, fstat)
    np.testing.assert_allclose(ci.cif(1)["cif"], [0.11111111, *[0.17037037] * 6], atol=5e-9)
    np.testing.assert_allclose(ci.cif(3)["cif"], [0, 0, 0, 0.17777778, 0.26666667, 0.26666667, 0.26666667], atol=5e-9)
    np.testing.assert_allclose(ci.cif(2)["se"], [0, 0, *[0.10610391] * 5], atol=5e-9)
    np.testing.assert_allclose(ci.cif(3)["se"], [0, 0, 0, 0.11196147, *[0.12787781] * 3], atol=5e-9)


def test_hanley_mcneil_ct_ratings() -> None:
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    score = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y = np.r_[np.zeros(58), np.ones(51)]
    est = roc_auc(y, score)
    assert est.estimate == pytest.approx(0.893, abs=5e-4)
    assert est.extra["se_hanley_mcneil"] == pytest.approx(0.032, abs=5e-4)
    assert est.se == pytest.approx(0.0307, abs=5e-5)
    # reversing the direction gives the complementary AUC
    assert roc_auc(y, score, direction=">").estimate == pytest.approx(1 - est.estimate)


# scikit-survival tests/test_metrics.py (cumulative_dynamic_auc fixtures, 15 test subjects, 20 training subjects)
TD_TIME = [10.88, 19.78, 40.92, 98.7, 70.19, 10.15, 28.95, 29.57, 17.9, 63.78, 36.22, 83.14, 13.69, 99.51, 3.19]
TD_EVENT = [1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1]
TD_RISK = [-1.019, -0.016, 0.132, 0.269, -0.777, -1.077, 0.894, -1.227, -0.417, 0.072, -1.275, -0.91, -0.825,
           -0.292, -0.045]  # fmt: skip
TD_TRAIN_TIME = [77.6, 57.6, 66.6, 67.0, 31.5, 5.5, 67.4, 43.7, 31.7, 71.9, 81.1, 56.2, 88.1, 2.9, 62.0, 17.2, 88.0,
                 26.4, 93.5, 79.9]  # fmt: skip
TD_TRAIN_EVENT = [1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]


def test_time_dependent_auc_matches_sksurv_fixtures() -> None:
    from kicc_analysis.prognosis import time_dependent_auc

    one = time_dependent_auc(TD_TIME, TD_EVENT, TD_RISK, [28])
    assert one.table["auc"].iloc[0] == pytest.approx(0.362963, abs=5e-7)
    two = time_dependent_auc(TD_TIME, TD_EVENT, TD_RISK, [15, 66])
    np.testing.assert_allclose(two.table["auc"], [0.3030303, 0.45], atol=5e-8)
    assert two.summary_estimate.estimate == pytest.approx(0.3943949, abs=5e-8)
    trained = time_dependent_auc(TD_TIME, TD_EVENT, TD_RISK, [15, 66], train_time=TD_TRAIN_TIME,
                                 train_event=TD_TRAIN_EVENT)  # fmt: skip
    np.testing.assert_allclose(trained.table["auc"], [0.3030303, 0.4357061], atol=5e-8)
    assert trained.summary_estimate.estimate == pytest.approx(0.385509, abs=5e-7)
    tied = list(TD_RISK)
    tied[0] = tied[-1]
    res = time_dependent_auc(TD_TIME, TD_EVENT, tied, [15, 66], train_time=TD_TRAIN_TIME, train_event=TD_TRAIN_EVENT)
    np.testing.assert_allclose(res.table["auc"], [0.4242424, 0.539036], atol=5e-7)
