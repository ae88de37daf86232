"""nnU-Net v2 export of the demo repository: layout and dataset.json against nnU-Net's documented dataset format
(MIC-DKFZ/nnUNet documentation/dataset_format.md), images read back with SimpleITK, byte-identical re-export."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from kicc_analysis.export import ExportError, check_no_leakage, export_dataset


@pytest.fixture(scope="module")
def lobes_export(demo_repository, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "Dataset501_KICC19Lobes"
    result = export_dataset(
        demo_repository,
        out,
        export_format="nnunet",
        task="lobes",
        mask_source="external",
        mask_dir=demo_repository / "ground_truth" / "lobes",
        show_progress=False,
    )
    return result


def validate_nnunet_raw(folder) -> dict:
    """The rules of nnU-Net v2's dataset format, as its documentation states them (no nnU-Net installed)."""
    spec = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    for key in ("channel_names", "labels", "numTraining", "file_ending"):
        assert key in spec, f"dataset.json lacks required key {key}"
    ending = spec["file_ending"]
    channels = spec["channel_names"]
    assert all(re.fullmatch(r"\d+", k) for k in channels) and sorted(int(k) for k in channels) == list(
        range(len(channels))
    )
    labels = spec["labels"]
    assert labels["background"] == 0
    assert sorted(labels.values()) == list(range(len(labels)))  # consecutive integers from 0
    pattern = re.compile(r"(.+)_(\d{4})" + re.escape(ending) + "$")
    cases: dict[str, set[int]] = {}
    for path in (folder / "imagesTr").iterdir():
        match = pattern.fullmatch(path.name)
        assert match, f"{path.name} is not <case>_XXXX{ending}"
        cases.setdefault(match.group(1), set()).add(int(match.group(2)))
    assert all(found == {int(k) for k in channels} for found in cases.values())  # every channel of every case
    label_cases = {p.name[: -len(ending)] for p in (folder / "labelsTr").iterdir()}
    assert label_cases == set(cases)
    assert spec["numTraining"] == len(cases)
    for case in cases:
        image = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_0000{ending}"))
        label = sitk.ReadImage(str(folder / "labelsTr" / f"{case}{ending}"))
        assert image.GetSize() == label.GetSize()
        assert np.allclose(image.GetOrigin(), label.GetOrigin()) and np.allclose(image.GetSpacing(), label.GetSpacing())
        assert set(np.unique(sitk.GetArrayViewFromImage(label))) <= set(labels.values())
    return spec


def test_dataset_json_and_layout_follow_nnunet_format(lobes_export):
    spec = validate_nnunet_raw(lobes_export.out)
    assert spec["channel_names"] == {"0": "CT"}
    assert set(spec["labels"]) == {"background", "RUL", "RML", "RLL", "LUL", "LLL"}
    test_cases = lobes_export.cases.query("split == 'test'")["case_id"]
    assert {p.name for p in (lobes_export.out / "imagesTs").iterdir()} == {f"{c}_0000.nii.gz" for c in test_cases}


def test_images_and_labels_read_back_equal_to_the_source(lobes_export, demo_repository):
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.segmentation import load_lung_mask

    for row in lobes_export.cases.head(3).itertuples():
        exported = sitk.ReadImage(str(lobes_export.out / row.image))
        source = load_ct(row.source)
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(exported), np.rint(sitk.GetArrayFromImage(source)).astype(np.int16)
        )
        assert np.allclose(exported.GetOrigin(), source.GetOrigin(), atol=1e-4)
        assert np.allclose(exported.GetSpacing(), source.GetSpacing(), atol=1e-5)
        assert np.allclose(exported.GetDirection(), source.GetDirection(), atol=1e-6)
        truth = load_lung_mask(demo_repository / "ground_truth" / "lobes" / f"{row.series_uid}.nii.gz", source).lobes
        label = sitk.ReadImage(str(lobes_export.out / row.label))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(truth))
        assert set(np.unique(sitk.GetArrayFromImage(label))) >= {1, 2, 3, 4, 5}


def test_nibabel_reads_the_same_physical_grid(lobes_export):
    nibabel = pytest.importorskip("nibabel")
    row = lobes_export.cases.iloc[0]
    path = lobes_export.out / row["image"]
    image = sitk.ReadImage(str(path))
    affine = nibabel.load(str(path)).affine  # RAS
    corner = np.array(image.TransformIndexToPhysicalPoint((1, 2, 3)))  # LPS
    ras = affine @ np.array([1, 2, 3, 1.0])
    np.testing.assert_allclose(ras[:3] * np.array([-1, -1, 1]), corner, atol=1e-3)


def test_no_patient_or_series_crosses_splits_and_folds(lobes_export):
    check_no_leakage(lobes_export.cases)
    folds = json.loads((lobes_export.out / "splits_final.json").read_text())
    owner = lobes_export.cases.set_index("case_id")["subjid"]
    for fold in folds:
        assert not set(owner[fold["train"]]) & set(owner[fold["val"]])
    cases = pd.read_csv(lobes_export.out / "cases.csv")
    assert cases.groupby("subjid")["split"].nunique().max() == 1
    assert (cases["mask_source"] == "external").all()


def test_manifest_lists_every_file_with_its_hash(lobes_export):
    from kicc_analysis.export.manifest import sha256

    manifest = pd.read_csv(lobes_export.out / "MANIFEST.csv")
    files = {p.relative_to(lobes_export.out).as_posix() for p in lobes_export.out.rglob("*") if p.is_file()}
    assert set(manifest["path"]) == files - {"MANIFEST.csv"}
    for row in manifest.head(5).itertuples():
        assert sha256(lobes_export.out / row.path) == row.sha256


def test_same_seed_gives_byte_identical_export(lobes_export, demo_repository, tmp_path):
    again = export_dataset(
        demo_repository,
        tmp_path / "again",
        export_format="nnunet",
        task="lobes",
        mask_source="external",
        mask_dir=demo_repository / "ground_truth" / "lobes",
        show_progress=False,
    )
    assert (again.out / "MANIFEST.csv").read_bytes() == (lobes_export.out / "MANIFEST.csv").read_bytes()


def test_wrong_combinations_are_one_line_errors(demo_repository, tmp_path):
    with pytest.raises(ExportError, match="nnunet is a segmentation format"):
        export_dataset(demo_repository, tmp_path / "x", export_format="nnunet", task="outcome")
    with pytest.raises(ExportError, match="format must be one of"):
        export_dataset(demo_repository, tmp_path / "x", export_format="coco", task="lungs")
