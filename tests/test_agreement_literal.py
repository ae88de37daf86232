"""Published reference cases copied as literal data (run without ../shared), bad input, tables and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.agreement import (
    agreement_table,
    bland_altman,
    bland_altman_plot,
    cohen_kappa,
    confusion_matrix,
    confusion_matrix_plot,
    fleiss_kappa,
    forest_plot,
    gwet_ac,
    icc,
    kendall_w,
    krippendorff_alpha,
    lin_ccc,
    pairwise_table,
    segmentation_agreement,
    staple,
)
from kicc_analysis.errors import AnalysisError

# Shrout & Fleiss (1979) Table 2; values of Table 4 at full precision (R psych / pingouin).
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
SF_EXPECTED = {
    "ICC1": (0.165742, -0.132932, 0.72256),
    "ICC2": (0.289764, 0.018787, 0.761084),
    "ICC3": (0.714841, 0.342465, 0.945858),
    "ICC1k": (0.442797, -0.884442, 0.912415),
    "ICC2k": (0.620051, 0.071137, 0.927232),
    "ICC3k": (0.909316, 0.675675, 0.985892),
}

# SAS PROC FREQ printout (statsmodels TestUnweightedCohens).
SAS_TABLE = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]

# Gwet (2014) / irrCAC cac.raw4raters (Krippendorff 2011 data), 12 units x 4 raters with missing ratings.
RAW4 = np.array(
    [
        [1, 1, np.nan, 1],
        [2, 2, 3, 2],
        [3, 3, 3, 3],
        [3, 3, 3, 3],
        [2, 2, 2, 2],
        [1, 2, 3, 4],
        [4, 4, 4, 4],
        [1, 1, 2, 1],
        [2, 2, 2, 2],
        [np.nan, 5, 5, 5],
        [np.nan, np.nan, 1, 1],
        [np.nan, np.nan, 3, np.nan],
    ]
)

# Krippendorff's Wikipedia example (coders x units in the source; transposed here to units x coders).
KRIPP = np.array(
    [
        [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
        [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
    ]
).T

# Bland & Altman (1986) Table 1, PEFR (l/min), Wright vs mini Wright, first readings.
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]


def test_icc_shrout_fleiss_literal():
    table = icc(SHROUT_FLEISS)
    for form, (value, low, high) in SF_EXPECTED.items():
        assert table.loc[form, "estimate"] == pytest.approx(value, abs=1e-6)
        assert table.loc[form, ["ci_low", "ci_high"]].tolist() == pytest.approx([low, high], abs=1e-6)
    assert table.loc["ICC2", "mcgraw_wong"] == "ICC(A,1)"
    assert table.loc["ICC3", "F"] == pytest.approx(11.027248, abs=1e-6)


def test_icc_long_format_matches_wide():
    x = np.array(SHROUT_FLEISS)
    long = pd.DataFrame(
        [(f"s{i}", f"j{j}", x[i, j]) for i in range(x.shape[0]) for j in range(x.shape[1])],
        columns=["target", "judge", "score"],
    )
    a = icc(long, "target", "judge", "score")
    b = icc(x)
    assert a["estimate"].to_numpy() == pytest.approx(b["estimate"].to_numpy())


def test_cohen_kappa_sas_literal():
    est = cohen_kappa(table=SAS_TABLE)
    assert est.estimate == pytest.approx(0.4842, abs=6e-5)
    assert est.se == pytest.approx(0.1380, abs=6e-5)
    assert [est.ci_low, est.ci_high] == pytest.approx([0.2137, 0.7547], abs=6e-5)
    assert est.z == pytest.approx(3.2626, abs=6e-5)
    # raw ratings give the same table
    r1 = [1] * 5 + [2] * 8 + [3] * 6
    r2 = [2, 2, 2, 2, 3] + [2] * 8 + [2, 3, 3, 3, 3, 3]
    assert cohen_kappa(r1, r2).estimate == pytest.approx(est.estimate)


def test_unused_category_counts():
    r1, r2 = [0, 1, 2, 1, 0, 2], [0, 1, 2, 2, 0, 1]
    declared = cohen_kappa(r1, r2, weights="quadratic", categories=[0, 1, 2, 3, 4, 5])
    assert declared.extra["table"].shape == (6, 6)
    # kappa weights use category values, so an unused end level leaves kappa unchanged ...
    assert declared.estimate == pytest.approx(cohen_kappa(r1, r2, weights="quadratic").estimate)
    # ... but AC1's chance agreement depends on the number of categories q
    x = np.array([r1, r2]).T
    ac1_q3 = gwet_ac(x)
    ac1_q6 = gwet_ac(x, categories=range(6))
    assert ac1_q6.extra["pe"] == pytest.approx(ac1_q3.extra["pe"] * (3 - 1) / (6 - 1))
    assert ac1_q6.estimate > ac1_q3.estimate


def test_gwet_raw4raters_literal():
    ac1 = gwet_ac(RAW4, categories=[1, 2, 3, 4, 5])
    assert ac1.estimate == pytest.approx(0.77544, abs=6e-6)
    assert ac1.se == pytest.approx(0.14295, abs=6e-6)
    fk = fleiss_kappa(RAW4, categories=[1, 2, 3, 4, 5])
    assert fk.estimate == pytest.approx(0.76117, abs=6e-6)
    assert fk.se == pytest.approx(0.15302, abs=6e-6)
    assert fk.n == 12


def test_krippendorff_literal():
    assert krippendorff_alpha(KRIPP, level="nominal").estimate == pytest.approx(0.691358, abs=1e-6)
    assert krippendorff_alpha(KRIPP, level="interval").estimate == pytest.approx(0.810845, abs=1e-6)
    assert krippendorff_alpha(KRIPP, level="ordinal").estimate == pytest.approx(0.806721, abs=1e-6)
    assert krippendorff_alpha(KRIPP, level="ratio").estimate == pytest.approx(0.808944, abs=1e-6)


def test_krippendorff_long_format():
    rows = [(u, c, KRIPP[u, c]) for u in range(KRIPP.shape[0]) for c in range(3) if np.isfinite(KRIPP[u, c])]
    long = pd.DataFrame(rows, columns=["unit", "coder", "value"])
    assert krippendorff_alpha(long, "unit", "coder", "value").estimate == pytest.approx(0.691358, abs=1e-6)


def test_bland_altman_literal():
    res = bland_altman(WRIGHT, MINI)
    assert res.bias.estimate == pytest.approx(-2.117647, abs=1e-6)
    assert res.sd == pytest.approx(38.76513, abs=1e-5)
    assert [res.lower.estimate, res.upper.estimate] == pytest.approx([-78.097302, 73.862007], abs=1e-6)
    paper = bland_altman(WRIGHT, MINI, multiplier=2, loa_se="bland_altman_1986")
    assert [paper.lower.ci_low, paper.lower.ci_high] == pytest.approx([-114.169742, -45.126072], abs=1e-6)
    frame = res.to_frame()
    assert list(frame["quantity"]) == ["bias", "lower_loa", "upper_loa"]
    # 1999 exact-normal limit SE is wider than zero and differs from the 1986 approximation
    assert res.lower.se == pytest.approx(38.76513 * np.sqrt(1 / 17 + 1.96**2 / 32), rel=1e-6)


def test_bland_altman_repeated_and_missing():
    rng = np.random.default_rng(3)
    subj = np.repeat(np.arange(30), 3)
    truth = rng.normal(100, 20, 30)[subj]
    x = truth + rng.normal(0, 5, subj.size)
    y = truth + 2 + rng.normal(0, 5, subj.size)
    res = bland_altman(x, y, subject=subj)
    assert res.bias.estimate == pytest.approx(np.mean(x - y))
    assert res.bias.extra["df"] == 29
    x[0] = np.nan
    assert bland_altman(x, y).bias.extra["dropped"] == 1


def test_lin_ccc_properties():
    x = np.array(WRIGHT, float)
    perfect = lin_ccc(x, x)
    assert perfect.estimate == pytest.approx(1.0)
    est = lin_ccc(WRIGHT, MINI)
    r = np.corrcoef(WRIGHT, MINI)[0, 1]
    assert est.estimate < r  # accuracy C_b <= 1
    assert est.ci_low < est.estimate < est.ci_high
    assert est.estimate == pytest.approx(est.extra["r"] * est.extra["C_b"])


def test_kendall_w_known_values():
    # complete agreement of 3 raters ranking 4 subjects -> W = 1
    x = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]])
    assert kendall_w(x).estimate == pytest.approx(1.0)
    # textbook: ranks summing to equal totals -> W = 0
    y = np.array([[1, 2, 3], [2, 3, 1], [3, 1, 2]])
    assert kendall_w(y).estimate == pytest.approx(0.0)
    w = kendall_w(np.array(SHROUT_FLEISS))
    assert 0 < w.estimate < 1
    assert w.chi_square == pytest.approx(4 * 5 * w.estimate)


def test_segmentation_empty_and_conventions():
    empty = np.zeros((5, 5), bool)
    both = segmentation_agreement(empty, empty)
    assert (both.dice, both.hausdorff_mm, both.empty) == (1.0, 0.0, "both")
    a = empty.copy()
    a[1:3, 1:3] = True
    one = segmentation_agreement(a, empty)
    assert one.dice == 0.0 and np.isnan(one.hausdorff_mm) and one.empty == "b"
    b = np.roll(a, 1, axis=1)
    res = segmentation_agreement(a, b, (2.0, 0.5))
    assert res.volume_a_ml == pytest.approx(4 * 1.0 / 1000)
    assert res.hausdorff_mm == pytest.approx(0.5)
    pooled = segmentation_agreement(a, b, percentile_mode="pooled")
    assert pooled.hd95_mm <= pooled.hausdorff_mm


def test_segmentation_sitk_spacing():
    sitk = pytest.importorskip("SimpleITK")
    arr = np.zeros((6, 8, 8), np.uint8)
    arr[2:4, 2:6, 2:6] = 1
    img_a = sitk.GetImageFromArray(arr)
    img_a.SetSpacing((0.7, 0.7, 2.5))
    img_b = sitk.GetImageFromArray(np.roll(arr, 1, axis=0))
    img_b.SetSpacing((0.7, 0.7, 2.5))
    res = segmentation_agreement(img_a, img_b)
    assert res.hausdorff_mm == pytest.approx(2.5)
    filt = sitk.HausdorffDistanceImageFilter()
    filt.Execute(img_a, img_b)
    assert res.hausdorff_mm == pytest.approx(filt.GetHausdorffDistance())


def test_staple_consensus():
    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    r1 = truth.copy()
    r2 = truth.copy()
    r2[5, 5:15] = False
    r3 = truth.copy()
    r3[15, 5:15] = True
    res = staple([r1, r2, r3], readers=["R1", "R2", "R3"])
    assert list(res.readers["reader"]) == ["R1", "R2", "R3"]
    assert res.readers["sensitivity"].between(0, 1).all()
    assert segmentation_agreement(res.consensus, truth).dice > 0.95
    with pytest.raises(AnalysisError):
        staple([r1])


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(AnalysisError, match="columns"):
        icc(pd.DataFrame({"a": [1]}), "subject", "rater", "score")
    with pytest.raises(AnalysisError, match="same length"):
        cohen_kappa([1, 2], [1])
    with pytest.raises(AnalysisError, match="not among the declared categories"):
        cohen_kappa([1, 2, 7], [1, 2, 2], categories=[1, 2, 3])
    with pytest.raises(AnalysisError, match="repeat"):
        gwet_ac(pd.DataFrame({"s": [1, 1], "r": ["a", "a"], "v": [1, 2]}), "s", "r", "v")
    with pytest.raises(AnalysisError, match="square"):
        cohen_kappa(table=[[1, 2, 3]])
    with pytest.raises(AnalysisError, match="2 subjects"):
        icc([[1, np.nan], [2, 3]])
    with pytest.raises(AnalysisError, match="same shape"):
        segmentation_agreement(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(AnalysisError, match="spacing"):
        segmentation_agreement(np.zeros((3, 3)), np.zeros((3, 3)), (1, 1, 1))
    with pytest.raises(AnalysisError, match="two raters"):
        gwet_ac([[1, np.nan], [np.nan, 2]])


def test_missing_ratings_are_reported_not_lost():
    x = np.array([[1, 1], [2, 2], [np.nan, np.nan], [1, np.nan], [2, 1]])
    est = cohen_kappa(x[:, 0], x[:, 1])
    assert est.n == 3 and est.extra["dropped"] == {"missing_rating": 2}
    g = gwet_ac(x)
    assert g.n == 4 and g.extra["dropped"] == {"no_rating": 1}


# --------------------------------------------------------------------------- tables and plots


def _readings(n=60, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n)
    rows = []
    for s in range(n):
        for r in ("R1", "R2", "R3"):
            for item in ("RUL", "LLL"):
                rows.append((f"S{s:03d}", r, item, int(np.clip(truth[s] + rng.integers(-1, 2), 0, 5))))
    return pd.DataFrame(rows, columns=["subjid", "reader", "item", "score"])


def test_agreement_table_and_pairwise():
    df = _readings()
    table = agreement_table(
        df,
        subject="subjid",
        rater="reader",
        rating="score",
        item="item",
        categories=range(6),
        coefficients=("fleiss_kappa", "gwet_ac2", "krippendorff_ordinal", "icc2", "kendall_w"),
    )
    assert len(table) == 10
    assert set(table["item"]) == {"RUL", "LLL"}
    assert table["estimate"].between(-1, 1).all()
    assert table["summary"].str.contains(r"\(").sum() >= 8
    pairs = pairwise_table(df[df["item"] == "RUL"], subject="subjid", rater="reader", rating="score")
    assert len(pairs) == 3 and set(pairs["rater_a"]) <= {"R1", "R2"}
    with pytest.raises(AnalysisError, match="unknown coefficients"):
        agreement_table(df, subject="subjid", rater="reader", rating="score", coefficients=["nope"])


def test_confusion_matrix_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    df = _readings()
    part = df[df["item"] == "RUL"]
    cm = confusion_matrix(part, "R1", "R2", subject="subjid", rater="reader", rating="score", categories=range(6))
    assert cm.shape == (6, 6) and cm.to_numpy().sum() == 60
    fig = confusion_matrix_plot(cm, title="RUL")
    assert fig.axes
    fig2 = bland_altman_plot(bland_altman(WRIGHT, MINI), units="l/min", show_regression=True)
    assert fig2.axes[0].get_xlabel().endswith("(l/min)")
    table = agreement_table(df, subject="subjid", rater="reader", rating="score", item="item")
    fig3 = forest_plot(table)
    assert fig3.axes
    import matplotlib.pyplot as plt

    plt.close("all")


def test_surface_distances_equal_distance_transform():
    from scipy import ndimage

    from kicc_analysis.agreement import surface_distances

    rng = np.random.default_rng(11)
    a = ndimage.binary_opening(rng.random((18, 20, 22)) > 0.55)
    b = ndimage.binary_opening(rng.random((18, 20, 22)) > 0.55)
    spacing = np.array([2.5, 0.8, 0.6])
    d_ab, d_ba = surface_distances(a, b, spacing)
    structure = ndimage.generate_binary_structure(3, 1)
    sa = a & ~ndimage.binary_erosion(a, structure)
    sb = b & ~ndimage.binary_erosion(b, structure)
    edt_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    edt_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    assert np.sort(d_ab) == pytest.approx(np.sort(edt_b[sa]), abs=1e-9)
    assert np.sort(d_ba) == pytest.approx(np.sort(edt_a[sb]), abs=1e-9)


def test_bland_altman_repeated_with_one_pair_per_subject_equals_plain():
    plain = bland_altman(WRIGHT, MINI)
    repeated = bland_altman(WRIGHT, MINI, subject=np.arange(len(WRIGHT)))
    assert repeated.sd == pytest.approx(plain.sd, rel=1e-12)
    assert repeated.bias.se == pytest.approx(plain.bias.se, rel=1e-12)
    assert [repeated.lower.estimate, repeated.upper.estimate] == pytest.approx(
        [plain.lower.estimate, plain.upper.estimate]
    )
