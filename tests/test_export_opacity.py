"""CT opacity (GGO / consolidation) segmentation task: nnU-Net and MONAI exports of the demo repository read back
with SimpleITK and nibabel, labels equal to the quantification's opacity labels on the same lungs, label volumes
equal to the quantification's ml, dataset.json labels as nnU-Net documents them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from test_export_monai import validate_datalist
from test_export_nnunet import validate_nnunet_raw

from kicc_analysis.export import check_no_leakage, export_dataset
from kicc_analysis.export.cases import OPACITY_LABELS


@pytest.fixture(scope="module")
def opacity_export(demo_repository, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "Dataset502_KICC19Opacity"
    return export_dataset(
        demo_repository, out, export_format="nnunet", task="opacity", baseline_only=True, show_progress=False
    )


def test_dataset_json_has_the_opacity_labels(opacity_export):
    spec = validate_nnunet_raw(opacity_export.out)  # nnU-Net's documented rules (consecutive labels from 0, ...)
    assert spec["labels"] == {"background": 0, "lung": 1, "ggo": 2, "consolidation": 3} == OPACITY_LABELS
    assert spec["channel_names"] == {"0": "CT"}
    cases = pd.read_csv(opacity_export.out / "cases.csv")
    assert (cases["mask_source"] == "classical").all()
    assert cases["label_source"].str.startswith("segment_opacities quant-").all()
    assert cases["label_source"].str.contains("in classical lungs (segment_lungs", regex=False).all()
    assert "segment_opacities" in (opacity_export.out / "DATASHEET.md").read_text(encoding="utf-8")


def test_images_and_labels_equal_the_source_and_the_quantification(opacity_export):
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification import segment_opacities
    from kicc_analysis.quantification.batch import quantify_series
    from kicc_analysis.segmentation import segment_lungs

    classes_seen = set()
    for row in opacity_export.cases.head(3).itertuples():
        source = load_ct(row.source)
        image = sitk.ReadImage(str(opacity_export.out / row.image))
        label = sitk.ReadImage(str(opacity_export.out / row.label))
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(image), np.rint(sitk.GetArrayFromImage(source)).astype(np.int16)
        )
        for exported in (image, label):
            assert exported.GetSize() == source.GetSize()
            assert np.allclose(exported.GetOrigin(), source.GetOrigin(), atol=1e-4)
            assert np.allclose(exported.GetSpacing(), source.GetSpacing(), atol=1e-5)
            assert np.allclose(exported.GetDirection(), source.GetDirection(), atol=1e-6)
        lungs = segment_lungs(source).labels
        expected = np.where(
            sitk.GetArrayFromImage(lungs) > 0, sitk.GetArrayFromImage(segment_opacities(source, lungs)) + 1, 0
        )
        labels = sitk.GetArrayFromImage(label)
        np.testing.assert_array_equal(labels, expected)
        classes_seen |= set(np.unique(labels).tolist())
        # the same volumes as the cohort's quantification of the series (classical lungs)
        both = quantify_series(row.source, compare=False).set_index("region").loc["both"]
        voxel_ml = float(np.prod(source.GetSpacing())) / 1000.0
        assert (labels >= 1).sum() * voxel_ml == pytest.approx(both["volume_ml"], rel=1e-9)
        assert (labels == 2).sum() * voxel_ml == pytest.approx(both["ggo_ml"], rel=1e-9, abs=1e-9)
        assert (labels == 3).sum() * voxel_ml == pytest.approx(both["consolidation_ml"], rel=1e-9, abs=1e-9)
    assert {0, 1, 2} <= classes_seen  # the demo's baseline CTs have ground-glass opacities


def test_nibabel_reads_the_labels_on_the_image_grid(opacity_export):
    nibabel = pytest.importorskip("nibabel")
    row = opacity_export.cases.iloc[0]
    image = nibabel.load(str(opacity_export.out / row["image"]))
    label = nibabel.load(str(opacity_export.out / row["label"]))
    np.testing.assert_allclose(image.affine, label.affine, atol=1e-5)
    source = sitk.ReadImage(str(opacity_export.out / row["label"]))
    # nibabel's array is (x, y, z) of the RAS-stored file; SimpleITK's is (z, y, x): same voxels
    np.testing.assert_array_equal(np.asarray(label.dataobj).transpose(2, 1, 0), sitk.GetArrayFromImage(source))
    corner = np.array(source.TransformIndexToPhysicalPoint((2, 1, 0)))  # LPS
    ras = label.affine @ np.array([2, 1, 0, 1.0])
    np.testing.assert_allclose(ras[:3] * np.array([-1, -1, 1]), corner, atol=1e-3)


def test_monai_opacity_datalist(demo_repository, tmp_path):
    result = export_dataset(
        demo_repository,
        tmp_path / "monai",
        export_format="monai",
        task="opacity",
        mask_source="external",
        mask_dir=demo_repository / "ground_truth" / "lobes",
        baseline_only=True,
        show_progress=False,
    )
    data = validate_datalist(result.out, segmentation=True)
    assert data["labels"] == {"0": "background", "1": "lung", "2": "ggo", "3": "consolidation"}
    check_no_leakage(result.cases)
    cases = pd.read_csv(result.out / "cases.csv")
    assert (cases["mask_source"] == "external").all()
    assert cases["label_source"].str.contains("in external lungs (load_lung_mask", regex=False).all()
    item = data["training"][0] if data["training"] else data["test"][0]
    row = result.cases.set_index("case_id").loc[item["case_id"]]
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification import segment_opacities
    from kicc_analysis.segmentation import load_lung_mask

    source = load_ct(row["source"])
    lungs = load_lung_mask(demo_repository / "ground_truth" / "lobes" / f"{row['series_uid']}.nii.gz", source).labels
    expected = np.where(
        sitk.GetArrayFromImage(lungs) > 0, sitk.GetArrayFromImage(segment_opacities(source, lungs)) + 1, 0
    )
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(result.out / item["label"]))), expected)
    assert json.loads((result.out / "datalist.json").read_text())["name"] == "KICC19_opacity"
