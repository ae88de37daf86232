"""Behaviour of the prognosis API: peers, simulations with known truth, edge cases and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis import (
    MissingDataWarning,
    bootstrap_validate,
    brier_score,
    calibration,
    cause_specific_cox,
    competing_outcome,
    cox,
    cumulative_incidence,
    decision_curve,
    fine_gray,
    gray_test,
    harrell_c,
    hosmer_lemeshow,
    impute_and_pool,
    kaplan_meier,
    logistic,
    logrank,
    pool_rubin,
    roc_auc,
    table_one,
    time_dependent_auc,
)
from kicc_analysis.prognosis.validation import logistic_model

RNG = np.random.default_rng(20240501)


def _survival_data(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n)
    t = rng.exponential(1 / np.exp(0.7 * x1 - 0.5 * x2))
    c = rng.uniform(0, 2.5, n)
    return pd.DataFrame({"time": np.round(np.minimum(t, c), 2) + 0.01, "event": (t <= c).astype(float),
                         "x1": x1, "x2": x2.astype(float), "grp": rng.choice(["a", "b", "c"], n)})  # fmt: skip


def _competing_data(n: int, beta=(0.5, -0.5), p: float = 0.3, seed: int = 3) -> pd.DataFrame:
    """Fine & Gray (1999) simulation design: F1(t|x) = 1 - (1 - p (1 - e^-t))^exp(x b) (known SHRs)."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.binomial(1, 0.5, n), rng.normal(size=n)])
    lp = x @ np.asarray(beta)
    p1 = 1 - (1 - p) ** np.exp(lp)
    cause1 = rng.uniform(size=n) < p1
    v = rng.uniform(size=n) * p1
    t1 = -np.log(1 - (1 - (1 - v) ** (1 / np.exp(lp))) / p)
    t2 = rng.exponential(1 / np.exp(x @ np.array([0.3, 0.2])), n)
    t = np.where(cause1, t1, t2)
    e = np.where(cause1, 1, 2)
    c = rng.uniform(0, 3, n)
    return pd.DataFrame({"t": np.round(np.minimum(t, c), 3) + 0.001, "e": np.where(c < t, 0, e),
                         "x1": x[:, 0], "x2": x[:, 1]})  # fmt: skip


# ---------------------------------------------------------------- survival
@pytest.mark.parametrize(
    "ours,theirs,kw",
    [("logrank", None, {}), ("wilcoxon", "wilcoxon", {}), ("tarone-ware", "tarone-ware", {}), ("peto", "peto", {}),
     ("fleming-harrington", "fleming-harrington", {"p": 1, "q": 1})],
)  # fmt: skip
def test_weighted_logrank_matches_lifelines(ours, theirs, kw) -> None:
    ll = pytest.importorskip("lifelines.statistics")
    d = _survival_data()
    a, b = d[d.x2 == 0], d[d.x2 == 1]
    extra = {"weightings": theirs, **kw} if theirs else {}
    peer = ll.logrank_test(a.time, b.time, a.event, b.event, **extra)
    res = logrank(d.time, d.event, d.x2, weights=ours, **kw)
    assert res.chisq == pytest.approx(peer.test_statistic, rel=1e-9)


def test_three_group_and_stratified_logrank_against_lifelines() -> None:
    ll = pytest.importorskip("lifelines.statistics")
    d = _survival_data()
    peer = ll.multivariate_logrank_test(d.time, d.grp, d.event)
    res = logrank(d.time, d.event, d.grp)
    assert res.df == 2 and res.chisq == pytest.approx(peer.test_statistic, rel=1e-9)
    strat = logrank(d.time, d.event, d.x2, strata=d.grp)
    assert strat.df == 1 and 0 <= strat.p <= 1 and strat.chisq != pytest.approx(logrank(d.time, d.event, d.x2).chisq)


