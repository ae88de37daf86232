"""The default demo against the published KICC-19 summary (J Korean Med Sci 2020;35:e413).

The default demo (522 patients, seed 19) is checked at full size through its plan (``plan_demo``: the clinical table
and every patient -> study -> series decision, without pixel data; writing all 522 patients' DICOM takes minutes).
That the plan is exactly what ``generate_demo`` writes is checked on the small session demo.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.demo.calibration import AUC_RANGE, _auc, comparison_markdown, published_comparison
from kicc_analysis.demo.clinical import PUBLISHED, simulate_clinical
from kicc_analysis.demo.generator import DEFAULT_PATIENTS, plan_demo

DOC_MARKERS = ("<!-- published-comparison: start -->", "<!-- published-comparison: end -->")


@pytest.fixture(scope="module")
def comparison(default_demo_plan) -> pd.DataFrame:
    return published_comparison(default_demo_plan).set_index("figure")


def test_default_size_is_the_published_cohort(default_demo_plan) -> None:
    assert DEFAULT_PATIENTS == 522 and default_demo_plan.n_patients == 522
    sites = default_demo_plan.clinical["kicc_site"].value_counts()
    assert len(sites) == 17 and sites.sum() == 522
    assert sites.max() >= 5 * sites.min()  # hospitals of different sizes


def test_published_marginals_within_their_99pct_sampling_interval(comparison) -> None:
    checked = comparison[comparison["kind"].isin(["proportion", "mean", "range"])]
    assert len(checked) == 14
    outside = checked[(checked["demo"] < checked["low"]) | (checked["demo"] > checked["high"])]
    assert outside.empty, outside[["published", "demo", "low", "high"]]
    # the intervals are sampling intervals at n = 522, not loose bounds: e.g. deaths 1.9-6.3 %
    assert comparison.loc["death", "high"] - comparison.loc["death", "low"] < 5


def test_scan_counts_per_patient(default_demo_plan, comparison) -> None:
    inv = default_demo_plan.inventory
    clinical = default_demo_plan.clinical.set_index("subjid")
    ct = inv[inv["img_modality"] == "CT"]
    rx = inv[inv["img_modality"] != "CT"]
    assert len(ct) == PUBLISHED["ct_scans"] and len(rx) == PUBLISHED["radiograph_scans"]
    assert ct["subjid"].nunique() == round(PUBLISHED["ct_patients"] * 522)  # 465
    assert rx["subjid"].nunique() == round(PUBLISHED["radiograph_patients"] * 522)  # 497
    per_ct = ct.groupby("subjid").size()
    assert set(per_ct) == {1, 2} and per_ct.mean() == pytest.approx(658 / 465)
    per_rx = rx.groupby("subjid").size()
    assert per_rx.min() == 1 and 2 <= per_rx.median() <= 4 and per_rx.max() <= 15
    assert (comparison.loc[["CT scans", "radiographs"], "demo"] == [658, 1475]).all()
    # timing: one baseline CT per imaged patient, a follow-up after it, no image after death
    assert (ct.groupby("subjid")["img_timepoint"].min() == 1).all()
    first = ct.sort_values("img_day").groupby("subjid")["img_timepoint"].apply(list)
    assert all(tp == sorted(tp) for tp in first)
    died = clinical.index[clinical["outco_outcome"] == 2]
    dead_img = inv[inv["subjid"].isin(died)]
    assert (dead_img["img_day"].to_numpy() <= clinical.loc[dead_img["subjid"], "outco_day"].to_numpy()).all()
    assert set(inv["img_modality"]) == {"CT", "DX", "CR"}


def test_ct_extent_discriminates_outcomes_like_the_literature(comparison) -> None:
    auc = comparison[comparison["kind"] == "auc"]
    assert len(auc) == 4
    # at the default size: outcomes with many events inside 0.75-0.85 itself; death (21 events) inside the range
    # widened by the AUC's own 99 % sampling half-width
    for label in ("oxygen or ventilation", "ICU admission", "mechanical ventilation"):
        assert AUC_RANGE[0] <= auc.loc[f"AUC of CT extent for {label}", "demo"] <= AUC_RANGE[1], label
    assert (auc["demo"].between(auc["low"], auc["high"])).all()
    assert (auc["demo"] < 0.95).all()  # not the near-separation of the old demo (0.99)


def test_model_effect_sizes_on_a_large_simulation() -> None:
    # the generative model itself (sampling noise ~0.005 at this size): CT burden and SpO2 discriminate, not separate
    sim = simulate_clinical(20000, np.random.default_rng(np.random.SeedSequence([19, 1])))
    c, burden = sim.clinical, sim.latent["opacity_pct"].to_numpy()
    outcomes = {
        "oxygen": c["inter_suppleo2"] == 1,
        "icu": c["crito_icu"] == 1,
        "mv": c["inter_invent"] == 1,
        "death": c["outco_outcome"] == 2,
    }
    for name, event in outcomes.items():
        e = event.to_numpy()
        assert AUC_RANGE[0] <= _auc(burden, e) <= AUC_RANGE[1], name
        assert 0.65 <= _auc(-c["vital_spo2room"].to_numpy(float), e) <= 0.85, name
    assert 0.75 <= _auc(c["demog_age"].to_numpy(float), outcomes["death"].to_numpy()) <= 0.92  # age drives death


def test_plan_is_what_generate_demo_writes(demo_repository) -> None:
    plan = plan_demo(8, seed=19)
    inv = pd.read_csv(demo_repository / "clinical" / "imaging_studies.csv")
    pd.testing.assert_frame_equal(inv, plan.inventory, check_dtype=False)
    clinical = pd.read_csv(demo_repository / "clinical" / "clinical.csv", dtype=str, keep_default_na=False)
    planned = pd.read_csv(
        pd.io.common.StringIO(plan.clinical.to_csv(index=False, lineterminator="\n")), dtype=str, keep_default_na=False
    )
    pd.testing.assert_frame_equal(clinical, planned)
    from_files = published_comparison(demo_repository).set_index("figure")
    from_plan = published_comparison(plan).set_index("figure")
    np.testing.assert_allclose(from_files["demo"], from_plan["demo"], atol=1e-9, equal_nan=True)
    # every radiograph is projected from a phantom of its patient: its burden is the nearest CT's (or the baseline)
    rx = pd.read_csv(demo_repository / "ground_truth" / "radiographs.csv")
    assert len(rx) == (inv["img_modality"] != "CT").sum() and rx["opacity_pct"].between(0, 100).all()


def test_docs_table_is_current(project_root, comparison) -> None:
    text = (project_root / "docs" / "demo.md").read_text(encoding="utf-8")
    match = re.search(re.escape(DOC_MARKERS[0]) + r"\n(.*?)" + re.escape(DOC_MARKERS[1]), text, re.S)
    assert match, f"docs/demo.md lacks the {DOC_MARKERS[0]} block"
    expected = comparison_markdown(comparison.reset_index())
    assert match.group(1) == expected, "regenerate with: python -m kicc_analysis.demo.calibration"
