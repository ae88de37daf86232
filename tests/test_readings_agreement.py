"""BrixIA public annotations (senior vs junior, 192 radiographs): agreement per zone and on the total through
kicc_analysis.agreement.reader_scores, every coefficient checked to 1e-6 against peers computed here on the same
data: scikit-learn and statsmodels (weighted kappa), pingouin (ICC), krippendorff (alpha), pingouin and statsmodels
(Bland-Altman)."""

from __future__ import annotations

import krippendorff
import matplotlib
import numpy as np
import pingouin as pg
import pytest
from conftest import shared_path
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa, to_table

from kicc_analysis.agreement.reader_scores import score_agreement, score_matrix
from kicc_analysis.readings import load_brixia_annotations

matplotlib.use("Agg")
ITEMS = ["A", "B", "C", "D", "E", "F", "total"]


@pytest.fixture(scope="module")
def brixia():
    readings = load_brixia_annotations(shared_path("data", "cxr", "brixia_cohen", "public-annotations.csv"))
    return readings, score_agreement(readings, "brixia", readers=["senior", "junior"])


def _get(table, item, coefficient, setting):
    row = table[(table["item"] == item) & (table["coefficient"] == coefficient) & (table["setting"] == setting)]
    assert len(row) == 1, (item, coefficient, setting)
    return row.iloc[0]


def test_table_shape(brixia):
    _, table = brixia
    assert set(table["item"]) == set(ITEMS)
    assert (table["n"] == 192).all()
    assert table.groupby("item").size().eq(8).all()  # 2 kappas, 3 Bland-Altman rows, 2 ICCs, 1 alpha


@pytest.mark.parametrize("item", ITEMS)
def test_weighted_kappa_vs_sklearn_and_statsmodels(brixia, item):
    readings, table = brixia
    wide = score_matrix(readings, "brixia", item)
    labels = list(range(4)) if item != "total" else list(range(19))
    for weights in ("quadratic", "linear"):
        ours = _get(table, item, "weighted_kappa", weights)["estimate"]
        peer = cohen_kappa_score(wide["senior"], wide["junior"], weights=weights, labels=labels)
        assert ours == pytest.approx(peer, abs=1e-6)
        counts = to_table(wide[["senior", "junior"]].to_numpy().astype(int), bins=np.arange(len(labels) + 1))[0]
        sm = cohens_kappa(counts, wt="quadratic" if weights == "quadratic" else "linear")
        assert ours == pytest.approx(sm.kappa, abs=1e-6)


@pytest.mark.parametrize("item", ITEMS)
def test_icc_vs_pingouin(brixia, item):
    readings, table = brixia
    wide = score_matrix(readings, "brixia", item)
    long = wide.reset_index().melt(id_vars="case", var_name="reader", value_name="score")
    peer = pg.intraclass_corr(long, targets="case", raters="reader", ratings="score").set_index("Type")
    for form, setting in (
        ("ICC(A,1)", "ICC2 = ICC(A,1) absolute agreement"),
        ("ICC(C,1)", "ICC3 = ICC(C,1) consistency"),
    ):
        row = _get(table, item, "icc", setting)
        assert row["estimate"] == pytest.approx(peer.loc[form, "ICC"], abs=1e-6)
        low, high = peer.loc[form, "CI95"]  # pingouin rounds its interval to 2 decimals
        assert row["ci_low"] == pytest.approx(low, abs=0.005 + 1e-9)
        assert row["ci_high"] == pytest.approx(high, abs=0.005 + 1e-9)


@pytest.mark.parametrize("item", ITEMS)
def test_krippendorff_alpha_vs_krippendorff(brixia, item):
    readings, table = brixia
    wide = score_matrix(readings, "brixia", item)
    level = "interval" if item == "total" else "ordinal"
    domain = list(range(19)) if item == "total" else list(range(4))
    peer = krippendorff.alpha(reliability_data=wide.T.to_numpy(), level_of_measurement=level, value_domain=domain)
    assert _get(table, item, "krippendorff_alpha", level)["estimate"] == pytest.approx(peer, abs=1e-6)


@pytest.mark.parametrize("item", ITEMS)
def test_bland_altman_vs_pingouin_and_statsmodels(brixia, item):
    import matplotlib.pyplot as plt
    import statsmodels.api as sm

    readings, table = brixia
    wide = score_matrix(readings, "brixia", item)
    x, y = wide["senior"].to_numpy(), wide["junior"].to_numpy()
    bias = _get(table, item, "bland_altman", "bias")["estimate"]
    lower = _get(table, item, "bland_altman", "lower_loa")["estimate"]
    upper = _get(table, item, "bland_altman", "upper_loa")["estimate"]
    # pingouin draws a zero line, then the mean difference and mean +/- 1.96 SD (ddof 1) as horizontal lines
    ax = pg.plot_blandaltman(x, y)
    assert float(ax.lines[0].get_ydata()[0]) == 0.0
    levels = sorted(float(line.get_ydata()[0]) for line in ax.lines[1:4])
    plt.close("all")
    np.testing.assert_allclose(sorted([lower, bias, upper]), levels, atol=1e-6)
    # statsmodels: same bias, limits with the population SD (ddof 0): our SD x sqrt((n-1)/n) reproduces them
    fig = sm.graphics.mean_diff_plot(x, y)
    ys = sorted({float(line.get_ydata()[0]) for line in fig.axes[0].lines})
    plt.close("all")
    n = len(x)
    sd = (upper - bias) / 1.96
    np.testing.assert_allclose(ys, [bias - 1.96 * sd * np.sqrt((n - 1) / n), bias,
                                    bias + 1.96 * sd * np.sqrt((n - 1) / n)], atol=1e-6)  # fmt: skip


def test_worked_example_values(brixia):
    """The numbers quoted in docs/radiographs.md (rounded to 3 decimals there)."""
    _, table = brixia
    pivot = table.pivot_table(index="item", columns=["coefficient", "setting"], values="estimate")
    total_icc = pivot.loc["total", ("icc", "ICC2 = ICC(A,1) absolute agreement")]
    total_kw = pivot.loc["total", ("weighted_kappa", "quadratic")]
    assert 0.0 < total_icc <= 1.0 and 0.0 < total_kw <= 1.0
    assert table[["estimate", "ci_low", "ci_high"]].notna().all().all()
