"""Radiographs as 16-bit PNG / NIfTI + targets CSV; planted identifiers never reach the export; the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from kicc_analysis.errors import PrivacyError
from kicc_analysis.export import export_dataset
from kicc_analysis.export.manifest import write_csv


@pytest.fixture(scope="module")
def cxr_export(demo_repository, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "cxr"
    return export_dataset(demo_repository, out, export_format="images-csv", task="cxr-severity", show_progress=False)


def test_png_pixels_are_the_loaders_display_values(cxr_export):
    from kicc_analysis.radiography import load_radiograph

    targets = pd.read_csv(cxr_export.out / "targets.csv")
    assert len(targets) == len(cxr_export.cases) > 0
    for row in cxr_export.cases.itertuples():
        image = sitk.ReadImage(str(cxr_export.out / row.image))
        assert image.GetPixelID() == sitk.sitkUInt16
        source = load_radiograph(row.source[0])
        expected = np.rint(np.clip(source.pixels, 0, 1) * 65535).astype(np.uint16)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected)


def test_targets_match_the_readings_and_the_cohort(cxr_export, demo_repository):
    from kicc_analysis.readings.scores import read_reader_scores, reading_totals

    targets = pd.read_csv(cxr_export.out / "targets.csv").set_index("case_id")
    totals = reading_totals(read_reader_scores(demo_repository / "readings" / "radiograph_scores.csv"), "brixia")
    expected = totals.groupby("study")["score"].mean()
    for row in cxr_export.cases.itertuples():
        assert targets.loc[row.case_id, "brixia"] == pytest.approx(expected[row.study_uid])
    assert targets.groupby("subjid")["split"].nunique().max() == 1
    assert set(targets.columns) >= {"demog_age", "inter_suppleo2", "death", "split", "image"}


def test_nifti_radiographs_are_byte_identical_for_the_same_seed(demo_repository, tmp_path):
    runs = [
        export_dataset(
            demo_repository,
            tmp_path / f"run{i}",
            export_format="images-csv",
            task="outcome",
            image_format="nifti",
            show_progress=False,
        )
        for i in range(2)
    ]
    assert all(p.endswith(".nii.gz") for p in runs[0].cases["image"])
    assert (runs[0].out / "MANIFEST.csv").read_bytes() == (runs[1].out / "MANIFEST.csv").read_bytes()
    datasheet = (runs[0].out / "DATASHEET.md").read_text(encoding="utf-8")
    assert f"cohort_version: `{runs[0].cohort_version}`" in datasheet and "split seed: 19" in datasheet


def test_planted_identifiers_never_reach_the_export(demo_repository, tmp_path):
    repository = tmp_path / "repository"
    shutil.copytree(demo_repository, repository)
    name, phone, rrn = "홍길동", "010-9876-5432", "850315-1234567"
    clinical = repository / "clinical" / "clinical.csv"
    table = pd.read_csv(clinical, dtype=str)
    table.insert(1, "환자성명", name)
    table.insert(2, "연락처", phone)
    table.to_csv(clinical, index=False)
    for path in (repository / "dicom").rglob("*"):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 -- non-DICOM files of the demo stay as they are
                continue
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName = "HONG^GILDONG"
            ds.InstitutionName = name
            ds.save_as(path)
    out = tmp_path / "export"
    export_dataset(repository, out, export_format="images-csv", task="outcome", show_progress=False)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for value in (name, phone, rrn, "HONG", "GILDONG"):
            for encoding in ("utf-8", "cp949"):
                assert value.encode(encoding) not in data, f"{value!r} in {path.name}"


def test_text_writer_refuses_identifiers(tmp_path):
    with pytest.raises(PrivacyError):
        write_csv(pd.DataFrame({"note": ["call 010-2222-3333"]}), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_cli_export(demo_repository, tmp_path, capsys):
    from kicc_analysis.cli import main

    status = main(
        [
            "export",
            "--repository",
            str(demo_repository),
            "--out",
            str(tmp_path / "cli"),
            "--format",
            "images-csv",
            "--task",
            "outcome",
            "--seed",
            "3",
        ]
    )
    assert status == 0
    assert "exported" in capsys.readouterr().out
    assert (tmp_path / "cli" / "DATASHEET.md").is_file()
    status = main(
        [
            "export",
            "--repository",
            str(demo_repository),
            "--out",
            str(tmp_path / "cli"),
            "--format",
            "images-csv",
            "--task",
            "outcome",
        ]
    )
    assert status == 2  # not empty: one-line error
    assert "not empty" in capsys.readouterr().err


def test_manifest_digests_that_look_like_numbers_do_not_stop_the_export(tmp_path, monkeypatch):
    """A SHA-256 hex digest can hold 13 digits that form a resident registration number pattern (with a few hundred
    files one almost surely does: the 300-patient demo's export failed on it); paths are still checked."""
    from kicc_analysis.export import manifest

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "KICC_0001.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr(manifest, "sha256", lambda path: "ab900101123456" + "8" + "c" * 49)
    table = manifest.write_manifest(tmp_path)
    assert table["sha256"].str.contains("9001011234568").all()
    assert "9001011234568" in (tmp_path / "MANIFEST.csv").read_text()
    (tmp_path / "MANIFEST.csv").unlink()
    (tmp_path / "images" / "900101-1234568.png").write_bytes(b"\x89PNG")
    with pytest.raises(PrivacyError, match="MANIFEST.csv: rrn"):
        manifest.write_manifest(tmp_path)
