"""Every case of ``../shared/reference/agreement_dev.json`` reproduced to its published precision.

Where our default convention differs from the reference, the test calls the option that reproduces it (see
docs/agreement.md, "Conventions and the references they reproduce").
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DIR, shared_path

from kicc_analysis.agreement import (
    bland_altman,
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
    segmentation_agreement,
    surface_distances,
)

REFERENCE = ("reference", "agreement_dev.json")
EXPECTED_IDS = [
    "icc_shrout_fleiss_1979",
    "icc_wine_8x4_realstatistics",
    "cohen_kappa_sas_3x3_unweighted",
    "cohen_kappa_sas_3x3_linear",
    "cohen_1968_weighted_kappa",
    "gwet_irrcac_cont3x3abstractors",
    "fleiss_kappa_fleiss1971_diagnoses",
    "fleiss_kappa_wikipedia_10x14",
    "fleiss_vs_randolph_free_marginal",
    "krippendorff_wikipedia_3coders_15units",
    "gwet_irrcac_raw4raters_unweighted",
    "bland_altman_1986_pefr",
    "monai_hd_r20_shift1",
    "monai_hd_r20_shift1_spacing",
    "monai_asd_r33_shift1",
    "monai_dice_small_arrays",
    "medpy_asd_assd_tiny",
]


def _load_cases() -> dict[str, dict]:
    path = SHARED_DIR.joinpath(*REFERENCE)
    if not path.exists():
        return {}
    return {case["id"]: case for case in json.loads(path.read_text())}


CASES = _load_cases()


@pytest.fixture(scope="module")
def cases() -> dict[str, dict]:
    path = shared_path(*REFERENCE)
    return {case["id"]: case for case in json.loads(path.read_text())}


def test_every_reference_case_is_covered(cases):
    assert sorted(cases) == sorted(EXPECTED_IDS), "a case was added to or removed from agreement_dev.json"
    assert set(CHECKS) == set(EXPECTED_IDS)


# --------------------------------------------------------------------------- checks per case

ICC_NAMES = {
    "ICC1": "ICC(1,1)",
    "ICC2": "ICC(2,1)",
    "ICC3": "ICC(3,1)",
    "ICC1k": "ICC(1,k)",
    "ICC2k": "ICC(2,k)",
    "ICC3k": "ICC(3,k)",
}


def check_icc(case):
    exp = case["expected"]
    table = icc(case["data"]["ratings"], confidence=case["params"]["ci_level"])
    for form, name in ICC_NAMES.items():
        row = table.loc[form]
        assert row["estimate"] == pytest.approx(exp[name], abs=1e-6), form
        assert row["F"] == pytest.approx(exp[f"{name}_F"], abs=1e-6), form
        assert row["p"] == pytest.approx(exp[f"{name}_p"], rel=1e-6), form
        assert row["df2"] == exp[f"{name}_df2"], form
        if f"{name}_df1" in exp:
            assert row["df1"] == exp[f"{name}_df1"]
        assert [row["ci_low"], row["ci_high"]] == pytest.approx(exp[f"{name}_ci95"], abs=1e-6), form
    for key in ("BMS", "WMS", "JMS", "EMS"):
        if key in exp:
            assert table.attrs["mean_squares"][key] == pytest.approx(exp[key], abs=1e-6)
    for ver in case.get("verification", []):
        if "nan_policy" in ver["library"]:
            # missing rating -> listwise deletion (pingouin nan_policy="omit"), reported in attrs["dropped"]
            x = np.array(case["data"]["ratings"], dtype=float)
            x[3, 0] = np.nan
            omitted = icc(x)
            assert omitted.attrs["dropped"] == 1
            assert omitted.loc["ICC1", "estimate"] == pytest.approx(ver["computed"]["ICC(1,1)"], abs=1e-9)
            assert omitted.loc["ICC1k", "estimate"] == pytest.approx(ver["computed"]["ICC(1,k)"], abs=1e-9)
            assert list(omitted["df2"]) == [21, 18, 18, 21, 18, 18]
    for dis in case.get("disagreements", []):
        if "ICC(2,k)_ci95" in dis["mismatches"]:
            # irr's McGraw & Wong average-measures interval is our icc2k_ci="mcgraw_wong" option
            mw = icc(case["data"]["ratings"], icc2k_ci="mcgraw_wong").loc["ICC2k"]
            assert [mw["ci_low"], mw["ci_high"]] == pytest.approx(
                dis["mismatches"]["ICC(2,k)_ci95"]["computed"], abs=1e-6
            )


def _check_sas_kappa(case, weights):
    exp = case["expected"]
    est = cohen_kappa(table=case["data"]["contingency_table"], weights=weights)
    assert est.estimate == pytest.approx(exp["kappa"], abs=6e-5)
    assert est.se == pytest.approx(exp["ase"], abs=6e-5)
    assert est.extra["se0"] == pytest.approx(exp["ase0"], abs=6e-5)
    assert [est.ci_low, est.ci_high] == pytest.approx(exp["ci95"], abs=6e-5)
    assert est.z == pytest.approx(exp["z"], abs=6e-5)
    assert est.p == pytest.approx(exp["p_two_sided"], abs=6e-5)
    assert est.p / 2 == pytest.approx(exp["p_one_sided"], abs=6e-5)


def check_sas_unweighted(case):
    _check_sas_kappa(case, None)


def check_sas_linear(case):
    _check_sas_kappa(case, "linear")


def check_cohen_1968(case):
    exp = case["expected"]
    table = np.array(case["data"]["proportions_table"]) * case["data"]["n"]
    assert cohen_kappa(table=table).estimate == pytest.approx(exp["kappa"], abs=6e-4)
    weighted = cohen_kappa(table=table, weights=case["params"]["disagreement_weights"], weight_kind="disagreement")
    assert weighted.estimate == pytest.approx(exp["weighted_kappa"], abs=6e-4)
    # full precision of psych
    assert weighted.estimate == pytest.approx(0.347826, abs=1e-6)


def check_gwet_table(case):
    exp = case["expected"]
    table = case["data"]["contingency_table"]
    funcs = {
        "kappa": lambda **kw: cohen_kappa(convention="gwet", **kw),
        "scott": scott_pi,
        "ac1": gwet_ac,
        "bp": brennan_prediger,
        "kripp": krippendorff_alpha,
        "pa": percent_agreement,
    }
    for weights in ("identity", "quadratic", "linear"):
        for name, func in funcs.items():
            est = func(table=table, weights=None if weights == "identity" else weights)
            assert est.estimate == pytest.approx(exp[f"{name}_{weights}"], abs=1e-6), (name, weights)
            assert est.se == pytest.approx(exp[f"{name}_{weights}_se"], abs=1e-6), (name, weights)


def check_fleiss_1971(case):
    exp = case["expected"]
    x = np.array(case["data"]["ratings_rows_subjects_cols_raters"])
    est = fleiss_kappa(x)
    assert est.estimate == pytest.approx(exp["kappa"], abs=1e-6)
    assert est.extra["z0"] == pytest.approx(exp["z"], abs=1e-5)
    assert est.extra["se0"] == pytest.approx(exp["se0"], abs=1e-6)
    per = est.extra["per_category"]
    assert per["kappa"].to_numpy() == pytest.approx(exp["per_category_kappa"], abs=6e-4)
    assert per["z"].to_numpy() == pytest.approx(exp["per_category_z"], abs=6e-4)
    assert conger_kappa(x).estimate == pytest.approx(exp["conger_exact_kappa"], abs=1e-6)
    assert light_kappa(x).estimate == pytest.approx(exp["light_kappa"], abs=1e-6)


def check_fleiss_wikipedia(case):
    exp = case["expected"]
    counts = np.array(case["data"]["count_table_rows_subjects_cols_categories"])
    est = fleiss_kappa(counts=counts)
    assert est.estimate == pytest.approx(exp["kappa"], abs=6e-3)
    assert est.extra["pa"] == pytest.approx(exp["P_bar"], abs=6e-4)
    assert est.extra["pe"] == pytest.approx(exp["P_e_bar"], abs=6e-4)
    m = counts.sum(1)
    p_i = (np.sum(counts**2, 1) - m) / (m * (m - 1))
    assert p_i == pytest.approx(exp["P_i"], abs=6e-4)


def check_randolph(case):
    for key, table in case["data"]["count_tables_rows_subjects_cols_categories"].items():
        exp = case["expected"][key]
        assert fleiss_kappa(counts=table).estimate == pytest.approx(exp["fleiss"], abs=6e-6), key
        randolph = fleiss_kappa(counts=table, method="randolph").estimate
        assert randolph == pytest.approx(exp["randolph_free_marginal"], abs=6e-6), key


def check_krippendorff(case):
    # the krippendorff package layout is coders x units; ours is subjects x raters
    data = np.array(case["data"]["reliability_data_rows_coders_cols_units"], dtype=float).T
    for level, value in case["expected"].items():
        est = krippendorff_alpha(data, level=level)
        assert est.estimate == pytest.approx(value, abs=1e-6), level
        assert est.extra["dropped"] == {"no_rating": 2, "single_rating": 1}


def check_gwet_raw(case):
    exp = case["expected"]
    x = np.array(case["data"]["ratings_rows_units_cols_raters"], dtype=float)
    cats = case["params"]["categories"]
    funcs = {
        "ac1": gwet_ac,
        "fleiss": fleiss_kappa,
        "kripp": krippendorff_alpha,
        "conger": conger_kappa,
        "bp": brennan_prediger,
        "pa": percent_agreement,
    }
    for name, func in funcs.items():
        # The printouts are CRAN irrCAC 1.0's (Gwet's vignette); its Krippendorff SE is se_method="irrcac_1.0".
        options = {"se_method": "irrcac_1.0"} if name == "kripp" else {}
        est = func(x, categories=cats, **options)
        assert est.estimate == pytest.approx(exp[name], abs=6e-6), name
        assert est.extra["pa"] == pytest.approx(exp[f"{name}_pa"], abs=1e-6), name
        assert est.extra["pe"] == pytest.approx(exp[f"{name}_pe"], abs=1e-6), name
        low = float(exp[f"{name}_ci95"].strip("()").split(",")[0])
        assert est.ci_high == 1.0, name  # clipped at 1 as in irrCAC
        assert est.se == pytest.approx(exp[f"{name}_se"], abs=6e-6), name
        assert est.p == pytest.approx(exp[f"{name}_p"], rel=1e-4), name
        assert est.ci_low == pytest.approx(low, abs=5e-4), name


def check_bland_altman(case):
    data, exp = case["data"], case["expected"]
    res = bland_altman(data["wright_1st"], data["mini_wright_1st"])
    assert res.bias.estimate == pytest.approx(exp["bias"], abs=1e-6)
    assert res.sd == pytest.approx(exp["sd_diff"], abs=1e-5)
    assert [res.lower.estimate, res.upper.estimate] == pytest.approx(exp["loa_1.96"], abs=1e-6)
    assert [res.bias.ci_low, res.bias.ci_high] == pytest.approx(exp["bias_ci95_t"], abs=1e-6)
    paper = bland_altman(data["wright_1st"], data["mini_wright_1st"], multiplier=2, loa_se="bland_altman_1986")
    assert [paper.lower.estimate, paper.upper.estimate] == pytest.approx(exp["loa_2sd"], abs=1e-6)
    assert [paper.lower.ci_low, paper.lower.ci_high] == pytest.approx(exp["lower_loa_ci95_2sd"], abs=1e-6)
    assert [paper.upper.ci_low, paper.upper.ci_high] == pytest.approx(exp["upper_loa_ci95_2sd"], abs=1e-6)
    pub = exp["published_1986"]
    assert paper.bias.estimate == pytest.approx(pub["bias"], abs=0.05)
    assert paper.sd == pytest.approx(pub["sd"], abs=0.05)
    assert [paper.lower.estimate, paper.upper.estimate] == pytest.approx(pub["loa"], abs=0.2)
    assert [paper.lower.ci_low, paper.lower.ci_high] == pytest.approx(pub["lower_loa_ci"], abs=0.2)


def monai_sphere(radius, centre, shape=(99, 99, 99), spacing=(1.0, 1.0, 1.0)):
    """MONAI's create_spherical_seg_3d: voxel is 1 iff sum((idx * spacing - centre)^2) <= radius^2."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist2 = sum((g * sp - c) ** 2 for g, sp, c in zip(grids, spacing, centre, strict=True))
    return dist2 <= radius**2


