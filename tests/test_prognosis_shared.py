"""Further published results on the shared data sets (skipped when ../shared is absent).

* pROC on aSAH (Robin et al. 2011, pROC documentation): s100b AUC 0.7314 (DeLong 95% CI 0.6301–0.8326),
  wfns AUC 0.8237, ``roc.test(s100b, ndka)`` Z = 1.3908, p = 0.1643; Youden cut-off of s100b 0.205
  (sensitivity 0.6341, specificity 0.8056).
* dcurves (R) printed outputs for three decision-curve analyses (binary test, marker converted to risk with
  harm, survival outcome at horizon 1).
* scikit-survival WHAS500 fixtures: Harrell's C 0.7697907 (57849 concordant, 17300 discordant, 14 tied time),
  Uno's C 0.7929275009049014.
* R survival 3.x ``cox.zph(coxph(Surv(time, status) ~ age + sex, lung))``: age 0.209, sex 2.608, GLOBAL 2.771.
* R tableone vignette, ``CreateTableOne(vars, strata = "trt", data = pbc, factorVars = catVars)``: p-values
  time 0.883, age 0.018, sex 0.421, hepato 0.088, stage 0.201; SMD of age 0.270.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from kicc_analysis.prognosis import (
    cox,
    decision_curve,
    decision_curve_survival,
    delong_test,
    harrell_c,
    ph_test,
    roc_auc,
    table_one,
    uno_c,
    youden,
)
from kicc_analysis.prognosis._checks import MissingDataWarning


def _stats(name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(shared_path("data", "stats", name), **kwargs)


@pytest.fixture(scope="module")
def asah() -> pd.DataFrame:
    d = _stats("aSAH.csv")
    d["poor"] = (d["outcome"] == "Poor").astype(int)
    return d


def test_proc_asah_auc_and_delong_ci(asah: pd.DataFrame) -> None:
    est = roc_auc(asah["poor"], asah["s100b"])
    assert est.estimate == pytest.approx(0.7314, abs=5e-5)
    assert (est.ci_low, est.ci_high) == pytest.approx((0.6301, 0.8326), abs=5e-5)
    assert roc_auc(asah["poor"], asah["wfns"]).estimate == pytest.approx(0.8237, abs=5e-5)


def test_proc_asah_delong_test(asah: pd.DataFrame) -> None:
    res = delong_test(asah["poor"], asah["s100b"], asah["ndka"])
    assert res.z == pytest.approx(1.3908, abs=5e-5)
    assert res.p == pytest.approx(0.1643, abs=5e-5)


def test_proc_asah_youden(asah: pd.DataFrame) -> None:
    res = youden(asah["poor"], asah["s100b"], n_boot=50)
    assert res.estimate == pytest.approx(0.205, abs=5e-4)
    assert res.extra["sensitivity"] == pytest.approx(0.6341, abs=5e-5)
    assert res.extra["specificity"] == pytest.approx(0.8056, abs=5e-5)
    assert res.ci_low <= res.estimate <= res.ci_high


def _compare_dca(mine: pd.DataFrame, ref: pd.DataFrame) -> None:
    mine = mine.assign(threshold=mine["threshold"].round(2))
    ref = ref.assign(threshold=ref["threshold"].round(2))
    merged = mine.merge(ref, on=["variable", "threshold"], suffixes=("", "_r"))
    assert len(merged) == len(ref)
    for col in ["pos_rate", "test_pos_rate", "tp_rate", "fp_rate", "harm", "net_benefit", "net_intervention_avoided"]:
        if f"{col}_r" not in merged:
            continue
        a = merged[col].to_numpy(float)
        r = pd.to_numeric(merged[f"{col}_r"], errors="coerce").to_numpy(float)
        ok = np.isclose(a, r, atol=1e-12, equal_nan=True) | (a == r)
        assert ok.all(), f"{col}: {merged.loc[~ok, ['variable', 'threshold', col, col + '_r']].head()}"


def test_dcurves_case1_binary_test() -> None:
    d = _stats("dcurves_df_binary.csv")
    y = (d["cancer"].astype(str) == "True").astype(int)
    _compare_dca(decision_curve(y, {"famhistory": d["famhistory"]}), _stats("dcurves_r_case1_results.csv"))


def test_dcurves_case2_survival_horizon() -> None:
    d = _stats("dcurves_df_surv.csv")
    event = (d["cancer"].astype(str) == "True").astype(int)
    res = decision_curve_survival(d["ttcancer"], event, {"cancerpredmarker": d["cancerpredmarker"]}, horizon=1)
    _compare_dca(res, _stats("dcurves_r_case2_results.csv"))


def test_dcurves_case3_marker_as_probability_with_harm() -> None:
    d = _stats("dcurves_df_binary.csv")
    y = (d["cancer"].astype(str) == "True").astype(int)
    res = decision_curve(
        y, {"marker": d["marker"]}, np.round(np.arange(0, 0.36, 0.01), 2), harm={"marker": 0.0333},
        as_probability=["marker"],
    )  # fmt: skip
    _compare_dca(res, _stats("dcurves_r_case3_results.csv"))


def test_whas500_harrell_and_uno_c() -> None:
    d = np.loadtxt(shared_path("data", "stats", "whas500_predictions.csv"), delimiter=",")
    event, time, risk = d[:, 0], d[:, 1], d[:, 2]
    h = harrell_c(time, event, risk)
    assert h.estimate == pytest.approx(0.7697907, abs=5e-8)
    assert [h.extra[k] for k in ("concordant", "discordant", "tied_risk", "tied_time")] == [57849, 17300, 0, 14]
    assert uno_c(time, event, risk).estimate == pytest.approx(0.7929275009049014, abs=1e-10)


def test_lung_cox_zph_matches_r_survival_3() -> None:
    lung = _stats("lung.csv")
    res = ph_test(cox(lung, "time", "status", ["age", "sex"])).set_index("covariate")
    assert res.loc["age", "chisq"] == pytest.approx(0.209, abs=5e-4)
    assert res.loc["sex", "chisq"] == pytest.approx(2.608, abs=5e-4)
    assert res.loc["GLOBAL", "chisq"] == pytest.approx(2.771, abs=5e-4)
    assert res.loc["GLOBAL", "df"] == 2
    assert res.loc["sex", "p"] == pytest.approx(0.11, abs=5e-3)


def test_lung_efron_with_missing_covariate_matches_lifelines_peer() -> None:
    lifelines = pytest.importorskip("lifelines")
    lung = _stats("lung.csv")[["time", "status", "age", "sex", "ph.ecog"]]
    with pytest.warns(MissingDataWarning, match="skipped 1 of 228 rows"):
        ours = cox(lung, "time", "status", ["age", "sex", "ph.ecog"], ties="efron")
    assert ours.n_dropped == 1  # one missing ph.ecog, reported rather than silently dropped
    peer = lifelines.CoxPHFitter().fit(lung.dropna(), "time", "status")
    np.testing.assert_allclose(ours.table["coef"], peer.params_.to_numpy(), atol=2e-5)
    assert ours.concordance.estimate == pytest.approx(peer.concordance_index_, abs=1e-9)


def test_pbc_table_one_by_treatment_matches_r_tableone() -> None:
    pbc = _stats("pbc_survival.csv")
    cats = ["sex", "hepato", "stage"]
    res = table_one(pbc, "trt", ["time", "age", *cats], categorical=cats)
    tests = res.tests.set_index("variable")
    for var, p in {"time": 0.883, "age": 0.018, "sex": 0.421, "hepato": 0.088, "stage": 0.201}.items():
        assert tests.loc[var, "p"] == pytest.approx(p, abs=5e-4), var
    assert tests.loc["age", "smd"] == pytest.approx(0.270, abs=5e-4)
    assert list(res.table.columns[:5]) == ["variable", "level", "Overall", "1.0", "2.0"]


def test_whas500_time_dependent_auc_matches_sksurv() -> None:
    from kicc_analysis.prognosis import time_dependent_auc

    d = np.loadtxt(shared_path("data", "stats", "whas500_predictions.csv"), delimiter=",")
    event, time, risk = d[:, 0], d[:, 1], d[:, 2]
    res = time_dependent_auc(time[300:], event[300:], risk[300:], (200, 400, 600, 800, 1000, 1200, 1400),
                             train_time=time[:300], train_event=event[:300])  # fmt: skip
    expected = [0.7720669, 0.7765915, 0.7962623, 0.8759295, 0.8759295, 0.8759513, 0.9147647]
    np.testing.assert_allclose(res.table["auc"], expected, atol=1.5e-7)
    assert res.summary_estimate.estimate == pytest.approx(0.8045058, abs=5e-8)


def test_lung_concordance_standard_error_matches_r_print() -> None:
    # R: coxph(Surv(time, status) ~ age + sex, lung) prints "Concordance= 0.603 (se = 0.025)"
    res = cox(_stats("lung.csv"), "time", "status", ["age", "sex"])
    assert res.concordance.estimate == pytest.approx(0.603, abs=5e-4)
    assert res.concordance.se == pytest.approx(0.025, abs=5e-4)
