"""Repository scan: real DICOM from ../shared, bad input, duplicate/missing slices, incremental index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import checked_scan as scan_repository
from conftest import shared_path

from kicc_analysis.errors import RepositoryError
from kicc_analysis.repository import series_files
from kicc_analysis.repository.scan import INDEX_DIRNAME, POOL_THRESHOLD
from kicc_analysis.repository.sealed import cache_secret, unseal_table
from kicc_analysis.repository.synthetic import write_scanner_like_tree

# ----------------------------------------------------------------------------------------------------------------------
# Real DICOM files (../shared/data/ct); the shared folder is read-only, so the index goes to tmp_path.


@pytest.fixture(scope="module")
def real_scan(tmp_path_factory):
    root = shared_path("data", "ct")
    return scan_repository(root, index_dir=tmp_path_factory.mktemp("idx"), workers=1)


def _series_in(scan, folder: str) -> pd.Series:
    rows = scan.series[scan.series["folder"] == folder]
    assert len(rows) == 1, (folder, scan.series["folder"].tolist())
    return rows.iloc[0]


# covid_ny_sbu/: 5 patients x 2 studies x (axial, coronal, sagittal) single slices (its SOURCE.txt)
N_COVID_SLICES = 5 * 2 * 3


def test_real_counts(real_scan):
    assert len(real_scan.instances) == 2 + 79 + 2 + 20 + N_COVID_SLICES
    assert len(real_scan.series) == 4 + N_COVID_SLICES
    assert len(real_scan.studies) == 4 + 5 * 2
    # every non-DICOM file (nrrd, png, txt, xml, nii.gz) is listed with its reason, nothing else
    assert set(real_scan.skipped["kind"]) == {"not DICOM"}
    assert all(not p.endswith(".dcm") for p in real_scan.skipped["relpath"])
    assert real_scan.n_files == len(real_scan.instances) + len(real_scan.skipped)
    assert real_scan.n_read == real_scan.n_files and real_scan.n_reused == 0


def test_real_jpeg2000_series_is_flagged_compressed(real_scan):
    s = _series_in(real_scan, "totalseg_example_ct/example_ct_dicom")
    assert s["n_instances"] == 20 and s["n_slices"] == 20
    assert s["compressed"] and s["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert s["slice_spacing"] == pytest.approx(2.0)
    assert s["slice_thickness"] == pytest.approx(3.0)
    assert s["pixel_spacing_row"] == pytest.approx(0.9765625)
    assert s["position_min"] == pytest.approx(-804.5) and s["position_max"] == pytest.approx(-766.5)
    assert s["complete"] and not s["has_gap"]
    # anonymiser emptied the UIDs: grouped into one synthetic series and the issue is reported
    assert s["series_uid"].startswith("kicc-series-")
    assert "Series Instance UID absent" in s["issues"]
    assert s["kernel"] == "Br38f\\3" and s["body_part"] == "PARTIALBODY"
    others = real_scan.series[real_scan.series["series_uid"] != s["series_uid"]]
    assert not others["compressed"].any()


def test_real_79_slice_series(real_scan):
    s = _series_in(real_scan, "cip_copdgene_ct64/ct-64Dicom")
    assert s["n_slices"] == 79 and s["n_instances"] == 79
    assert s["rows"] == 64 and s["columns"] == 64
    assert s["pixel_spacing_row"] == pytest.approx(4.171872)
    assert s["slice_thickness"] == pytest.approx(3.98734)
    # z -360.256 .. -49.2437 over 78 intervals (SOURCE.txt)
    assert s["position_min"] == pytest.approx(-360.256, abs=1e-3)
    assert s["position_max"] == pytest.approx(-49.2437, abs=1e-3)
    assert s["slice_spacing"] == pytest.approx((360.256 - 49.2437) / 78, abs=2e-3)
    assert s["complete"] and s["n_missing_slices"] == 0 and s["plane"] == "axial"
    assert s["transfer_syntax"] == "1.2.840.10008.1.2" and not s["compressed"]


def test_real_two_slice_series_and_sparse_header(real_scan):
    copd = _series_in(real_scan, "cip_copdgene_crop/simple_dicom")
    assert copd["n_slices"] == 2 and copd["slice_spacing"] == pytest.approx(0.625)
    assert copd["pixel_spacing_row"] == pytest.approx(0.703125)
    assert copd["kernel"] == "STANDARD" and copd["manufacturer"] == "GE MEDICAL SYSTEMS"
    lidc = _series_in(real_scan, "lungmask_lidc_slice")
    assert lidc["n_slices"] == 2 and lidc["slice_spacing"] == pytest.approx(1.0)
    assert lidc["modality"] == "CT"  # no Modality attribute: taken from the SOP Class
    assert "Modality absent" in lidc["issues"]
    inst = real_scan.instances
    assert set(inst.loc[inst["relpath"].str.startswith("lungmask"), "rescale_intercept"]) == {0.0}
    assert set(inst.loc[inst["relpath"].str.startswith("cip_copdgene_crop"), "rescale_intercept"]) == {-1024.0}


def test_real_selection(real_scan):
    sel = real_scan.selection.set_index("study_uid")
    assert len(sel) == 4 + 5 * 2
    ct64 = _series_in(real_scan, "cip_copdgene_ct64/ct-64Dicom")
    assert sel.loc[ct64["study_uid"], "series_uid"] == ct64["series_uid"]
    assert "axial, complete" in sel.loc[ct64["study_uid"], "reason"]
    for folder in ("cip_copdgene_crop/simple_dicom", "lungmask_lidc_slice"):
        s = _series_in(real_scan, folder)
        assert sel.loc[s["study_uid"], "series_uid"] is None
        assert "too few slices (2 < 10)" in sel.loc[s["study_uid"], "reason"]
    studies = real_scan.studies.set_index("study_uid")
    assert studies.loc[ct64["study_uid"], "selected_series_uid"] == ct64["series_uid"]
    # the COVID-19-NY-SBU single slices: no study has an eligible series, each reason names why
    covid = real_scan.series[real_scan.series["folder"].str.startswith("covid_ny_sbu/")]
    assert set(covid["plane"]) == {"axial", "coronal", "sagittal"} and (covid["n_slices"] == 1).all()
    for study_uid in covid["study_uid"].unique():
        reason = sel.loc[study_uid, "reason"]
        assert sel.loc[study_uid, "series_uid"] is None
        assert "too few slices (1 < 10)" in reason and "not axial (plane coronal)" in reason


def test_real_selection_with_lower_min_slices(tmp_path):
    scan = scan_repository(shared_path("data", "ct"), index_dir=tmp_path, workers=1, min_slices=2)
    covid_studies = set(scan.series.loc[scan.series["folder"].str.startswith("covid_ny_sbu/"), "study_uid"])
    sel = scan.selection.set_index("study_uid")
    others = sel.drop(index=list(covid_studies))
    assert len(others) == 4 and others["series_uid"].notna().all()
    # one axial slice per study stays below min_slices=2
    assert sel.loc[list(covid_studies), "series_uid"].isna().all()


def test_real_series_files_sorted_along_normal(real_scan):
    s = _series_in(real_scan, "cip_copdgene_ct64/ct-64Dicom")
    files = series_files(real_scan, s["series_uid"])
    assert len(files) == 79 and all(isinstance(f, Path) and f.exists() for f in files)
    inst = real_scan.instances.set_index("path")
    z = [inst.loc[str(f), "image_position_z"] for f in files]
    assert z == sorted(z) and z[0] == pytest.approx(-360.256)


def test_summary_and_repr_print_no_dates(real_scan):
    text = real_scan.summary() + repr(real_scan)
    for date in real_scan.instances["study_date"].dropna().unique():
        assert date not in text
    assert str(103 + N_COVID_SLICES) in text


# ----------------------------------------------------------------------------------------------------------------------
# Synthetic trees (run everywhere)


def _tree(tmp_path: Path, n: int = 60, seed: int = 0) -> Path:
    root = tmp_path / "repo"
    write_scanner_like_tree(root, n, seed=seed, slices_per_series=(15, 20), radiograph_fraction=0.05)
    return root


def test_missing_root_empty_folder_and_file_root(tmp_path):
    with pytest.raises(RepositoryError, match="does not exist"):
        scan_repository(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(RepositoryError, match="contains no files"):
        scan_repository(tmp_path / "empty")
    (tmp_path / "f.dcm").write_bytes(b"x")
    with pytest.raises(RepositoryError, match="is a file"):
        scan_repository(tmp_path / "f.dcm")


def test_folder_of_only_non_dicom_files_is_reported_not_fatal(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    scan = scan_repository(tmp_path)
    assert scan.instances.empty and scan.series.empty and scan.studies.empty and scan.selection.empty
    assert scan.skipped["kind"].tolist() == ["not DICOM"]


def test_bad_files_are_listed_and_the_rest_is_indexed(tmp_path):
    root = _tree(tmp_path)
    clean = scan_repository(root, use_index=False, workers=1)
    some = Path(clean.instances["path"].iloc[0])
    (root / "truncated.dcm").write_bytes(some.read_bytes()[:600])
    (root / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + os.urandom(2000))
    (root / "README.txt").write_text("scans from site 1\n")
    (root / "empty").write_bytes(b"")
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
    scan = scan_repository(root, workers=1)
    assert len(scan.instances) == len(clean.instances)
    reasons = scan.skipped.set_index("relpath")["reason"]
    assert reasons["truncated.dcm"].startswith("corrupt DICOM: truncated")
    assert reasons["garbage.dcm"].startswith("corrupt DICOM")
    assert reasons["README.txt"].startswith("not DICOM")
    assert reasons["empty"] == "not DICOM: empty file"
    assert reasons["deep/er/.DS_Store"].startswith("not DICOM")
    assert "skipped files: 5" in scan.summary()


def test_missing_slice_is_detected_and_series_not_selected(tmp_path):
    root = _tree(tmp_path)
    clean = scan_repository(root, use_index=False, workers=1)
    thin = clean.series[(clean.series["modality"] == "CT") & (clean.series["slice_thickness"] == 1.0)].iloc[0]
    files = series_files(clean, thin["series_uid"])
    files[len(files) // 2].unlink()
    files[len(files) // 2 + 1].unlink()
    scan = scan_repository(root, use_index=False, workers=1, min_slices=5)
    s = scan.series.set_index("series_uid").loc[thin["series_uid"]]
    assert s["has_gap"] and not s["complete"]
    assert s["n_missing_slices"] == 2
    assert s["n_slices"] == thin["n_slices"] - 2
    assert "2 missing between" in s["issues"]
    sel = scan.selection.set_index("study_uid").loc[thin["study_uid"]]
    assert sel["series_uid"] != thin["series_uid"]
    assert "incomplete: gap" in sel["reason"]
    # the thick series of the same study is chosen instead
    assert sel["series_uid"] is not None and sel["slice_thickness"] == 2.5


def test_duplicate_sop_instance_is_reported(tmp_path):
    root = _tree(tmp_path)
    clean = scan_repository(root, use_index=False, workers=1)
    src = Path(clean.instances["path"].iloc[3])
    shutil.copy(src, root / "zz_copy_of_a_slice.dcm")
    scan = scan_repository(root, use_index=False, workers=1)
    assert len(scan.instances) == len(clean.instances)
    dup = scan.skipped[scan.skipped["kind"] == "duplicate SOP instance"]
    assert dup["relpath"].tolist() == ["zz_copy_of_a_slice.dcm"]
    assert str(src.relative_to(root)) in dup["reason"].iloc[0]
    uid = clean.instances["series_uid"].iloc[3]
    assert "duplicate SOP instance file(s) skipped" in scan.series.set_index("series_uid").loc[uid, "issues"]


def test_duplicate_slice_position_makes_series_incomplete(tmp_path):
    import pydicom

    root = _tree(tmp_path)
    clean = scan_repository(root, use_index=False, workers=1)
    src = Path(clean.instances["path"].iloc[5])
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77.4242"
    ds.save_as(src.parent / "other_recon.dcm")
    scan = scan_repository(root, use_index=False, workers=1)
    s = scan.series.set_index("series_uid").loc[ds.SeriesInstanceUID]
    assert s["n_duplicate_positions"] == 1 and not s["complete"]
    assert "1 duplicate slice positions" in s["issues"]


def test_radiographs_are_indexed(tmp_path):
    root = _tree(tmp_path, n=120, seed=2)
    scan = scan_repository(root, workers=1)
    xr = scan.series[scan.series["modality"].isin(["CR", "DX"])]
    assert len(xr) >= 1
    assert (xr["n_slices"] == 1).all()
    assert (xr["pixel_spacing_row"] == 0.15).all()
    assert not xr["study_uid"].isin(scan.selection["study_uid"]).any()


def test_incremental_index(tmp_path):
    root = _tree(tmp_path)
    first = scan_repository(root, workers=1)
    n = first.n_files
    assert first.n_read == n and first.index_path.exists()
    assert root not in first.index_path.parents and not (root / INDEX_DIRNAME).exists()  # never inside the input
    again = scan_repository(root, workers=1)
    assert again.n_read == 0 and again.n_reused == n
    pd.testing.assert_frame_equal(again.instances, first.instances)
    pd.testing.assert_frame_equal(again.series, first.series)

    # touching one file re-reads exactly that one
    victim = Path(first.instances["path"].iloc[10])
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = scan_repository(root, workers=1)
    assert touched.n_read == 1 and touched.n_reused == n - 1

    # adding one file reads only that one
    (root / "extra").mkdir()
    shutil.copy(Path(first.instances["path"].iloc[0]), root / "extra" / "copy.dcm")
    added = scan_repository(root, workers=1)
    assert added.n_read == 1 and added.n_files == n + 1
    assert added.skipped["kind"].tolist() == ["duplicate SOP instance"]

    # a deleted file disappears from every table
    gone = Path(first.instances["path"].iloc[20])
    gone.unlink()
    after = scan_repository(root, workers=1)
    assert after.n_read == 0 and after.n_removed == 1
    assert str(gone) not in set(after.instances["path"])
    fresh = scan_repository(root, use_index=False, workers=1)
    pd.testing.assert_frame_equal(after.instances, fresh.instances)
    pd.testing.assert_frame_equal(after.series, fresh.series)
    pd.testing.assert_frame_equal(after.skipped, fresh.skipped)


def test_custom_index_dir_and_unwritable_index(tmp_path):
    root = _tree(tmp_path)
    idx = tmp_path / "cache"
    scan = scan_repository(root, index_dir=idx, workers=1)
    assert scan.index_path == idx / "files.parquet" and scan.index_path.exists()
    assert not (root / INDEX_DIRNAME).exists()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    scan2 = scan_repository(root, index_dir=blocker / "sub", workers=1)
    assert scan2.index_path is None and any("index not saved" in w for w in scan2.warnings)
    assert len(scan2.instances) == len(scan.instances)


def test_index_from_another_version_is_rebuilt(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = _tree(tmp_path)
    path = scan_repository(root, workers=1).index_path
    table = pq.read_table(path).replace_schema_metadata({"kicc_index_version": "0"})
    pq.write_table(table, path)
    scan = scan_repository(root, workers=1)
    assert scan.n_read == scan.n_files and any("another format version" in w for w in scan.warnings)
    path.write_bytes(b"broken")
    scan = scan_repository(root, workers=1)
    assert scan.n_read == scan.n_files and any("unreadable" in w for w in scan.warnings)
    assert isinstance(pa.__version__, str)


def test_process_pool_gives_the_same_tables(tmp_path):
    root = tmp_path / "repo"
    write_scanner_like_tree(root, POOL_THRESHOLD + 50, seed=4, slices_per_series=(30, 40))
    serial = scan_repository(root, use_index=False, workers=1)
    pooled = scan_repository(root, use_index=False, workers=2)
    assert pooled.n_read == serial.n_read > POOL_THRESHOLD
    pd.testing.assert_frame_equal(pooled.instances, serial.instances)
    pd.testing.assert_frame_equal(pooled.series, serial.series)
    pd.testing.assert_frame_equal(pooled.selection, serial.selection)


def test_series_files_unknown_uid(tmp_path):
    root = _tree(tmp_path)
    scan = scan_repository(root, workers=1)
    with pytest.raises(RepositoryError, match="not found"):
        series_files(scan, "1.2.3.does.not.exist")


def test_series_file_lists_equal_series_files_in_one_pass(real_scan, tmp_path):
    from kicc_analysis.repository.scan import series_file_lists

    uids = list(real_scan.series["series_uid"])
    lists = series_file_lists(real_scan, uids)
    assert len(uids) > 20 and set(lists) == set(uids)
    assert all(lists[uid] == series_files(real_scan, uid) for uid in uids)
    assert series_file_lists(real_scan, []) == {}
    with pytest.raises(RepositoryError, match="not found"):
        series_file_lists(real_scan, [uids[0], "1.2.3.does.not.exist"])


def test_demo_repository_matches_its_manifest_and_truth(tmp_path):
    """Cross-check against the independent demo writer: counts, study list and the 'lung' series as choice."""
    demo = pytest.importorskip("kicc_analysis.demo")
    out = tmp_path / "demo"
    manifest = demo.generate_demo(out, n_patients=3, seed=5, workers=1, show_progress=False)
    scan = scan_repository(out / "dicom", index_dir=tmp_path / "idx", workers=1)
    sizes = manifest.sizes
    assert len(scan.instances) == sizes["n_dicom_files"]
    assert sorted(scan.skipped["relpath"]) == sorted(p.removeprefix("dicom/") for p in manifest.non_dicom_files)
    assert (scan.series["modality"] == "CT").sum() == sizes["n_ct_series"]
    assert len(scan.selection) == sizes["n_ct_studies"]
    listed = pd.read_csv(out / "clinical" / "imaging_studies.csv", dtype=str)
    assert set(listed["img_study_uid"]) == set(scan.studies["study_uid"])
    truth = pd.read_csv(out / "ground_truth" / "truth.csv", dtype={"series_uid": str, "study_uid": str})
    lung = truth[truth["series_role"] == "lung"].set_index("study_uid")["series_uid"]
    chosen = scan.selection.set_index("study_uid")["series_uid"]
    assert chosen.reindex(lung.index).tolist() == lung.tolist()


# ----------------------------------------------------------------------------------------------------------------------
# Issue 11: re-scan correctness, nothing silently dropped, Korean file names, cache outside the input.

from kicc_analysis.repository import scan as scan_mod  # noqa: E402


def test_chmod_alone_makes_a_file_be_read_again(tmp_path, monkeypatch):
    """ctime is part of a file's identity: a chmod (ctime changes, mtime does not) re-reads the file, so a file
    recorded as unreadable is retried once its permissions are fixed."""
    root = _tree(tmp_path)
    first = scan_repository(root, workers=1)
    victim = Path(first.instances["path"].iloc[3])
    mtime = victim.stat().st_mtime_ns
    if os.geteuid() != 0:  # a real unreadable file (root reads every file)
        victim.chmod(0)
        blocked = scan_repository(root, workers=1)
        assert blocked.n_read == 1 and "unreadable" in set(blocked.skipped["kind"])
    else:
        victim.chmod(0o600)
    victim.chmod(0o644)
    assert victim.stat().st_mtime_ns == mtime
    fixed = scan_repository(root, workers=1)
    assert fixed.n_read == 1 and len(fixed.instances) == len(first.instances)
    assert "unreadable" not in set(fixed.skipped["kind"])


def test_verify_finds_an_edit_that_the_fast_path_cannot_see(tmp_path):
    """On a file system that does not update ctime (simulated by writing the new ctime into the index), the fast
    path reuses a rewritten header; ``verify=True`` re-reads every header and reports the change."""
    import pyarrow.parquet as pq

    root = _tree(tmp_path)
    first = scan_repository(root, workers=1)
    victim = Path(first.instances["path"].iloc[5])
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    at = data.find(first.instances["patient_id"].iloc[5].encode(), data.find(b"\x10\x00\x20\x00"))  # PatientID
    data[at : at + 4] = b"XXXX"
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    rel = first.instances["relpath"].iloc[5]
    path = first.index_path
    table = pq.read_table(path)  # the clear part: the relative paths are sealed (find the row through them)
    secret = cache_secret(path.parent)
    row = unseal_table(table, path.with_suffix(".sealed").read_bytes(), secret).column("relpath").to_pylist().index(rel)
    assert "relpath" not in table.column_names
    ctimes = table.column("ctime_ns").to_pylist()
    ctimes[row] = victim.stat().st_ctime_ns
    import pyarrow as pa

    at = table.schema.get_field_index("ctime_ns")
    pq.write_table(table.set_column(at, table.schema.field(at), pa.array(ctimes, pa.int64())), path)
    stale = scan_repository(root, workers=1)
    assert stale.n_read == 0  # the documented assumption of the fast path
    checked = scan_repository(root, workers=1, verify=True)
    assert checked.n_read == checked.n_files and checked.n_verify_changed == 1
    assert any("1 file(s) had changed" in w for w in checked.warnings)
    assert checked.instances.set_index("relpath").loc[rel, "patient_id"].startswith("XXXX")


def _tree_with_links(tmp_path: Path) -> Path:
    root = _tree(tmp_path, n=30)
    outside = tmp_path / "outside"
    write_scanner_like_tree(outside, 12, seed=9, slices_per_series=(12, 13), radiograph_fraction=0.0)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.dcm").symlink_to(tmp_path / "nothing")
    os.mkfifo(root / "pipe")
    return root


@pytest.mark.parametrize("walker", ["find", "python"])
def test_symlinked_folders_are_listed_or_followed_loop_safe(tmp_path, monkeypatch, walker):
    monkeypatch.setenv("KICC_SCAN_WALK", walker)
    root = _tree_with_links(tmp_path)
    plain = scan_repository(root, workers=1)
    why = plain.skipped.set_index("relpath")["kind"]
    assert why["linked"] == why["loop"] == "symbolic link to a folder"
    assert why["dangling.dcm"] == "broken symbolic link" and why["pipe"] == "not a regular file"
    followed = scan_repository(root, workers=1, follow_symlinks=True)
    n_outside = sum(1 for p in (tmp_path / "outside").rglob("*") if p.is_file())
    under_link = pd.concat([followed.instances["relpath"], followed.skipped["relpath"]]).str.startswith("linked/")
    assert under_link.sum() == n_outside >= 12
    assert followed.n_files == plain.n_files - 1 + n_outside
    assert followed.skipped.set_index("relpath").loc["loop", "kind"] == "folder already scanned"


def test_find_failure_and_unreadable_folders_lose_nothing(tmp_path, monkeypatch):
    root = _tree_with_links(tmp_path)
    (root / "locked" / "deep").mkdir(parents=True)
    (root / "locked" / "deep" / "IM1").write_bytes(b"x" * 300)
    by_find = scan_repository(root, workers=1, use_index=False)
    monkeypatch.setattr(scan_mod, "_find_program", lambda: "/bin/false")  # find fails: the Python walk lists
    by_walk = scan_repository(root, workers=1, use_index=False)
    pd.testing.assert_frame_equal(by_find.skipped, by_walk.skipped)
    pd.testing.assert_frame_equal(by_find.instances, by_walk.instances)
    # an unreadable folder is one skipped entry with the reason (root reads every folder: simulated there)
    locked = root / "locked"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:
        real = os.scandir

        def scandir(path):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied")
            return real(path)

        monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    try:
        scan = scan_mod.scan_repository(root, workers=1, use_index=False)
    finally:
        locked.chmod(0o755)
    row = scan.skipped.set_index("relpath").loc["locked"]
    assert row["kind"] == "unreadable folder" and "Permission denied" in row["reason"]


def _euc_kr_tree(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "repo"
    write_scanner_like_tree(root, 20, seed=5, slices_per_series=(10, 11), radiograph_fraction=0.0)
    src = next(p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "tree.json")
    folder = os.path.join(os.fsencode(root), "흉부CT".encode("euc-kr"))
    os.mkdir(folder)
    name = "환자_001.dcm".encode("euc-kr")
    shutil.copyfile(src, os.path.join(folder, name))
    src.unlink()  # the same SOP instance only under its Korean name
    return root, os.path.join(folder, name)


def test_euc_kr_file_names_do_not_stop_a_scan(tmp_path, monkeypatch, capsys):
    from kicc_analysis.cli import main

    for walker in ("find", "python"):
        monkeypatch.setenv("KICC_SCAN_WALK", walker)
        root, raw_path = _euc_kr_tree(tmp_path / walker)
        scan = scan_repository(root, workers=1)
        again = scan_repository(root, workers=1)
        assert again.n_read == 0
        pd.testing.assert_frame_equal(scan.instances, again.instances)
        korean = scan.instances[scan.instances["relpath"].map(lambda r: not r.isascii())]
        assert len(korean) == 1
        uid = korean["series_uid"].iloc[0]
        assert os.fsencode(str(korean["path"].iloc[0])) != raw_path  # text form: UTF-8 safe ...
        assert os.fsencode(scan_mod.fs_path(korean["path"].iloc[0])) == raw_path  # ... maps back to the bytes
        assert any(os.fsencode(p) == raw_path for p in series_files(scan, uid))
        out = tmp_path / walker / "tables"
        assert main(["scan", str(root), "--out", str(out)]) == 0
        assert len(pd.read_csv(out / "instances.csv")) == len(scan.instances)
    assert "Traceback" not in capsys.readouterr().err


def test_derived_files_never_go_into_the_repository(tmp_path, monkeypatch):
    from kicc_analysis._cache import READ_ONLY_MARKER, default_cache_dir, is_read_only
    from kicc_analysis.cli import main

    root = _tree(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["scan", str(root)]) == 0
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    cache = default_cache_dir(root)
    assert (cache / "index" / "files.parquet").exists() and root not in cache.parents
    monkeypatch.delenv("KICC_CACHE")
    assert default_cache_dir(root).parent == Path.home() / ".cache" / "kicc-analysis"
    # asked to write inside a read-only tree: refused even as root (mode bits, not os.access)
    root.chmod(0o555)
    try:
        assert is_read_only(root)
        scan = scan_repository(root, workers=1, index_dir=root / ".kicc_index")
        assert scan.index_path is None and any("read-only" in w for w in scan.warnings)
        assert not (root / ".kicc_index").exists()
    finally:
        root.chmod(0o755)
    assert not is_read_only(root)
    (root / READ_ONLY_MARKER).write_text("")
    assert is_read_only(root / "sub") and is_read_only(root)


def test_kicc_cohort_with_an_euc_kr_file_name(demo_repository, tmp_path, capsys):
    """Issue 11 item 4: a DICOM file named in EUC-KR bytes inside a repository: `kicc cohort` runs to the end."""
    from kicc_analysis.cli import main

    repo = tmp_path / "repo"
    shutil.copytree(demo_repository, repo, ignore=shutil.ignore_patterns(".kicc_cache"))
    src = next(p for p in sorted((repo / "dicom").rglob("*")) if p.is_file())
    raw = os.path.join(os.fsencode(src.parent), "영상_사본.dcm".encode("euc-kr"))
    shutil.copyfile(src, raw)
    assert main(["cohort", str(repo), "--workers", "1", "--out", str(tmp_path / "cohort.parquet")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and (tmp_path / "cohort.parquet").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Privacy of derived files: the cache and ``kicc scan --out`` hold no identifier beyond the pseudonym.

#: Identifying values planted below, as they could leak (whole values and their parts).
PLANTED = ("20419573", "홍길동", "길동", "Hong Gildong", "Gildong", "900101-1234568", "010-2345-6789", "Kim_Minsu")


def _identified_tree(tmp_path: Path) -> Path:
    from kicc_analysis.repository.synthetic import write_identified_copy

    root = _tree(tmp_path, n=30)
    sources = sorted(p for p in root.rglob("*") if p.is_file())[:3]
    folder = root / "홍길동_20419573" / "CT"  # a Korean PACS export: the patient's name and hospital ID
    folder.mkdir(parents=True)
    for i, src in enumerate(sources):
        write_identified_copy(
            src,
            folder / (f"IM{i}.dcm" if i else "Kim_Minsu_010-2345-6789.dcm"),
            patient_id="20419573",  # a hospital ID, not a pseudonym
            patient_name="홍^길동",
            study_description="Hong Gildong chest",
            series_description="CT 홍길동 900101-1234568",
        )
        src.unlink()  # the copy keeps the SOP Instance UID
    (folder / "홍길동 메모.txt").write_text("not DICOM")  # a skipped file with a name in its name
    return root


def _assert_nothing_planted(files: list[Path]) -> None:
    from kicc_analysis.privacy import assert_no_identifiers

    assert files
    for f in files:
        assert_no_identifiers(f.read_bytes(), known_values=PLANTED, where=str(f), patterns=False)
        assert_no_identifiers(os.fsencode(f.name), known_values=PLANTED, where=str(f), patterns=False)


def test_cache_and_out_hold_no_identifier_and_linkage_still_works(tmp_path, monkeypatch, capsys):
    from kicc_analysis.cli import main

    root = _identified_tree(tmp_path)
    monkeypatch.setenv("KICC_CACHE", str(tmp_path / "cache"))
    first = scan_repository(root, workers=1)  # the default cache, outside the repository
    # the tables in memory are those of a fresh scan: real paths to read, real IDs to link
    assert (first.instances["patient_id"] == "20419573").sum() == 3
    assert first.instances["relpath"].str.startswith("홍길동_20419573/CT/").sum() == 3
    again = scan_repository(root, workers=1)  # from the sealed table cache
    assert again.n_read == 0
    pd.testing.assert_frame_equal(first.instances, again.instances)
    pd.testing.assert_frame_equal(first.skipped, again.skipped)
    (root / "P0001" / "touch").write_bytes(b"x")  # a changed tree: the sealed index is merged
    merged = scan_repository(root, workers=1)
    assert merged.n_read == 1
    pd.testing.assert_frame_equal(first.instances, merged.instances)
    secret = first.index_path.parent / ".kicc-secret"
    assert secret.stat().st_mode & 0o777 == 0o600

    out = tmp_path / "out"
    assert main(["scan", str(root), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr()
    cache_files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    _assert_nothing_planted(cache_files)
    _assert_nothing_planted(sorted(out.glob("*.csv")))
    from kicc_analysis.privacy import assert_no_identifiers

    assert_no_identifiers(printed.out + printed.err, known_values=PLANTED, where="kicc scan output")
    instances = pd.read_csv(out / "instances.csv", dtype=str)
    masked = instances[instances["patient_id"] == "2******3"]
    assert len(masked) == 3  # reported masked, still one patient
    assert masked["relpath"].str.split("/").str[0].nunique() == 1  # one folder (keyed tag), name not written
    assert masked["relpath"].str.contains("/CT/").all()  # components without identifiers are kept
    assert "CT ***#" in masked["series_description"].iat[0]


def test_a_cache_sealed_under_another_secret_is_rebuilt_not_trusted(tmp_path):
    root = _tree(tmp_path, n=30)
    first = scan_repository(root, index_dir=tmp_path / "idx", workers=1)
    (tmp_path / "idx" / ".kicc-secret").write_bytes(bytes(32))
    again = scan_repository(root, index_dir=tmp_path / "idx", workers=1)
    assert again.n_read == again.n_files and any("another secret" in w for w in again.warnings)
    pd.testing.assert_frame_equal(first.instances, again.instances)
    third = scan_repository(root, index_dir=tmp_path / "idx", workers=1)
    assert third.n_read == 0


def test_sealed_part_is_bound_to_its_clear_part_and_to_the_secret(tmp_path):
    """A sealed file from another write, a damaged one, or another secret: never paired, the cache is rebuilt."""
    import pyarrow as pa

    from kicc_analysis.repository.sealed import seal_table

    secret = cache_secret(tmp_path, create=True)
    assert len(secret) == 32 and (tmp_path / ".kicc-secret").stat().st_mode & 0o777 == 0o600
    assert cache_secret(tmp_path, create=True) == secret  # created once
    table = pa.table({"relpath": ["a/홍길동/1.dcm", "b/2.dcm"], "modality": ["CT", "CT"]})
    clear, sealed = seal_table(table.replace_schema_metadata({"kicc_tree_token": "t1"}), secret)
    assert unseal_table(clear, sealed, secret).column("relpath").to_pylist() == table.column("relpath").to_pylist()
    other_clear, _ = seal_table(table.replace_schema_metadata({"kicc_tree_token": "t2"}), secret)
    assert unseal_table(other_clear, sealed, secret) is None  # another write's clear part
    assert unseal_table(clear, sealed, bytes(32)) is None  # another secret
    damaged = bytearray(sealed)
    damaged[-1] ^= 1
    assert unseal_table(clear, bytes(damaged), secret) is None
    # two sealings of the same table differ (fresh nonce): equal paths are not recognisable across caches
    assert seal_table(table, secret)[1] != seal_table(table, secret)[1]


def test_a_tree_without_skipped_entries_is_rescanned_from_the_sealed_cache(tmp_path):
    """The empty ``skipped`` table (a column of nulls in Arrow) is sealed and rebuilt too: nothing is read again."""
    root = _tree(tmp_path, n=30)
    first = scan_repository(root, index_dir=tmp_path / "idx", workers=1)
    again = scan_repository(root, index_dir=tmp_path / "idx", workers=1)
    assert first.skipped.empty and again.n_read == 0
    for name in ("instances", "series", "studies", "skipped", "selection"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