def _check_monai_hd(case, spacing):
    exp = case["expected"]
    sp = spacing or (1.0, 1.0, 1.0)
    pred = monai_sphere(20, (20, 20, 20), spacing=sp)
    gt = monai_sphere(20, (19, 19, 19), spacing=sp)
    d_pred, _ = surface_distances(pred, gt, np.array(sp))
    assert d_pred.max() == pytest.approx(exp["directed"], rel=1e-6)
    res = segmentation_agreement(pred, gt, sp)
    assert res.hausdorff_mm == pytest.approx(exp["symmetric"], rel=1e-6)


def check_monai_hd(case):
    _check_monai_hd(case, case["params"]["spacing"])


def check_monai_asd(case):
    exp = case["expected"]
    pred = monai_sphere(33, (19, 33, 22))
    gt = monai_sphere(33, (20, 33, 22))
    res = segmentation_agreement(pred, gt)
    assert res.assd_mm == pytest.approx(exp["symmetric"], rel=1e-5)
    assert res.asd_a_to_b_mm == pytest.approx(exp["directed_pred_to_gt"], rel=1e-5)
    mean_of_means = segmentation_agreement(pred, gt, assd_mode="mean_of_means").assd_mm
    assert mean_of_means == pytest.approx((res.asd_a_to_b_mm + res.asd_b_to_a_mm) / 2)