def test_kaplan_meier_reports_skipped_rows_and_rejects_bad_events() -> None:
    with pytest.warns(MissingDataWarning, match="1 missing time"):
        km = kaplan_meier([1, 2, np.nan, 4], [1, 0, 1, 1])
    assert km.table["n_risk"].iloc[0] == 3
    with pytest.raises(AnalysisError, match="event must be 0"):
        kaplan_meier([1, 2, 3], [1, 2, 0])
    with pytest.raises(AnalysisError, match=">= 0"):
        kaplan_meier([-1, 2, 3], [1, 1, 0])
    with pytest.raises(AnalysisError, match="same length"):
        kaplan_meier([1, 2, 3], [1, 1])


# ---------------------------------------------------------------- Cox
def test_cox_recovers_simulated_hazard_ratios_and_predicts_survival() -> None:
    d = _survival_data(3000, seed=5)
    res = cox(d, "time", "event", ["x1", "x2"])
    assert res.table["coef"].to_numpy() == pytest.approx([0.7, -0.5], abs=0.12)
    assert res.lr_p < 1e-10 and 0.6 < res.concordance.estimate < 0.8
    s = res.predict_survival(d.iloc[:5], [0.1, 0.5, 1.0])
    assert s.shape == (5, 3) and np.all(np.diff(s, axis=1) <= 0) and np.all((s > 0) & (s <= 1))


def test_cox_breslow_matches_statsmodels_phreg() -> None:
    from statsmodels.duration.hazard_regression import PHReg

    d = _survival_data(400, seed=9)
    d["time"] = np.ceil(d["time"] * 4)  # many ties
    res = cox(d, "time", "event", ["x1", "x2"], ties="breslow")
    peer = PHReg(d["time"], d[["x1", "x2"]], status=d["event"], ties="breslow").fit()
    np.testing.assert_allclose(res.table["coef"], peer.params, atol=1e-6)
    np.testing.assert_allclose(res.table["se"], peer.bse, atol=1e-6)


def test_cox_errors_are_specific() -> None:
    d = _survival_data(50)
    with pytest.raises(AnalysisError, match="not found"):
        cox(d, "time", "event", ["nope"])
    with pytest.raises(AnalysisError, match="constant"):
        cox(d.assign(k=1.0), "time", "event", ["x1", "k"])
    with pytest.raises(AnalysisError, match="numeric"):
        cox(d, "time", "event", ["grp"])


def test_harrell_c_matches_lifelines_on_ties() -> None:
    lu = pytest.importorskip("lifelines.utils")
    t = RNG.integers(1, 30, 2000).astype(float)
    e = RNG.integers(0, 2, 2000)
    r = RNG.integers(0, 15, 2000).astype(float)
    assert harrell_c(t, e, r).estimate == pytest.approx(lu.concordance_index(t, -r, e), abs=1e-12)


def test_harrell_c_infinitesimal_jackknife_se_matches_pairwise_formula() -> None:
    t = RNG.integers(1, 15, 300).astype(float)
    e = RNG.integers(0, 2, 300)
    r = RNG.integers(0, 6, 300).astype(float)
    comp = (e[:, None] == 1) & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & (e[None, :] == 0)))
    h = (comp & (r[:, None] > r[None, :])) + 0.5 * (comp & (r[:, None] == r[None, :]))
    c = h.sum() / comp.sum()
    influence = (h.sum(1) + h.sum(0) - c * (comp.sum(1) + comp.sum(0))) / comp.sum()
    res = harrell_c(t, e, r)
    assert res.estimate == pytest.approx(c, abs=1e-12)
    assert res.se == pytest.approx(np.sqrt(np.sum(influence**2)), rel=1e-10)


