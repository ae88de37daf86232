"""Outcome-prediction variants of the export on the demo repository: baseline radiograph (``outcome``), baseline CT
(``outcome-ct``), clinical only (``outcome-clinical``) and combined (``outcome-combined``). Baseline = each patient's
first study of the modality; CT features equal the quantification of that series; clinical inputs equal the cohort's
admission values; no patient crosses splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from test_export_monai import validate_datalist

from kicc_analysis.export import ExportError, check_no_leakage, export_dataset
from kicc_analysis.export.cases import CT_FEATURES


@pytest.fixture(scope="module")
def build(demo_repository):
    from kicc_analysis.cohort import build_cohort

    return build_cohort(demo_repository, write_snapshot=False, show_progress=False)


@pytest.fixture(scope="module")
def exports(demo_repository, build, tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcome")
    runs = {}
    for task, export_format in (
        ("outcome", "images-csv"),
        ("outcome-ct", "monai"),
        ("outcome-clinical", "images-csv"),
        ("outcome-combined", "images-csv"),
    ):
        runs[task] = export_dataset(
            demo_repository,
            folder / task,
            export_format=export_format,
            task=task,
            build=build,
            workers=1,
            show_progress=False,
        )
    return runs


def test_baseline_is_the_first_study_of_the_modality(exports, build):
    inventory = build.inventory.assign(img_day=pd.to_numeric(build.inventory["img_day"], errors="coerce"))
    for task, modalities in (("outcome", ["CR", "DX"]), ("outcome-ct", ["CT"])):
        cases = exports[task].cases
        assert cases["subjid"].is_unique and (cases["timepoint"] == "baseline").all()
        first_day = inventory[inventory["modality"].isin(modalities)].groupby("subjid")["img_day"].min()
        assert (cases.set_index("subjid")["img_day"] == first_day[cases["subjid"]]).all(), task
        assert set(cases["subjid"]) == set(first_day.index) & set(build.table["subjid"]), task
    ct = exports["outcome-ct"].cases.set_index("subjid")["series_uid"]
    assert (ct == build.table.set_index("subjid")["baseline_ct_series_uid"][ct.index]).all()
    from kicc_analysis.repository import series_files

    for row in exports["outcome"].cases.itertuples():  # the radiograph file: the first of its series
        assert row.source == [str(series_files(build.scan, row.series_uid)[0])]


def test_ct_variant_images_and_features_are_the_quantification_of_the_baseline_series(exports):
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification.batch import COHORT_METRICS, quantify_series

    result = exports["outcome-ct"]
    data = validate_datalist(result.out, segmentation=False)
    assert data["inputs"] == result.inputs == [*CT_FEATURES, "demog_age", "demog_sex"]
    assert "labels" not in data
    items = {item["case_id"]: item for key in ("training", "validation", "test") for item in data[key]}
    assert set(items) == set(result.cases["case_id"])
    for row in result.cases.head(2).itertuples():
        source = load_ct(row.source)
        image = sitk.ReadImage(str(result.out / row.image))
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(image), np.rint(sitk.GetArrayFromImage(source)).astype(np.int16)
        )
        assert np.allclose(image.GetOrigin(), source.GetOrigin(), atol=1e-4)
        assert np.allclose(image.GetSpacing(), source.GetSpacing(), atol=1e-5)
        both = quantify_series(row.source, compare=False).set_index("region").loc["both"]
        for feature, column in COHORT_METRICS.items():
            assert items[row.case_id][feature] == pytest.approx(both[column], rel=1e-9), feature
        assert items[row.case_id]["ct_low_confidence"] == float(both["qa_low_confidence"])
    assert (pd.read_csv(result.out / "cases.csv")["mask_source"] == "classical").all()


def test_clinical_variant_is_every_patient_with_admission_values_only(exports, build):
    result = exports["outcome-clinical"]
    targets = pd.read_csv(result.out / "targets.csv")
    assert sorted(targets["subjid"]) == sorted(build.table["subjid"])
    assert "image" not in targets and not (result.out / "images").exists()
    assert {"demog_age", "comor_diabetes", "vital_spo2room", "labs_crp_mgl", "pres_onset_days"} <= set(result.inputs)
    assert not [c for c in result.inputs if c.startswith(("sever_", "inter_", "crito_", "outco_")) or "date" in c]
    assert "pres_date" not in targets
    cohort = build.table.set_index("subjid")
    for column in ("demog_age", "labs_crp_mgl", "comor_diabetes"):
        expected = pd.to_numeric(cohort[column], errors="coerce").replace(99, np.nan)[targets["subjid"]]
        np.testing.assert_allclose(targets[column].to_numpy(float), expected.to_numpy(float), equal_nan=True)
    oxygen = pd.to_numeric(cohort["inter_suppleo2"], errors="coerce").replace(99, np.nan)[targets["subjid"]]
    np.testing.assert_array_equal(targets["inter_suppleo2"].to_numpy(float), oxygen.to_numpy(float))
    check_no_leakage(targets)


def test_combined_variant_joins_radiograph_ct_and_clinical_inputs(exports):
    combined = pd.read_csv(exports["outcome-combined"].out / "targets.csv").set_index("subjid")
    radiograph = pd.read_csv(exports["outcome"].out / "targets.csv").set_index("subjid")
    ct = exports["outcome-ct"].cases.set_index("subjid")
    assert set(combined.index) == set(radiograph.index)  # one case per patient with a baseline radiograph
    np.testing.assert_allclose(combined["brixia"], radiograph.loc[combined.index, "brixia"], equal_nan=True)
    with_ct = combined.index.intersection(ct.index)
    assert len(with_ct) > 0
    for feature in CT_FEATURES:
        np.testing.assert_allclose(combined.loc[with_ct, feature], ct.loc[with_ct, feature].astype(float))
        assert combined.loc[combined.index.difference(ct.index), feature].isna().all()
    assert {"brixia", *CT_FEATURES, "labs_crp_mgl"} <= set(exports["outcome-combined"].inputs)
    assert "ct_severity_total" in (exports["outcome-combined"].out / "DATASHEET.md").read_text(encoding="utf-8")
    assert combined.reset_index().groupby("subjid")["split"].nunique().max() == 1


def test_outcome_variants_refuse_segmentation_formats(demo_repository, tmp_path):
    with pytest.raises(ExportError, match="nnunet is a segmentation format"):
        export_dataset(demo_repository, tmp_path / "x", export_format="nnunet", task="outcome-ct")
    with pytest.raises(ExportError, match="CT segmentation task"):
        export_dataset(demo_repository, tmp_path / "y", export_format="images-csv", task="opacity")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_patient_has_the_same_split_and_fold_in_every_outcome_variant(exports):
    tables = {task: pd.read_csv(result.out / "cases.csv").set_index("subjid") for task, result in exports.items()}
    clinical = tables.pop("outcome-clinical")  # every cohort patient
    for task, table in tables.items():
        assert set(table.index) <= set(clinical.index), task
        pd.testing.assert_series_equal(table["split"], clinical.loc[table.index, "split"], check_names=False)
        pd.testing.assert_series_equal(
            table["fold"], clinical.loc[table.index, "fold"], check_names=False, check_dtype=False
        )
