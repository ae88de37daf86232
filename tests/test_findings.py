"""Structured CT findings: scheme validation, frequencies vs hand-computed tables, CIs vs statsmodels and Newcombe
1998, Byrt 1993 agreement indices, odds ratios vs a direct statsmodels fit, BH vs hand computation, demo readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from kicc_analysis.demo.finding_readers import FINDING_READERS, simulate_finding_readings, true_findings
from kicc_analysis.errors import AnalysisError
from kicc_analysis.findings import (
    CI_METHODS,
    INDICATORS,
    agreement_indices,
    finding_agreement,
    finding_calls,
    finding_frequencies,
    finding_outcome,
    frequency_figure,
    frequency_table,
    onset_group,
    proportion_ci,
    reader_indicators,
)
from kicc_analysis.readings import FINDING_ITEMS, SCHEMES, scheme_table, validate_readings

ITEMS = (*FINDING_ITEMS, "axial_distribution", "lower_zone", "laterality", "lobes_involved")


def _reading(subject: str, reader: str, **scores: int) -> list[dict]:
    base = {name: 0 for name in ITEMS}
    base.update({k: v for k, v in scores.items() if k in base})
    rows = [{"subject": subject, "study": "", "reader": reader, "scheme": "ct_findings", "item": k, "score": v}
            for k, v in base.items()]  # fmt: skip
    rows.append({"subject": subject, "study": "", "reader": reader, "scheme": "rsna_ct", "item": "category",
                 "score": scores.get("category", 0)})  # fmt: skip
    rows.append({"subject": subject, "study": "", "reader": reader, "scheme": "co_rads", "item": "co_rads",
                 "score": scores.get("co_rads", 1)})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------ scheme table


def test_schemes_are_in_the_one_table():
    table = scheme_table()
    findings = table[table["scheme"] == "ct_findings"]
    assert set(findings["item"]) == set(ITEMS)
    assert findings.set_index("item").loc["lobes_involved", ["min", "max"]].tolist() == [0, 5]
    assert findings.set_index("item").loc["laterality", "levels"] == "0 none; 1 unilateral; 2 bilateral"
    assert table.set_index(["scheme", "item"]).loc[("co_rads", "co_rads"), ["min", "max"]].tolist() == [1, 5]
    assert SCHEMES["rsna_ct"].item("category").level(3) == "typical"
    assert len(table.groupby(["scheme", "item"])) == len(table)  # one row per scheme item, no second table


def test_validation_reports_every_problem_of_a_findings_file():
    rows = _reading("P1", "R1", ggo=1, laterality=2, lobes_involved=3)
    rows[0]["score"] = 2  # ggo out of 0-1
    rows[-1]["score"] = 6  # CO-RADS 6 is not a reading category
    rows[-2]["score"] = 0.5  # RSNA category not whole
    rows = [r for r in rows if r["item"] != "reversed_halo"]  # a missing item
    rows.append(dict(rows[1]))  # a duplicate
    problems = validate_readings(pd.DataFrame(rows))
    found = set(zip(problems["item"], problems["problem"], strict=True))
    assert ("ggo", "out_of_range") in found
    assert ("co_rads", "out_of_range") in found
    assert ("category", "non_integer") in found
    assert ("reversed_halo", "missing_item") in found
    assert ("consolidation", "duplicate") in found
    assert validate_readings(pd.DataFrame(_reading("P2", "R1", ggo=1))).empty


def test_invalid_scores_become_missing_indicators_not_zero():
    rows = _reading("P1", "R1", ggo=1, laterality=2)
    rows[0]["score"] = 7
    ind = reader_indicators(pd.DataFrame(rows)).iloc[0]
    assert np.isnan(ind["ggo"])
    assert ind["bilateral"] == 1 and ind["unilateral"] == 0
    assert ind["rsna_negative"] == 1 and ind["co_rads_1"] == 1


# ------------------------------------------------------------------------------------------------ calls, frequencies


def test_majority_call_and_ties():
    rows = (_reading("P1", "R1", ggo=1) + _reading("P1", "R2", ggo=1) + _reading("P1", "R3", ggo=0)
            + _reading("P2", "R1", ggo=1) + _reading("P2", "R2", ggo=0))  # fmt: skip
    calls = finding_calls(pd.DataFrame(rows)).set_index("subject")
    assert calls.loc["P1", "ggo"] == 1 and calls.loc["P1", "n_readers"] == 3
    assert np.isnan(calls.loc["P2", "ggo"])  # 1 vs 1: a tie is not a call
    assert finding_calls(pd.DataFrame(rows), reader="R3").set_index("subject").loc["P1", "ggo"] == 0
    with pytest.raises(AnalysisError, match="reader 'R9'"):
        finding_calls(pd.DataFrame(rows), reader="R9")


def test_frequencies_match_a_hand_computed_table():
    # 10 patients: GGO in 7 (mild 3/5, severe 4/4, one missing severity), consolidation in 3 (mild 0/5, severe 3/4)
    calls = pd.DataFrame({
        "ggo": [1, 1, 1, 0, 0, 1, 1, 1, 1, 0],
        "consolidation": [0, 0, 0, 0, 0, 1, 1, 1, 0, 0],
        "severity": ["mild"] * 5 + ["severe"] * 4 + [None],
    })  # fmt: skip
    overall = finding_frequencies(calls, indicators=["ggo", "consolidation"]).set_index("indicator")
    assert overall.loc["ggo", ["count", "n"]].tolist() == [7, 10]
    assert overall.loc["consolidation", "proportion"] == pytest.approx(0.3)
    by = finding_frequencies(calls, by="severity", indicators=["ggo", "consolidation"])
    got = {(r.indicator, r.group): (r.count, r.n) for r in by.itertuples()}
    assert got == {("ggo", "mild"): (3, 5), ("ggo", "severe"): (4, 4), ("consolidation", "mild"): (0, 5),
                   ("consolidation", "severe"): (3, 4)}  # fmt: skip
    assert set(by["n_missing_group"]) == {1}
    table = frequency_table(by)
    assert table.loc["ground-glass opacity", "severe"].startswith("4/4 (100 %, 51-100)")
    assert table.loc["consolidation", "mild"].startswith("0/5 (0 %, 0-43)")


def test_onset_groups_follow_the_guideline_bins():
    got = onset_group([0, 4, 5, 9, 10, 21, np.nan, -2]).tolist()
    assert got[:6] == ["0-4", "0-4", "5-9", "5-9", ">=10", ">=10"]
    assert pd.isna(got[6]) and pd.isna(got[7])


# ------------------------------------------------------------------------------------------------ CIs


@pytest.mark.parametrize(
    ("count", "nobs", "low", "high"),
    # Newcombe RG. Two-sided confidence intervals for the single proportion. Stat Med 1998;17:857-872, Table I,
    # method 3 (Wilson score without continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_reproduces_newcombe_1998(count, nobs, low, high):
    got = proportion_ci(count, nobs)
    assert got[0] == pytest.approx(low, abs=5e-5) and got[1] == pytest.approx(high, abs=5e-5)


@pytest.mark.parametrize("method", CI_METHODS)
def test_every_method_is_statsmodels_proportion_confint(method):
    counts, nobs = np.array([0, 3, 17, 40]), np.array([12, 25, 40, 40])
    got = proportion_ci(counts, nobs, method=method, confidence=0.9)
    ref = proportion_confint(counts, nobs, alpha=0.1, method=method)
    np.testing.assert_allclose(got, ref)
    freq = finding_frequencies(pd.DataFrame({"ggo": [1] * 3 + [0] * 22}), indicators=["ggo"], method=method)
    assert (freq.loc[0, "ci_low"], freq.loc[0, "ci_high"]) == pytest.approx(proportion_confint(3, 25, method=method))


def test_unknown_ci_method_is_one_line_error():
    with pytest.raises(AnalysisError, match="method 'exact' is not one of wilson"):
        proportion_ci(1, 10, method="exact")


# ------------------------------------------------------------------------------------------------ agreement


@pytest.mark.parametrize(
    ("table", "po", "kappa", "pabak", "pi", "bi"),
    # hand-computed: po = (a+d)/n, pe = ((a+b)(a+c)+(c+d)(b+d))/n^2, PABAK = 2po-1, PI = (a-d)/n, BI = (b-c)/n
    [
        ([[40, 9], [6, 45]], 0.85, (0.85 - 0.5008) / (1 - 0.5008), 0.70, -0.05, 0.03),
        ([[80, 10], [5, 5]], 0.85, (0.85 - 0.78) / 0.22, 0.70, 0.75, 0.05),
        ([[45, 15], [25, 15]], 0.60, (0.60 - 0.54) / 0.46, 0.20, 0.30, -0.10),
        ([[25, 35], [5, 35]], 0.60, (0.60 - 0.46) / 0.54, 0.20, -0.10, 0.30),
    ],
)
def test_byrt_indices_on_hand_computed_2x2_tables(table, po, kappa, pabak, pi, bi):
    got = agreement_indices(table)
    assert got["po"] == pytest.approx(po)
    assert got["kappa"] == pytest.approx(kappa, abs=1e-4)
    assert got["pabak"] == pytest.approx(pabak)
    assert got["prevalence_index"] == pytest.approx(pi)
    assert got["bias_index"] == pytest.approx(bi)
    # Byrt, Bishop & Carlin 1993: kappa = (PABAK - PI^2 + BI^2) / (1 - PI^2 + BI^2)
    assert got["kappa"] == pytest.approx((pabak - pi**2 + bi**2) / (1 - pi**2 + bi**2))


def test_agreement_indices_reject_bad_tables():
    with pytest.raises(AnalysisError, match="2x2"):
        agreement_indices([[1, 2, 3], [4, 5, 6]])


def test_finding_agreement_from_readings_matches_the_2x2_table():
    # R1 vs R2 on GGO over 10 patients: a=4 (both), b=1 (R1 only), c=2 (R2 only), d=3 (neither)
    r1 = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    r2 = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0]
    rows = []
    for i, (a, b) in enumerate(zip(r1, r2, strict=True)):
        rows += _reading(f"P{i}", "R1", ggo=a) + _reading(f"P{i}", "R2", ggo=b)
    agreement = finding_agreement(pd.DataFrame(rows), indicators=["ggo", "reversed_halo"]).set_index("indicator")
    expected = agreement_indices([[4, 1], [2, 3]])
    row = agreement.loc["ggo"]
    assert (row["positive_1"], row["positive_2"], row["n"]) == (5, 6, 10)
    assert row["kappa"] == pytest.approx(expected["kappa"])
    assert row["ci_low"] < row["kappa"] < row["ci_high"]
    assert row["prevalence_index"] == pytest.approx(0.1) and row["bias_index"] == pytest.approx(-0.1)
    # nobody records a reversed halo: kappa undefined, agreement indices still reported
    assert np.isnan(agreement.loc["reversed_halo", "kappa"])
    assert agreement.loc["reversed_halo", "pabak"] == 1.0 and agreement.loc["reversed_halo", "prevalence_index"] == -1


# ------------------------------------------------------------------------------------------------ outcome


def test_odds_ratios_match_a_direct_logistic_fit_and_bh_matches_hand_computation():
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    n = 300
    age = rng.normal(60, 12, n)
    ggo = rng.random(n) < 0.6
    effusion = rng.random(n) < 0.2
    lin = -6 + 0.07 * age + 1.0 * effusion
    died = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int)
    data = pd.DataFrame({"ggo": ggo.astype(float), "pleural_effusion": effusion.astype(float), "demog_age": age,
                         "died": died, "reversed_halo": 0.0})  # fmt: skip
    result = finding_outcome(data, "died", indicators=["ggo", "pleural_effusion", "reversed_halo"]).set_index(
        "indicator"
    )
    fit = sm.Logit(died, sm.add_constant(np.column_stack([effusion, age]).astype(float))).fit(disp=0)
    assert result.loc["pleural_effusion", "odds_ratio"] == pytest.approx(np.exp(fit.params[1]), rel=1e-6)
    low, high = np.exp(fit.conf_int()[1])
    assert (result.loc["pleural_effusion", "ci_low"], result.loc["pleural_effusion", "ci_high"]) == pytest.approx(
        (low, high), rel=1e-6
    )
    assert "constant" in result.loc["reversed_halo", "note"] and np.isnan(result.loc["reversed_halo", "p"])
    assert set(result["n_tests"]) == {2}
    p = result.loc[["ggo", "pleural_effusion"], "p"].sort_values()
    # BH by hand for m = 2: q(1) = min(2 p(1), p(2)), q(2) = p(2)
    assert result.loc[p.index[1], "q_bh"] == pytest.approx(min(p.iloc[1], 1.0))
    assert result.loc[p.index[0], "q_bh"] == pytest.approx(min(2 * p.iloc[0], p.iloc[1]))


# ------------------------------------------------------------------------------------------------ demo readers


def _demo_cases(n: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    opacity = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(1.2, 8.0, n))
    cases = pd.DataFrame({"subjid": [f"D{i:03d}" for i in range(n)], "opacity_pct": opacity,
                          "consolidation_fraction": rng.beta(2, 5, n)})  # fmt: skip
    for k, lobe in enumerate(("RUL", "RML", "RLL", "LUL", "LLL")):
        weight = 1.6 if lobe in ("RLL", "LLL") else 0.7
        cases[lobe] = np.where(opacity > 0, np.clip(opacity / 100 * weight * rng.uniform(0, 2, n), 0, 1), 0.0)
        cases.loc[rng.random(n) < 0.15 * (k + 1) / 5, lobe] = 0.0
    return cases


def test_demo_readers_are_valid_consistent_and_disagree_realistically():
    cases = _demo_cases()
    readings = simulate_finding_readings(cases, np.random.default_rng(11))
    assert validate_readings(readings).empty
    assert set(readings["reader"]) == {r.name for r in FINDING_READERS}
    ind = reader_indicators(readings)
    # each reader's record is internally consistent: no parenchymal finding without an involved lobe
    none = ind[ind["lobes_involved"] == 0]
    assert (none[["ggo", "consolidation", "crazy_paving", "bilateral", "peripheral"]] == 0).all().all()
    assert (ind.loc[ind["bilateral"] == 1, "lobes_involved"] >= 2).all()
    # consistent with the phantoms: patients without opacity are read without GGO (the category may slip a step)
    clear = set(cases.loc[cases["opacity_pct"] == 0, "subjid"])
    r1 = ind[ind["reader"] == "R1"].set_index("subject")
    assert (r1.loc[sorted(clear), "ggo"] == 0).all()
    assert r1.loc[sorted(clear), "rsna_negative"].mean() >= 0.8
    assert r1.loc[sorted(set(cases["subjid"]) - clear), "ggo"].mean() > 0.7
    # realistic disagreement: frequent findings agree well, not perfectly
    agreement = finding_agreement(readings, indicators=["ggo", "bilateral"]).set_index(["indicator", "reader_1",
                                                                                        "reader_2"])  # fmt: skip
    kappa = agreement.loc[("ggo", "R1", "R2"), "kappa"]
    assert 0.5 < kappa < 0.99


def test_true_findings_follow_the_phantom_lesions():
    inv = {"RUL": 0.0, "RML": 0.0, "RLL": 0.2, "LUL": 0.0, "LLL": 0.1}
    t = true_findings(10.0, 0.3, inv, np.random.default_rng(0))
    assert (t["lobes_involved"], t["laterality"], t["lower_zone"], t["axial_distribution"]) == (2, 2, 1, 1)
    assert (t["ggo"], t["consolidation"]) == (1, 1)
    assert t["category"] == 3 and t["co_rads"] == 4
    right_only = true_findings(40.0, 0.0, {**inv, "LLL": 0.0}, np.random.default_rng(0))
    assert right_only["laterality"] == 1 and right_only["consolidation"] == 0 and right_only["axial_distribution"] == 3


def test_frequency_figure_draws_every_indicator():
    calls = finding_calls(simulate_finding_readings(_demo_cases(20), np.random.default_rng(1)))
    freq = finding_frequencies(calls.assign(g=np.where(np.arange(len(calls)) % 2, "a", "b")), by="g")
    import matplotlib.pyplot as plt

    fig = frequency_figure(freq)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    plt.close(fig)  # an open current figure would be drawn on by later tests that plot on plt.gca()
    assert labels == list(dict.fromkeys(freq["label"]))
    assert len(INDICATORS) == len(set(freq["indicator"]))
