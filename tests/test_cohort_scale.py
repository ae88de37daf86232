"""Cohort building at scale (issue 21): the synthetic index and the vectorised per-patient aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis import cohort
from kicc_analysis.repository.synthetic_index import synthetic_index, synthetic_scan, write_synthetic_clinical

ID = "subjid"


def _patient_imaging_loop(inventory: pd.DataFrame, scan) -> pd.DataFrame:
    """The per-patient loop ``_patient_imaging`` was before it was vectorised (commit b69fbcf), as the oracle."""
    rows = []
    series = scan.series.set_index("series_uid") if not scan.series.empty else pd.DataFrame()
    for subjid, group in inventory.groupby(ID, sort=True):
        ct = group[group["modality"] == "CT"].copy()
        radiographs = group[group["modality"].isin(["CR", "DX"])]
        ct["order_day"] = pd.to_numeric(ct["img_day"], errors="coerce")
        baseline = ct[ct["img_timepoint"] == 1]
        if baseline.empty and not ct.empty:
            baseline = ct.sort_values(["order_day", "study_date"], na_position="last").head(1)
        row = {ID: subjid, "n_ct_studies": len(ct), "n_radiographs": len(radiographs)}
        if not baseline.empty:
            first = baseline.iloc[0]
            uid = first["selected_series_uid"]
            row.update(
                baseline_ct_study_uid=first["study_uid"],
                baseline_ct_series_uid=uid if isinstance(uid, str) else pd.NA,
                baseline_ct_day=first["order_day"],
                baseline_ct_selection=first["selection_reason"],
            )
            if isinstance(uid, str) and uid in series.index:
                info = series.loc[uid]
                for src, dst in (
                    ("n_slices", "baseline_ct_n_slices"),
                    ("slice_thickness", "baseline_ct_slice_thickness_mm"),
                    ("kernel", "baseline_ct_kernel"),
                ):
                    if src in info.index:
                        row[dst] = info[src]
            followups = ct[ct["study_uid"] != first["study_uid"]]
            row["n_followup_ct"] = len(followups)
            days = followups["order_day"].dropna()
            row["last_followup_ct_day"] = days.max() if len(days) else np.nan
        else:
            row["n_followup_ct"] = 0
        rows.append(row)
    return pd.DataFrame(rows)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal after the Parquet round trip build_cohort applies (so the cohort_version is unchanged)."""
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(cohort._parquet_round_trip(a), cohort._parquet_round_trip(b))


@pytest.fixture(scope="module")
def small_scan():
    return synthetic_scan(synthetic_index(n_patients=30, n_series=150, n_instances=1500, seed=3))


def _inventory(scan, imaging: pd.DataFrame | None = None) -> pd.DataFrame:
    columns = ["subjid", "img_study_uid", "img_modality", "img_day", "img_timepoint"]
    return cohort._study_inventory(scan, imaging if imaging is not None else pd.DataFrame(columns=columns))


def test_synthetic_index_has_the_requested_sizes(small_scan):
    assert len(small_scan.instances) == 1500
    assert len(small_scan.series) == 150
    assert small_scan.instances["patient_id"].nunique() == 30
    # every CT study got a selected series by the scanner's own selection code
    assert small_scan.selection["series_uid"].notna().all()


def test_vectorised_patient_imaging_equals_the_loop_without_imaging_list(small_scan):
    inventory = _inventory(small_scan)
    _same(cohort._patient_imaging(inventory, small_scan), _patient_imaging_loop(inventory, small_scan))