def test_time_dependent_auc_and_brier_without_censoring_reduce_to_plain_versions() -> None:
    t = RNG.exponential(size=400)
    risk = -t + RNG.normal(scale=0.7, size=400)
    e = np.ones(400)
    auc = time_dependent_auc(t, e, risk, [0.5, 1.0])
    case = t <= 0.5
    assert auc.table["auc"].iloc[0] == pytest.approx(roc_auc(case.astype(int), risk).estimate, abs=1e-12)
    s_pred = np.full((400, 1), 0.6)
    b = brier_score(t, e, s_pred, [0.5])
    assert b.table["brier"].iloc[0] == pytest.approx(np.mean(((t > 0.5) - 0.6) ** 2), abs=1e-12)


# ---------------------------------------------------------------- competing risks
def test_fine_gray_recovers_known_subdistribution_hazard_ratios() -> None:
    d = _competing_data(3000)
    res = fine_gray(d, "t", "e", 1, ["x1", "x2"])
    assert res.table["coef"].to_numpy() == pytest.approx([0.5, -0.5], abs=0.12)
    assert np.all(res.table["se"] > 0) and np.all(res.table["se_model"] > 0)
    cif = res.predict_cif(d.iloc[:3], [0.5, 2.0])
    assert cif.shape == (3, 2) and np.all(np.diff(cif, axis=1) >= 0)


def test_fine_gray_without_competing_events_equals_cox() -> None:
    d = _survival_data(200)
    fg = fine_gray(d.assign(e=d.event.astype(int)), "time", "e", 1, ["x1", "x2"])
    cx = cox(d, "time", "event", ["x1", "x2"], ties="breslow")
    np.testing.assert_allclose(fg.table["coef"], cx.table["coef"], atol=1e-8)
    np.testing.assert_allclose(fg.table["se_model"], cx.table["se"], atol=1e-8)


def test_gray_test_detects_difference_and_not_null() -> None:
    d = _competing_data(1500)
    assert gray_test(d.t, d.e, d.x1, cause=1)["p"].iloc[0] < 1e-4
    null = gray_test(d.t, d.e, RNG.integers(0, 2, len(d)), cause=1)
    assert null["p"].iloc[0] > 0.001 and null["df"].iloc[0] == 1
    three = gray_test(d.t, d.e, np.where(d.x2 > 0.5, "hi", np.where(d.x2 < -0.5, "lo", "mid")), cause=2)
    assert three["df"].iloc[0] == 2


def test_gray_test_without_competing_events_is_the_logrank_score() -> None:
    from kicc_analysis.prognosis.competing_risks import _gray_stratum

    d = _survival_data(300)
    score, var = _gray_stratum(
        d.time.to_numpy(), d.event.to_numpy().astype(int), d.x2.to_numpy().astype(int), 2, 1, 0.0
    )
    lr = logrank(d.time, d.event, d.x2)
    assert score[0] == pytest.approx(lr.table["weighted_o_minus_e"].iloc[0], rel=1e-10)
    # Gray's variance estimator differs from the hypergeometric one only slightly
    assert gray_test(d.time, d.event, d.x2)["chisq"].iloc[0] == pytest.approx(lr.chisq, rel=0.02)


def test_gray_test_agrees_with_fine_gray_score_test() -> None:
    from kicc_analysis.prognosis._coxcore import fit_cox
    from kicc_analysis.prognosis.competing_risks import finegray_expand

    d = _competing_data(4000, seed=1)
    subj, start, stop, status, w = finegray_expand(d.t.to_numpy(), d.e.to_numpy().astype(int), 1)
    x = d[["x1"]].to_numpy()
    fg = fit_cox(
        x[subj], stop, status, ties="breslow", start=np.where(start > 0, start, -np.inf), weights=w, max_iter=1
    )
    assert gray_test(d.t, d.e, d.x1)["chisq"].iloc[0] == pytest.approx(fg.score_test, rel=0.05)