def check_monai_dice(case):
    exp = case["expected"]
    c1 = case["data"]["case1"]
    res = segmentation_agreement(c1["y_pred"], c1["y"])
    assert res.dice == pytest.approx(exp["case1_dice"], abs=1e-4)
    assert res.jaccard == pytest.approx(exp["case1_jaccard"], abs=1e-4)
    c2 = case["data"]["case2"]
    pred, truth = np.array(c2["y_pred_onehot_BxCxHxW"]), np.array(c2["y_onehot"])
    for b in range(pred.shape[0]):
        for c in range(1, pred.shape[1]):  # include_background=False
            res = segmentation_agreement(pred[b, c], truth[b, c])
            assert res.dice == pytest.approx(exp["case2_dice_per_batch_per_foreground_class"][b][c - 1], abs=1e-4)
            assert res.jaccard == pytest.approx(exp["case2_jaccard"][b][c - 1], abs=1e-4)


def check_medpy(case):
    data, exp = case["data"], case["expected"]
    res = segmentation_agreement(data["result_min"], data["reference_min"])
    assert res.asd_a_to_b_mm == pytest.approx(exp["asd_min"], abs=1e-6)
    assert res.assd_mm == pytest.approx(exp["assd_min"], abs=1e-6)
    spaced = segmentation_agreement(data["result_min"], data["reference_min"], case["params"]["voxelspacing"])
    assert spaced.asd_a_to_b_mm == pytest.approx(exp["asd_min_spacing2"], abs=1e-6)
    res = segmentation_agreement(data["result_sym"], data["reference_sym"])
    assert res.asd_a_to_b_mm == pytest.approx(exp["asd_sym_result_to_ref"], abs=1e-6)
    assert res.asd_b_to_a_mm == pytest.approx(exp["asd_sym_ref_to_result"], abs=1e-6)
    assert res.assd_mm == pytest.approx(exp["assd_sym"], abs=1e-6)
    assert res.hausdorff_mm == pytest.approx(exp["hd_sym"], abs=1e-6)
    assert res.dice == pytest.approx(exp["dice_sym"], abs=1e-6)
    assert res.jaccard == pytest.approx(exp["jaccard_sym"], abs=1e-6)


