"""MONAI datalist export: structure as monai.data.load_decathlon_datalist documents it (no torch needed), labels and
images read back, classical masks recorded as the mask source."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from kicc_analysis.export import check_no_leakage, export_dataset


def validate_datalist(folder, *, segmentation: bool) -> dict:
    """MONAI's decathlon datalist: lists of dicts keyed by list name; ``image``/``label`` paths relative to the JSON."""
    data = json.loads((folder / "datalist.json").read_text(encoding="utf-8"))
    for key in ("training", "validation", "test"):
        assert isinstance(data[key], list)
        for item in data[key]:
            assert isinstance(item, dict)
            assert (folder / item["image"]).is_file()
            if segmentation:
                assert (folder / item["label"]).is_file()
            for value in item.values():
                assert value is None or isinstance(value, (str, int, float))
    return data


@pytest.mark.slow
def test_monai_lungs_with_classical_masks(demo_repository, tmp_path):
    result = export_dataset(
        demo_repository,
        tmp_path / "monai",
        export_format="monai",
        task="lungs",
        baseline_only=True,
        show_progress=False,
    )
    data = validate_datalist(result.out, segmentation=True)
    assert data["labels"] == {"0": "background", "1": "right_lung", "2": "left_lung"}
    assert sum(len(data[k]) for k in ("training", "validation", "test")) == len(result.cases)
    assert (result.cases["timepoint"] == "baseline").all() and result.cases["subjid"].is_unique
    assert (result.cases["mask_source"] == "classical").all()
    check_no_leakage(result.cases)
    item = data["training"][0]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(result.out / item["label"])))
    image = sitk.ReadImage(str(result.out / item["image"]))
    assert set(np.unique(label)) == {0, 1, 2}
    assert np.median(sitk.GetArrayFromImage(image)[label > 0]) < -500  # lung voxels are aerated (HU)


def test_monai_radiograph_outcome_datalist(demo_repository, tmp_path):
    result = export_dataset(
        demo_repository, tmp_path / "monai", export_format="monai", task="outcome", show_progress=False
    )
    data = validate_datalist(result.out, segmentation=False)
    items = [item for key in ("training", "validation", "test") for item in data[key]]
    assert len(items) == len(result.cases) == result.cases["subjid"].nunique()  # baseline radiograph per patient
    assert {"brixia", "demog_age", "inter_suppleo2", "death"} <= set(items[0])
    ages = result.cases.set_index("case_id")["demog_age"]
    for item in items:
        expected = ages[item["case_id"]]
        assert item["demog_age"] == (None if pd.isna(expected) else int(expected))
        image = sitk.ReadImage(str(result.out / item["image"]))
        assert image.GetPixelID() == sitk.sitkUInt16 and image.GetDimension() == 2