def test_cif_sums_with_km_to_one_and_cause_specific_cox() -> None:
    d = _competing_data(500)
    ci = cumulative_incidence(d.t, d.e)
    km = kaplan_meier(d.t, (d.e > 0).astype(float))
    total = ci.cif(1)["cif"].to_numpy() + ci.cif(2)["cif"].to_numpy()
    np.testing.assert_allclose(total, 1 - km.table["surv"].to_numpy(), atol=1e-12)
    cs = cause_specific_cox(d, "t", "e", 1, ["x1"])
    ref = cox(d.assign(ev=(d.e == 1).astype(float)), "t", "ev", ["x1"])
    assert cs.table["coef"].iloc[0] == pytest.approx(ref.table["coef"].iloc[0])


def test_cmprsk_variance_option_follows_gray_estimator() -> None:
    # hand computation of cmprsk::cuminc's variance at the first event time of the toy data:
    # n = 18, two cause-1 deaths: t5 = 16/17, t6 = t5 * 2 / 18^2, and the variance equals t6 there
    ftime = [1, 1, 2, 4, 4, 4, 6, 6, 7, 8, 9, 9, 9, 1, 2, 2, 4, 4]
    fstat = [1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ci = cumulative_incidence(ftime, fstat, variance="cmprsk")
    assert ci.cif(1)["se"].iloc[0] == pytest.approx(np.sqrt(16 / 17 * 2 / 18**2), rel=1e-12)
    assert ci.cif(2)["se"].iloc[1] == 0.0 and ci.cif(2)["se"].iloc[2] > 0
    with pytest.raises(AnalysisError, match="variance"):
        cumulative_incidence(ftime, fstat, variance="other")


def test_competing_outcome_codes() -> None:
    c = pd.DataFrame({"outco_outcome": [1, 2, 3, 4, np.nan], "outco_day": [5, 6, 7, 8, 9]})
    out = competing_outcome(c)
    assert out["event_type"].tolist()[:4] == [2.0, 1.0, 0.0, 0.0] and np.isnan(out["event_type"].iloc[4])


# ---------------------------------------------------------------- logistic, ROC, calibration, DCA
def test_logistic_side_by_side_and_missing_rows() -> None:
    n = 400
    d = pd.DataFrame({"a": RNG.normal(size=n), "b": RNG.normal(size=n), "site": RNG.choice(["S1", "S2"], n)})
    d["y"] = (RNG.uniform(size=n) < 1 / (1 + np.exp(-(0.8 * d.a)))).astype(float)
    d.loc[:4, "b"] = np.nan
    with pytest.warns(MissingDataWarning, match="5 missing"):
        res = logistic(d, "y", ["a", "b", "site"], categorical=["site"])
    assert res.n == n - 5 and res.n_dropped == 5
    table = res.side_by_side()
    assert list(table["term"]) == ["a", "b", "site[S2]"] and table.shape[1] == 5
    with pytest.raises(AnalysisError, match="binary"):
        logistic(d.assign(y=d.y * 2), "y", ["a"])


def test_hosmer_lemeshow_well_and_badly_calibrated() -> None:
    n = 3000
    x = RNG.normal(size=n)
    p = 1 / (1 + np.exp(-(x - 0.5)))
    y = (RNG.uniform(size=n) < p).astype(int)
    good = hosmer_lemeshow(y, p)
    bad = hosmer_lemeshow(y, p**2)
    assert good.extra["df"] == 8 and good.p > 0.001 and bad.p < 1e-6


def test_calibration_of_true_and_overfitted_risks() -> None:
    n = 5000
    rng = np.random.default_rng(275)  # own generator: the result must not depend on test order (xdist)
    x = rng.normal(size=n)
    lp = x - 1
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    good = calibration(y, 1 / (1 + np.exp(-lp)))
    over = calibration(y, 1 / (1 + np.exp(-2 * lp)))
    assert good.estimates["calibration_slope"].estimate == pytest.approx(1, abs=0.1)
    assert abs(good.estimates["calibration_in_the_large"].estimate) < 0.1
    assert over.estimates["calibration_slope"].estimate == pytest.approx(0.5, abs=0.06)
    assert len(good.binned) == 10 and good.estimates["ici"].estimate < over.estimates["ici"].estimate


def test_decision_curve_treat_all_formula_and_bootstrap_ci() -> None:
    y = RNG.binomial(1, 0.3, 300)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + RNG.normal(scale=0.1, size=300), 0.01, 0.99)
    dca = decision_curve(y, {"model": p}, [0.1, 0.2, 0.3], n_boot=30)
    allrow = dca[(dca.variable == "all") & (dca.threshold == 0.2)].iloc[0]
    prev = y.mean()
    assert allrow.net_benefit == pytest.approx(prev - (1 - prev) * 0.25)
    m = dca[dca.variable == "model"]
    assert (m.nb_ci_low <= m.net_benefit + 1e-12).all() and (m.net_benefit <= m.nb_ci_high + 1e-12).all()