def test_vectorised_patient_imaging_equals_the_loop_with_days_timepoints_and_gaps(small_scan):
    studies = small_scan.studies
    rng = np.random.default_rng(7)
    imaging = pd.DataFrame(
        {
            "subjid": studies["patient_id"].to_numpy(),
            "img_study_uid": studies["study_uid"].to_numpy(),
            "img_modality": pd.NA,
            "img_day": pd.array(
                np.where(rng.random(len(studies)) < 0.2, np.nan, rng.integers(0, 30, len(studies))), dtype="Float64"
            ),
            "img_timepoint": pd.array(rng.choice([1, 2, np.nan], len(studies)), dtype="Float64"),
        }
    ).sample(frac=0.8, random_state=1)  # some studies unlisted
    inventory = _inventory(small_scan, imaging)
    # patients without CT, without selected series and radiograph-only patients
    inventory.loc[inventory.index[:6], "modality"] = "DX"
    inventory.loc[inventory.index[6:9], "selected_series_uid"] = pd.NA
    _same(cohort._patient_imaging(inventory, small_scan), _patient_imaging_loop(inventory, small_scan))
    first_no_ct = inventory.sort_values(ID).copy()
    first_no_ct.loc[first_no_ct[ID] == first_no_ct[ID].iloc[0], "modality"] = "CR"
    _same(cohort._patient_imaging(first_no_ct, small_scan), _patient_imaging_loop(first_no_ct, small_scan))


def test_build_cohort_from_a_synthetic_scan(tmp_path, monkeypatch, small_scan):
    monkeypatch.setenv("KICC_CACHE", str(tmp_path / "cache"))
    write_synthetic_clinical(tmp_path / "repo", 32)  # two clinical rows without images
    build = cohort.build_cohort(tmp_path / "repo", scan=small_scan, show_progress=False)
    assert len(build.table) == 32
    assert int(build.table["baseline_ct_series_uid"].notna().sum()) == 30
    assert int((build.linkage["problem"] == "clinical_row_without_images").sum()) == 2
    assert (build.table["n_ct_studies"].iloc[:30] == 2).all()  # 5 series: 1 DX + 2 CT studies of 2 kernels


# --- the first build after a change: index -> instance / series / study tables, vectorised (issue 21 §3) ---


