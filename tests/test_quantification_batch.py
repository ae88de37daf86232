"""Tests of kicc_analysis.quantification.batch: parallel cached runs, failures, cohort join, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from kicc_analysis.errors import AnalysisError
from kicc_analysis.quantification import batch

phantom = pytest.importorskip("kicc_analysis.demo.phantom")


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    paths = {}
    for name, seed, fraction in (("a0", 0, 0.05), ("a1", 0, 0.20), ("b0", 1, 0.10)):
        ph = phantom.chest_phantom(
            shape=(24, 96, 96), spacing_mm=(12.0, 3.6, 3.6), lesions="random", seed=seed, opacity_fraction=fraction
        )
        image = sitk.GetImageFromArray(ph.hu)
        image.SetSpacing((3.6, 3.6, 12.0))
        paths[name] = folder / f"{name}.nrrd"
        sitk.WriteImage(image, str(paths[name]))
    paths["broken"] = folder / "broken.nrrd"
    paths["broken"].write_text("not an image")
    return paths


def _jobs(paths):
    return pd.DataFrame(
        {
            "subjid": ["KICC-S01-0001", "KICC-S01-0001", "KICC-S01-0002", "KICC-S01-0003"],
            "series_uid": ["1.1", "1.2", "2.1", "3.1"],
            "timepoint": ["baseline", "follow-up", "baseline", "baseline"],
            "img_day": [0, 10, 1, 0],
            "source": [str(paths["a0"]), str(paths["a1"]), str(paths["b0"]), str(paths["broken"])],
        }
    )


def test_batch_parallel_cache_and_failures(series_files, tmp_path):
    jobs = _jobs(series_files)
    first = batch.quantify_series_table(jobs, tmp_path / "cache", workers=2, show_progress=False)
    failures = first.attrs["failures"]
    assert list(failures.series_uid) == ["3.1"]
    assert "ImagingError" in failures.error.iloc[0]
    assert set(first.series_uid) == {"1.1", "1.2", "2.1"}
    assert not first.cached.any()
    assert (first.groupby("series_uid").region.apply(lambda r: "both" in set(r))).all()
    second = batch.quantify_series_table(jobs, tmp_path / "cache", workers=1, show_progress=False)
    assert second.cached.all()
    pd.testing.assert_frame_equal(
        first.drop(columns="cached").reset_index(drop=True), second.drop(columns="cached").reset_index(drop=True)
    )
    # follow-up with more opacity than baseline -> positive change
    cohort = pd.DataFrame({"subjid": ["KICC-S01-0001", "KICC-S01-0002", "KICC-S01-0003", "KICC-S01-0004"]})
    joined = batch.join_to_cohort(cohort, first)
    assert len(joined) == 4 and list(joined.subjid) == list(cohort.subjid)
    row = joined.set_index("subjid").loc["KICC-S01-0001"]
    assert row.ct_opacity_pct_change == pytest.approx(row.ct_opacity_pct_followup - row.ct_opacity_pct)
    assert row.ct_opacity_pct_change > 5
    assert np.isnan(joined.set_index("subjid").loc["KICC-S01-0002", "ct_opacity_pct_change"])
    assert joined.set_index("subjid").loc["KICC-S01-0004"].isna().all()
    for col in ("ct_opacity_pct", "ct_ggo_pct", "ct_consolidation_pct", "ct_severity_total", "ct_lung_volume_ml"):
        assert col in joined.columns and f"{col}_change" in joined.columns
    # core / periphery regions: their volumes add up to the lung, and the joined columns are those of the rows
    regions = first[first.series_uid == "1.1"].set_index("region")
    assert regions.loc["both_core", "volume_ml"] + regions.loc["both_periphery", "volume_ml"] == pytest.approx(
        regions.loc["both", "volume_ml"]
    )
    assert row.ct_periphery_opacity_pct == pytest.approx(regions.loc["both_periphery", "opacity_pct"])
    assert row.ct_core_opacity_pct == pytest.approx(regions.loc["both_core", "opacity_pct"])
    assert "ct_periphery_opacity_pct_followup" in joined.columns
    # table-3: what the lungs-1.6 halo gate removed is reported per series (mL, >= 0, one value per series)
    per_series = first.groupby("series_uid").qa_halo_dropped_ml.nunique()
    assert (per_series == 1).all() and (first.qa_halo_dropped_ml >= 0).all()


def test_batch_rejects_bad_jobs(tmp_path):
    with pytest.raises(AnalysisError, match="missing column"):
        batch.quantify_series_table(pd.DataFrame({"subjid": ["a"]}), tmp_path)
    jobs = pd.DataFrame(
        {"subjid": ["a"], "series_uid": ["1"], "timepoint": ["week 2"], "img_day": [0], "source": ["x"]}
    )
    with pytest.raises(AnalysisError, match="timepoint"):
        batch.quantify_series_table(jobs, tmp_path)


def _one_job(source, **extra):
    return pd.DataFrame(
        {
            "subjid": ["KICC-S01-0001"],
            "series_uid": ["9.9"],
            "timepoint": ["baseline"],
            "img_day": [0],
            "source": [source],
        }
        | {k: [v] for k, v in extra.items()}
    )


def test_cache_follows_the_series_content_and_parameters(series_files, tmp_path):
    """Issue 11 item 1: the same UID re-sent with other pixels (size and mtime restored) is recomputed, a series
    that fails now is reported as failed (not served from the cache), and the bin preset or an extra job
    parameter (a mask file, by content) are part of the key."""
    import os
    import shutil

    source = tmp_path / "series.nrrd"
    shutil.copyfile(series_files["a0"], source)
    cache = tmp_path / "cache"
    first = batch.quantify_series_table(_one_job(str(source)), cache, workers=1, show_progress=False)
    assert not first.cached.any()
    again = batch.quantify_series_table(_one_job(str(source)), cache, workers=1, show_progress=False)
    assert again.cached.all()
    # a corrected series re-sent under the same UID (more opacity); same size, mtime put back
    st = os.stat(source)
    shutil.copyfile(series_files["a1"], source)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = batch.quantify_series_table(_one_job(str(source)), cache, workers=1, show_progress=False)
    assert not changed.cached.any()
    both = lambda t: t.set_index("region").loc["both", "opacity_pct"]  # noqa: E731
    assert both(changed) > both(first) + 5
    # the series is now broken: a failure, never the old cached numbers
    source.write_text("not an image")
    broken = batch.quantify_series_table(_one_job(str(source)), cache, workers=1, show_progress=False)
    assert broken.empty and list(broken.attrs["failures"].series_uid) == ["9.9"]
    # parameters: the bin preset and a mask file (by content) key the result too
    shutil.copyfile(series_files["a0"], source)
    key = batch.job_cache_key(_one_job(str(source)).iloc[0].to_dict(), bins="default", core_periphery=True)
    assert key != batch.job_cache_key(_one_job(str(source)).iloc[0].to_dict(), bins="wide", core_periphery=True)
    mask = tmp_path / "mask.nrrd"
    mask.write_bytes(b"mask 1")
    with_mask = batch.job_cache_key(_one_job(str(source), mask_path=str(mask)).iloc[0].to_dict(), bins="default")
    mask.write_bytes(b"mask 2")
    assert with_mask != batch.job_cache_key(
        _one_job(str(source), mask_path=str(mask)).iloc[0].to_dict(), bins="default"
    )


def test_single_reformatted_slice_is_quantified(tmp_path):
    """A single coronal / sagittal slice (real, ../shared covid_ny_sbu A048383, mild disease) used to crash inside a
    SimpleITK filter ("fewer than four pixels along dimension 1"), then was refused; it is now segmented in its
    own plane and quantified: both lungs on the coronal slice (right on the patient's right), one on the sagittal,
    no failure, and the table says whether the mask is low-confidence."""
    from conftest import shared_path

    root = shared_path("data", "ct", "covid_ny_sbu", "A048383")
    coronal = sorted((root / "coronal").iterdir())[0]
    sagittal = sorted((root / "sagittal").iterdir())[-1]
    table = batch.quantify_series(str(coronal)).set_index("region")
    assert table.loc["right", "volume_ml"] > 20 and table.loc["left", "volume_ml"] > 20  # 1-slice "volumes" (mL)
    assert 0 < table.loc["both", "opacity_pct"] < 50 and not table["qa_low_confidence"].any()
    table = batch.quantify_series(str(sagittal)).set_index("region")
    assert table.loc["both", "volume_ml"] > 5 and "side_from_position" in table.loc["both", "qa_flags"]
    out = batch.quantify_series_table(_one_job(str(coronal)), tmp_path / "cache", workers=1, show_progress=False)
    assert out.attrs["failures"].empty and set(out.region) >= {"both", "right", "left"}