def test_roc_auc_rejects_single_class() -> None:
    with pytest.raises(AnalysisError, match="both classes"):
        roc_auc([1, 1, 1], [0.2, 0.3, 0.4])


# ---------------------------------------------------------------- table one
def test_table_one_grouped_tests_and_smd() -> None:
    n = 200
    d = pd.DataFrame({"g": RNG.integers(0, 2, n), "age": RNG.normal(60, 10, n), "crp": RNG.lognormal(3, 1, n),
                      "sex": RNG.choice([1, 2], n)})  # fmt: skip
    d.loc[:2, "crp"] = np.nan
    t1 = table_one(d, "g", ["age", "crp", "sex"], nonnormal=["crp"], categorical=["sex"])
    tests = t1.tests.set_index("variable")
    a, b = d[d.g == 0], d[d.g == 1]
    assert tests.loc["age", "p"] == pytest.approx(stats.ttest_ind(a.age, b.age).pvalue)
    assert tests.loc["crp", "p"] == pytest.approx(stats.kruskal(a.crp.dropna(), b.crp.dropna()).pvalue)
    smd = abs(a.age.mean() - b.age.mean()) / np.sqrt((a.age.var() + b.age.var()) / 2)
    assert tests.loc["age", "smd"] == pytest.approx(smd)
    assert tests.loc["crp", "missing"] == 3
    assert set(t1.table.columns) >= {"Overall", "0", "1", "p", "smd", "missing"}


# ---------------------------------------------------------------- imputation and validation
def test_pool_rubin_follows_mice_formulas() -> None:
    q = np.array([[1.0, 2.0], [1.2, 2.1], [0.9, 1.8]])
    u = np.array([[0.04, 0.09], [0.05, 0.08], [0.045, 0.1]])
    res = pool_rubin(q, u, dfcom=100, names=["a", "b"])
    m = 3
    b = q.var(axis=0, ddof=1)
    ubar = u.mean(axis=0)
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t
    df_old = (m - 1) / lam**2
    df_obs = (101 / 103) * 100 * (1 - lam)
    df = 1 / (1 / df_old + 1 / df_obs)
    riv = (1 + 1 / m) * b / ubar
    np.testing.assert_allclose(res["se"], np.sqrt(t))
    np.testing.assert_allclose(res["df"], df)
    np.testing.assert_allclose(res["fmi"], (riv + 2 / (df + 3)) / (riv + 1))
    assert res["p"].iloc[0] == pytest.approx(2 * stats.t.sf(q[:, 0].mean() / np.sqrt(t[0]), df[0]))