def _messy_index(seed: int = 5) -> pd.DataFrame:
    """A small synthetic index with what real trees have: unsorted rows, missing UIDs (SOP, series, study), a slice
    gap, a duplicated position, a duplicate SOP instance, unpositioned files, double slashes and non-ASCII
    paths, a study holding CT and DX, file-meta UIDs only."""
    index = synthetic_index(n_patients=6, n_series=30, n_instances=300, seed=seed)
    rng = np.random.default_rng(seed)
    index = index.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # the scanner's order is not assumed
    index.loc[0:5, "series_uid"] = None  # grouped by folder + frame of reference + series number
    index.loc[6:9, "study_uid"] = None
    index.loc[10:12, "sop_uid"] = None
    index.loc[10, "media_sop_uid"] = "1.2.3.4.5"
    index.loc[13:14, ["image_position_x", "image_position_y", "image_position_z"]] = np.nan
    ct = index.index[(index["modality"] == "CT") & index["series_uid"].notna()]
    same = ct[index.loc[ct, "series_uid"] == index.loc[ct[-1], "series_uid"]]
    index.loc[same[0], "image_position_z"] = index.loc[same[1], "image_position_z"]  # duplicated position
    index.loc[17, "sop_uid"] = index.loc[18, "sop_uid"]  # duplicate SOP instance
    index.loc[19, "relpath"] = "SYN00001//odd/00001.dcm"
    index.loc[21, "relpath"] = "환자/시리즈/00001.dcm"
    index.loc[22, "relpath"] = "top.dcm"
    index.loc[23, "modality"] = None  # taken from the SOP class
    index["image_type"] = rng.choice(
        ["ORIGINAL\\PRIMARY\\AXIAL", "ORIGINAL\\PRIMARY\\LOCALIZER", "derived\\secondary\\scout", "Topogram", None],
        len(index),
        p=[0.8, 0.05, 0.05, 0.05, 0.05],
    )
    dx = index.index[index["modality"] == "DX"][:2]
    ct_study = index.loc[index["modality"] == "CT", "study_uid"].dropna().iloc[0]
    index.loc[dx, "study_uid"] = ct_study
    gap = index.index[(index["series_uid"] == index["series_uid"].dropna().iloc[-1])]
    index = index.drop(gap[len(gap) // 2 : len(gap) // 2 + 2])  # missing slices mid-series
    index.loc[index.index[rng.random(len(index)) < 0.05], "kernel"] = "LUNG"
    return index.reset_index(drop=True)


@pytest.mark.parametrize("sorted_index", [False, True])
def test_vectorised_instance_and_study_tables_equal_the_previous_code(sorted_index):
    from scan_tables_before import build_instances as instances_before
    from scan_tables_before import build_studies as studies_before

    from kicc_analysis.repository import build_instances, build_series, build_studies, select_ct_series

    index = _messy_index()
    if sorted_index:
        index = index.sort_values("relpath", kind="stable").reset_index(drop=True)
    files = index.drop(columns=["error"]).assign(error=None)[index.columns]
    new, new_duplicates = build_instances(files, "/repo/dicom")
    old, old_duplicates = instances_before(files, "/repo/dicom")
    pd.testing.assert_frame_equal(new, old)
    pd.testing.assert_frame_equal(new_duplicates, old_duplicates)
    assert len(new_duplicates) == 1 and new["uid_note"].notna().sum() >= 10
    assert new["is_localizer"].any() and not new["is_localizer"].all()
    series = build_series(new, new_duplicates)
    assert series["has_gap"].any() and series["issues"].str.contains("duplicate slice positions").any()
    selection = select_ct_series(series)
    pd.testing.assert_frame_equal(build_studies(series, selection), studies_before(series, selection))
    assert build_studies(series, selection)["modalities"].eq("CT,DX").any()


def test_vectorised_path_helpers_equal_os_path():
    import os

    from kicc_analysis.repository.tables import _dirnames, _joined

    paths = pd.Series(
        ["a/b/c.dcm", "c.dcm", "", "a//b.dcm", "a///b/", "/x", "//x/y", "/", "환자/파일.dcm", "a/\nb/c", "\U0010fc80/x"]
    )
    assert list(_dirnames(paths)) == [os.path.dirname(p) for p in paths]
    for root in ("", "/r", "/r/", "relative"):
        assert list(_joined(root, paths)) == [os.path.join(root, p) for p in paths]
    surrogate = pd.Series(["a\udcff/b.dcm"])  # not valid UTF-8: the stdlib path
    assert list(_dirnames(surrogate)) == ["a\udcff"]


def test_arrow_string_conversion_equals_astype():
    from kicc_analysis.repository.scan import _STRING, _arrow_strings

    frame = pd.DataFrame(
        {"text": ["x", None, np.nan, "한글"], "number": [1, 2, 3, 4], "mixed": ["x", True, None, "y"], "na": pd.NA}
    ).astype({"na": object})
    expected = frame.astype({c: _STRING for c in frame.columns if frame[c].dtype == object})
    pd.testing.assert_frame_equal(_arrow_strings(frame), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_series_row_order_equals_the_three_key_sort(seed):
    from kicc_analysis.repository.tables import _series_order

    rng = np.random.default_rng(seed)
    n = 400
    frame = pd.DataFrame(
        {
            "series_uid": rng.choice(["1.2.10", "1.2.9", "1.2.1", "kicc-series-x", None], n).astype(object),
            "slice_position": rng.choice([np.nan, -0.0, 0.0, 1.5, -3.25, 2.0], n),
            "relpath": [
                f"p{k}/{int(i):03d}.dcm" for k, i in zip(rng.integers(0, 3, n), rng.integers(0, 50, n), strict=True)
            ],
        }
    )
    if seed == 1:
        frame = frame.sort_values("relpath").reset_index(drop=True)  # the instance table's order: no path sort
    if seed == 2:
        frame.loc[::7, "relpath"] = None
    expected = frame.sort_values(["series_uid", "slice_position", "relpath"], kind="stable", na_position="last")
    np.testing.assert_array_equal(_series_order(frame), expected.index.to_numpy())
