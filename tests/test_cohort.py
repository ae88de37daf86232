"""Cohort table: clinical rows joined with the DICOM inventory; linkage problems reported, nothing dropped silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from kicc_analysis.cohort import build_cohort, content_hash, ct_series_jobs, load_cohort, load_readings, read_snapshot
from kicc_analysis.errors import CohortError


def _write_image(
    path: Path,
    patient: str,
    study_uid: str,
    series_uid: str,
    modality: str,
    index: int,
    z: float,
    thickness: float = 2.0,
) -> None:
    meta = FileMetaDataset()
    sop_class = CTImageStorage if modality == "CT" else DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if not patient.isascii():
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, as Korean PACS exports declare it
    ds.PatientID = patient
    ds.PatientName = patient
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = "20200301"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.Rows = ds.Columns = 16
    ds.PixelSpacing = [1.5, 1.5]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if modality == "CT":
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = thickness
        ds.ConvolutionKernel = "B70f"
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelData = np.full((16, 16), -800, dtype=np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


CLINICAL_HEADER = (
    "subjid,kicc_site,demog_age,demog_sex,sever_national,sever_who_adm,outco_outcome,outco_day,labs_crp_mgl\n"
)


@pytest.fixture()
def mini_repository(tmp_path) -> Path:
    """4 patients with DICOM (P1–P3 in the clinical table, P9 not), P4 clinical only, P2 listed twice."""
    root = tmp_path / "repo"
    studies = []
    for n, patient in enumerate(["KICC-S01-0001", "KICC-S01-0002", "KICC-S02-0003", "KICC-S02-0009"]):
        study = generate_uid()
        series = generate_uid()
        for i in range(12):
            _write_image(root / "dicom" / patient / "ct" / f"{i:03d}.dcm", patient, study, series, "CT", i, z=-2.0 * i)
        studies.append((patient, study, "CT", n, 1))
        if patient == "KICC-S01-0001":
            follow_study, follow_series = generate_uid(), generate_uid()
            for i in range(12):
                _write_image(
                    root / "dicom" / patient / "ct2" / f"{i:03d}",
                    patient,
                    follow_study,
                    follow_series,
                    "CT",
                    i,
                    z=-2.0 * i,
                )
            studies.append((patient, follow_study, "CT", 10, 2))
            xray_study = generate_uid()
            _write_image(root / "dicom" / patient / "cxr" / "img.dcm", patient, xray_study, generate_uid(), "DX", 0, 0)
            studies.append((patient, xray_study, "DX", 2, 2))
    (root / "dicom" / "notes.txt").write_text("not a DICOM file")
    clinical = root / "clinical"
    clinical.mkdir()
    (clinical / "clinical.csv").write_text(
        CLINICAL_HEADER
        + "KICC-S01-0001,S01,61,1,2,4,1,12,35.2\n"
        + "KICC-S01-0002,S01,47,2,3,6,2,9,120\n"
        + "KICC-S01-0002,S01,47,2,3,6,2,9,120\n"
        + "KICC-S02-0003,S02,fifty,1,1,4,1,5,2.1\n"
        + "KICC-S02-0004,S02,72,2,4,9,2,3,210\n"
    )
    lines = ["subjid,img_study_uid,img_modality,img_day,img_timepoint"]
    lines += [f"{p},{s},{m},{d},{t}" for p, s, m, d, t in studies if p != "KICC-S02-0003"]
    (clinical / "imaging_studies.csv").write_text("\n".join(lines) + "\n")
    readings = root / "readings"
    readings.mkdir()
    (readings / "reader_scores.csv").write_text(
        "subjid,reader,item,score\nKICC-S01-0001,R1,RUL,2\nKICC-S01-0001,R2,RUL,x\n"
    )
    return root


def test_one_row_per_unique_patient_with_imaging_inventory(mini_repository):
    build = build_cohort(mini_repository, workers=1)
    table = build.table.set_index("subjid")
    assert list(table.index) == ["KICC-S01-0001", "KICC-S01-0002", "KICC-S02-0003", "KICC-S02-0004"]
    p1 = table.loc["KICC-S01-0001"]
    assert p1["n_ct_studies"] == 2 and p1["n_followup_ct"] == 1 and p1["n_radiographs"] == 1
    assert p1["baseline_ct_day"] == 0 and p1["last_followup_ct_day"] == 10
    assert p1["baseline_ct_n_slices"] == 12 and p1["baseline_ct_kernel"] == "B70f"
    assert pd.isna(table.loc["KICC-S02-0004", "baseline_ct_series_uid"])
    assert str(table["demog_age"].dtype) == "Int64" and pd.isna(table.loc["KICC-S02-0003", "demog_age"])


def test_linkage_and_validation_problems_are_reported(mini_repository):
    build = build_cohort(mini_repository, workers=1)
    linkage = build.linkage
    by_problem = {p: set(g["subjid"]) for p, g in linkage.groupby("problem")}
    assert by_problem["images_without_clinical_row"] == {"KICC-S02-0009"}
    assert by_problem["clinical_row_without_images"] == {"KICC-S02-0004"}
    assert by_problem["duplicate_pseudonym"] == {"KICC-S01-0002"}
    assert by_problem["study_not_listed"] == {"KICC-S02-0003"}
    report = build.validation
    assert set(report.loc[report["variable"] == "demog_age", "problem"]) == {"not_numeric"}
    assert (report["problem"] == "duplicate_id").sum() == 2
    skipped_reasons = " ".join(build.scan.skipped["reason"].astype(str))
    assert "notes.txt" in " ".join(build.scan.skipped["relpath"].astype(str)) and skipped_reasons


def test_flow_accounts_for_every_row(mini_repository):
    flow = build_cohort(mini_repository, workers=1).flow.set_index("step")
    assert flow["n"].tolist() == [5, 4, 3, 3]
    assert flow["excluded"].tolist() == [0, 1, 1, 0]
    for previous, (_, row) in zip(flow["n"].tolist(), flow.iloc[1:].iterrows(), strict=False):
        assert previous - row["excluded"] == row["n"]


def test_cohort_version_is_a_content_hash(mini_repository):
    first = load_cohort(mini_repository, workers=1)
    again = load_cohort(mini_repository, workers=1)
    assert first.attrs["cohort_version"] == again.attrs["cohort_version"] == content_hash(first)
    snapshot = read_snapshot(first.attrs["snapshot"])
    assert snapshot.attrs["cohort_version"] == first.attrs["cohort_version"]
    clinical = mini_repository / "clinical" / "clinical.csv"
    clinical.write_text(clinical.read_text().replace(",35.2\n", ",35.3\n"))
    assert load_cohort(mini_repository, workers=1).attrs["cohort_version"] != first.attrs["cohort_version"]


def test_tampered_snapshot_is_refused(mini_repository, tmp_path):
    table = load_cohort(mini_repository, workers=1)
    table.loc[0, "demog_age"] = 99
    forged = tmp_path / f"cohort-{table.attrs['cohort_version']}.parquet"
    table.to_parquet(forged)
    with pytest.raises(CohortError, match="content hash"):
        read_snapshot(forged)


def test_ct_jobs_list_every_selected_series_with_its_files(mini_repository):
    build = build_cohort(mini_repository, workers=1)
    jobs = ct_series_jobs(build)
    assert set(jobs["subjid"]) == {"KICC-S01-0001", "KICC-S01-0002", "KICC-S02-0003"}
    p1 = jobs[jobs["subjid"] == "KICC-S01-0001"]
    assert sorted(p1["timepoint"]) == ["baseline", "follow-up"]
    assert all(len(files) == 12 for files in jobs["source"])


def test_readings_are_tidy_and_invalid_scores_counted(mini_repository):
    readings = load_readings(mini_repository)
    assert list(readings.columns) == ["subjid", "reader", "item", "score"]
    assert readings.attrs["invalid_scores"] == 1 and readings["score"].isna().sum() == 1


def test_missing_inputs_give_clear_errors(tmp_path):
    with pytest.raises(CohortError, match="repository folder not found"):
        build_cohort(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CohortError, match="no clinical table"):
        build_cohort(tmp_path / "empty")
    with pytest.raises(CohortError, match="no readings"):
        load_readings(tmp_path / "empty")