def test_impute_and_pool_logistic_close_to_complete_data() -> None:
    n = 600
    d = pd.DataFrame({"a": RNG.normal(size=n), "b": RNG.normal(size=n)})
    d["y"] = (RNG.uniform(size=n) < 1 / (1 + np.exp(-(d.a - 0.5 * d.b)))).astype(float)
    full = logistic(d, "y", ["a", "b"], univariable=False).table["coef"].to_numpy()
    miss = d.copy()
    miss.loc[RNG.choice(n, 120, replace=False), "a"] = np.nan
    pooled = impute_and_pool(miss, lambda f: logistic(f, "y", ["a", "b"], univariable=False), m=5, seed=1)
    est = pooled.table["estimate"].to_numpy()
    assert est == pytest.approx(full, abs=0.25)
    assert (pooled.table["fmi"].between(0, 1)).all() and pooled.n_missing["a"] == 120


def test_bootstrap_validate_shows_optimism_with_noise_predictors() -> None:
    n = 150
    d = pd.DataFrame(RNG.normal(size=(n, 8)), columns=[f"x{i}" for i in range(8)])
    d["y"] = (RNG.uniform(size=n) < 1 / (1 + np.exp(-0.8 * d.x0))).astype(float)
    res = bootstrap_validate(logistic_model("y", [f"x{i}" for i in range(8)]), d, 60, outcome="y").set_index("metric")
    assert res.loc["auc", "optimism"] > 0 and res.loc["auc", "corrected"] < res.loc["auc", "apparent"]
    assert res.loc["calibration_slope", "corrected"] < 1
    with pytest.raises(AnalysisError, match="missing"):
        bootstrap_validate(logistic_model("y", ["x0"]), d.assign(x0=np.nan), 5, outcome="y")


# ---------------------------------------------------------------- plots
def test_plots_render_and_save_with_provenance(tmp_path) -> None:
    import matplotlib.pyplot as plt

    from kicc_analysis.prognosis import plots, roc_curve
    from kicc_analysis.provenance import OutputWriter, read_provenance

    d = _competing_data(300)
    out = OutputWriter(tmp_path, notebook="test", version="0")
    km = kaplan_meier(d.t, (d.e == 1).astype(float), d.x1)
    y = (d.e == 1).astype(int)
    figs = {
        "km": plots.km_plot(km),
        "cif": plots.cif_plot(cumulative_incidence(d.t, d.e), cause_labels={1: "death", 2: "discharge"}),
        "forest": plots.forest_plot(cox(d.assign(ev=y), "t", "ev", ["x1", "x2"]).table, estimate="hr",
                                    low="hr_ci_low", high="hr_ci_high", label="covariate"),
        "roc": plots.roc_plot({"x2": roc_curve(y, d.x2)}, {"x2": roc_auc(y, d.x2)},
                              bands={"x2": plots.roc_band(y, d.x2, n_boot=20)}),
        "cal": plots.calibration_plot(calibration(y, np.clip(0.2 + 0.1 * d.x2, 0.01, 0.99)), p=d.x2),
        "dca": plots.decision_curve_plot(decision_curve(y, {"m": np.clip(0.3 + 0.1 * d.x2, 0.01, 0.99)})),
    }  # fmt: skip
    for name, fig in figs.items():
        png, svg = out.figure(fig, name)
        assert svg.stat().st_size > 1000 and read_provenance(svg)["notebook"] == "test"
        plt.close(fig)


