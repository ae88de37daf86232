"""Cohort-level quantification: every selected CT series quantified, cached, joined per patient."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.pipeline import quantify_cohort


@pytest.mark.slow
def test_quantify_cohort_joins_ct_columns_and_caches(demo_repository, tmp_path):
    cache = tmp_path / "cache"
    first = quantify_cohort(demo_repository, cache=cache, workers=1, show_progress=False)
    assert first.failures.empty, first.describe()
    assert set(first.results["series_uid"]) == set(first.jobs["series_uid"])
    cohort = first.cohort
    with_ct = cohort["n_ct_studies"] >= 1  # 89.1 % of demo patients have a CT, as in KICC-19
    assert cohort.loc[with_ct, "ct_opacity_pct"].notna().all() and cohort.loc[~with_ct, "ct_opacity_pct"].isna().all()
    assert cohort["ct_opacity_pct"].dropna().between(0, 100).all()
    assert cohort.attrs["cohort_version"] == first.build.cohort_version
    truth = pd.read_csv(demo_repository / "ground_truth" / "truth.csv")
    lung = truth[(truth["series_role"] == "lung") & (truth["timepoint"] == 1)].set_index("subjid")["lung_ml"]
    measured = cohort.set_index("subjid")["ct_lung_volume_ml"].dropna()
    relative_error = (measured - lung.reindex(measured.index)).abs() / lung.reindex(measured.index)
    assert relative_error.median() < 0.05
    second = quantify_cohort(demo_repository, cache=cache, workers=1, show_progress=False)
    assert second.results["cached"].all()
    pd.testing.assert_series_equal(first.cohort["ct_opacity_pct"], second.cohort["ct_opacity_pct"])