CHECKS = {
    "icc_shrout_fleiss_1979": check_icc,
    "icc_wine_8x4_realstatistics": check_icc,
    "cohen_kappa_sas_3x3_unweighted": check_sas_unweighted,
    "cohen_kappa_sas_3x3_linear": check_sas_linear,
    "cohen_1968_weighted_kappa": check_cohen_1968,
    "gwet_irrcac_cont3x3abstractors": check_gwet_table,
    "fleiss_kappa_fleiss1971_diagnoses": check_fleiss_1971,
    "fleiss_kappa_wikipedia_10x14": check_fleiss_wikipedia,
    "fleiss_vs_randolph_free_marginal": check_randolph,
    "krippendorff_wikipedia_3coders_15units": check_krippendorff,
    "gwet_irrcac_raw4raters_unweighted": check_gwet_raw,
    "bland_altman_1986_pefr": check_bland_altman,
    "monai_hd_r20_shift1": check_monai_hd,
    "monai_hd_r20_shift1_spacing": check_monai_hd,
    "monai_asd_r33_shift1": check_monai_asd,
    "monai_dice_small_arrays": check_monai_dice,
    "medpy_asd_assd_tiny": check_medpy,
}


@pytest.mark.parametrize("case_id", EXPECTED_IDS)
def test_reference_case(cases, case_id):
    CHECKS[case_id](cases[case_id])