def _psi_brute_force(t, e, x, beta, cause=1):
    """Fine & Gray (1999) G-estimation term psi_i by explicit loops (independent of the vectorised code)."""
    from kicc_analysis.prognosis.competing_risks import _censoring_km, _g_left

    n = len(t)
    gt, gv = _censoring_km(t, e)

    def g_minus(v):
        return float(_g_left(gt, gv, np.array([v]))[0])

    r = np.exp(x @ beta)

    def risk_sums(time_point):  # S0, S1 of the subdistribution risk set at a failure time
        s0, s1 = 0.0, np.zeros(x.shape[1])
        for k in range(n):
            if t[k] >= time_point:
                wk = 1.0
            elif e[k] not in (0, cause):
                wk = g_minus(time_point) / g_minus(t[k])
            else:
                continue
            s0 += wk * r[k]
            s1 += wk * r[k] * x[k]
        return s0, s1

    def q(u):
        total = np.zeros(x.shape[1])
        for j1 in range(n):
            if e[j1] != cause or t[j1] < u:
                continue
            s0, s1 = risk_sums(t[j1])
            for j2 in range(n):
                if t[j2] < u and e[j2] not in (0, cause):
                    wt = g_minus(t[j1]) / g_minus(t[j2])
                    total += wt * r[j2] * (x[j2] - s1 / s0) / s0
        return total

    psi = np.zeros_like(x)
    for u in np.unique(t[e == 0]):
        at_risk = np.sum(t >= u)
        n_cens = np.sum((t == u) & (e == 0))
        qu = q(u)
        for i in range(n):
            if t[i] >= u:
                psi[i] -= n_cens / at_risk**2 * qu  # - Y_i(u) dLambda_c(u) q(u) / pi(u)
            if t[i] == u and e[i] == 0:
                psi[i] += qu / at_risk  # dNc_i(u) q(u) / pi(u)
    return psi


def test_fine_gray_psi_term_matches_brute_force_formula() -> None:
    from kicc_analysis.prognosis.competing_risks import _fine_gray_psi

    d = _competing_data(60, seed=11)
    d["t"] = np.round(d["t"], 1) + 0.1  # ties between failures and censorings
    t, e = d.t.to_numpy(), d.e.to_numpy().astype(int)
    x = d[["x1", "x2"]].to_numpy() - d[["x1", "x2"]].to_numpy().mean(axis=0)
    beta = np.array([0.4, -0.3])
    np.testing.assert_allclose(_fine_gray_psi(t, e, x, beta, 1), _psi_brute_force(t, e, x, beta), atol=1e-12)


def test_fine_gray_standard_errors_are_consistent() -> None:
    res = fine_gray(_competing_data(800, seed=4), "t", "e", 1, ["x1", "x2"]).table
    assert np.allclose(res["se"], res["se_robust"], rtol=0.05) and np.allclose(res["se"], res["se_model"], rtol=0.15)


def test_fine_gray_estimate_solves_the_crr_score_equation() -> None:
    """At the estimate, the Fine–Gray score with crr's weights G(t-)/G(T_i-) (computed by brute force) is 0."""
    from kicc_analysis.prognosis.competing_risks import _censoring_km, _g_left

    d = _competing_data(80, seed=12)
    d["t"] = np.round(d["t"], 1) + 0.1
    fit = fine_gray(d, "t", "e", 1, ["x1", "x2"])
    t, e, x = d.t.to_numpy(), d.e.to_numpy().astype(int), d[["x1", "x2"]].to_numpy()
    gt, gv = _censoring_km(t, e)
    r = np.exp(x @ fit.table["coef"].to_numpy())
    score = np.zeros(2)
    for i in np.nonzero(e == 1)[0]:
        w = np.where(t >= t[i], 1.0, np.where((e == 2), _g_left(gt, gv, t[i]) / _g_left(gt, gv, t), 0.0))
        score += x[i] - (w * r) @ x / (w * r).sum()
    np.testing.assert_allclose(score, 0.0, atol=1e-7)


def test_kaplan_meier_group_without_events_has_no_median():
    # R survival: print(survfit(Surv(c(1, 2, 3), c(0, 0, 0)) ~ 1)) shows median NA; a group without events used to
    # raise "attempt to get argmax of an empty sequence" (notebook 04, CT-extent groups on a small demo)
    from kicc_analysis.prognosis import kaplan_meier, km_table

    table = km_table(kaplan_meier([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 0], group=["a"] * 3 + ["b"] * 3)).set_index(
        "group"
    )
    assert table.loc["a", "events"] == 0 and np.isnan(table.loc["a", "median"])
    assert table.loc["b", "median"] == 5.0
    single = km_table(kaplan_meier([5.0], [0.0]))
    assert np.isnan(single["median"].iloc[0])
