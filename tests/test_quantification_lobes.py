"""Per-lobe quantification and the lobar CT severity score (kicc_analysis.quantification.lobes, kicc_analysis.scores)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from kicc_analysis.quantification import quantify, quantify_lobes
from kicc_analysis.scores import SEVERITY_EDGES_PCT, severity_score, severity_scores

LOBES = ["RUL", "RML", "RLL", "LUL", "LLL"]


def test_pan_2020_classes():
    """Pan et al., Radiology 2020;295:715-721: 0 none, 1 <5 %, 2 5-25 %, 3 26-49 %, 4 50-75 %, 5 >75 %."""
    inside = {0: [0.0], 1: [0.01, 2.0, 4.9], 2: [5.0, 12.0, 25.0], 3: [26.0, 40.0, 49.0], 4: [50.5, 60.0, 75.0],
              5: [75.5, 90.0, 100.0]}  # fmt: skip
    for score, values in inside.items():
        assert severity_scores(values).tolist() == [score] * len(values)
        assert all(severity_score(v) == score for v in values)
    assert severity_scores([np.nan, -1.0]).tolist() == [0, 0]
    assert SEVERITY_EDGES_PCT == (5.0, 25.0, 50.0, 75.0)


def test_one_source_for_the_cut_offs():
    """The demo's readers and quantify's zone score use the same function as the lobe score."""
    from kicc_analysis.demo import readers
    from kicc_analysis.quantification import opacity

    grid = np.linspace(0, 100, 2001)
    assert np.array_equal(readers.lobe_score(grid / 100.0), severity_scores(grid))
    assert [opacity.severity_score(p) for p in grid] == severity_scores(grid).tolist()
    assert not hasattr(readers, "SCORE_BOUNDS")


@pytest.fixture(scope="module")
def phantom_tables():
    from kicc_analysis.demo.phantom import chest_phantom

    out = []
    for seed in (0, 3):
        ph = chest_phantom(lesions="random", seed=seed, opacity_fraction=0.2)
        ct = sitk.GetImageFromArray(ph.hu)
        ct.SetSpacing(tuple(float(s) for s in ph.spacing_mm[::-1]))
        lungs = sitk.GetImageFromArray(ph.lung_labels.astype(np.uint8))
        lungs.CopyInformation(ct)
        lobes = sitk.GetImageFromArray(ph.lobe_labels.astype(np.uint8))
        lobes.CopyInformation(ct)
        out.append((ph, ct, lungs, lobes, quantify(ct, lungs, lobe_labels=lobes)))
    return out


def test_lobe_opacity_and_score_against_the_phantom_truth(phantom_tables):
    """True lobes and lung: per-lobe opacity within 0.5 points of the true involvement, scores equal."""
    for ph, *_, table in phantom_tables:
        rows = table.set_index("region").loc[LOBES]
        truth = np.array([100.0 * ph.lobe_involvement[lobe] for lobe in LOBES])
        assert np.abs(rows["opacity_pct"].to_numpy() - truth).max() < 0.5
        assert rows["lobe_score"].tolist() == severity_scores(truth).tolist()
        assert rows["lobe_score_total"].iloc[0] == severity_scores(truth).sum()
        assert (rows["zone"] == "lobe").all() and rows["side"].tolist() == ["right"] * 3 + ["left"] * 2


def test_lobe_rows_add_up_and_zone_columns_stay_apart(phantom_tables):
    ph, ct, lungs, lobes, table = phantom_tables[0]
    indexed = table.set_index("region")
    for column in ("n_voxels", "ggo_ml", "consolidation_ml"):
        assert indexed.loc[LOBES, column].sum() == pytest.approx(indexed.loc["both", column])
    # the six-zone score is untouched: same severity_total as without lobes, no zone score on lobe rows
    plain = quantify(ct, lungs)
    assert table["severity_total"].unique().tolist() == plain["severity_total"].unique().tolist()
    assert indexed.loc[LOBES, "severity_score"].isna().all()
    assert table["lobe_score_total"].nunique() == 1
    assert not plain.columns.str.startswith("lobe_").any()
    # quantify_lobes alone, with quantify's opacity labels, gives the same lobe rows
    from kicc_analysis.quantification import segment_opacities

    alone = quantify_lobes(ct, lobes, opacity_labels=segment_opacities(ct, lungs)).set_index("region")
    for column in ("volume_ml", "ggo_pct", "consolidation_pct", "mean_hu", "hu_p50", "lobe_score"):
        assert np.allclose(alone[column], indexed.loc[LOBES, column])


def test_missing_lobe_gives_no_total():
    hu = np.full((6, 10, 10), -850, dtype=np.int16)
    hu[:, :, :3] = -450  # 60 % GGO in RUL
    lobes = np.zeros(hu.shape, np.uint8)
    lobes[:, :, :5] = 1
    lobes[:, :, 5:] = 4
    ct, lab = sitk.GetImageFromArray(hu), sitk.GetImageFromArray(lobes)
    table = quantify_lobes(ct, lab, remove_vessels=False).set_index("region")
    assert table.loc["RUL", "ggo_pct"] == pytest.approx(60.0) and table.loc["RUL", "lobe_score"] == 4
    assert np.isnan(table.loc["RML", "lobe_score"]) and table.loc["RML", "volume_ml"] == 0
    assert table["lobe_score_total"].isna().all()
    from kicc_analysis.errors import AnalysisError

    lobes[0, 0, 0] = 7
    with pytest.raises(AnalysisError, match="value 7"):
        quantify_lobes(ct, sitk.GetImageFromArray(lobes))


def test_batch_with_a_mask_for_one_series(tmp_path):
    """kicc quantify --masks: the masked series gets lobe rows and a comparison, the other the classical method;
    the cache key follows the mask's content."""
    import pandas as pd

    from kicc_analysis.demo.phantom import chest_phantom
    from kicc_analysis.quantification.batch import join_to_cohort, quantify_series_table
    from kicc_analysis.segmentation import write_lung_mask

    jobs = []
    for k, seed in enumerate((0, 1)):
        ph = chest_phantom(lesions="random", seed=seed)
        ct = sitk.GetImageFromArray(ph.hu)
        ct.SetSpacing(tuple(float(s) for s in ph.spacing_mm[::-1]))
        sitk.WriteImage(ct, str(tmp_path / f"ct{k}.nrrd"))
        jobs.append({"subjid": f"P{k}", "series_uid": f"1.2.{k}", "timepoint": "baseline", "img_day": 0,
                     "source": str(tmp_path / f"ct{k}.nrrd"), "mask": None})  # fmt: skip
    lungs = sitk.GetImageFromArray(ph.lung_labels.astype(np.uint8))
    lobes = sitk.GetImageFromArray(ph.lobe_labels.astype(np.uint8))
    for image in (lungs, lobes):
        image.CopyInformation(ct)
    mask = write_lung_mask(lungs, tmp_path / "masks" / "1.2.1.nii.gz", "totalsegmentator", lobes=lobes)
    jobs[1]["mask"] = str(mask)
    table = pd.DataFrame(jobs)
    results = quantify_series_table(table, cache_dir=tmp_path / "cache", workers=1, show_progress=False)
    assert len(results.attrs["failures"]) == 0
    by_series = results.groupby("series_uid")
    assert by_series["mask_source"].unique().to_dict() == {"1.2.0": ["classical"], "1.2.1": [
        "totalsegmentator:1.2.1.nii.gz"]}  # fmt: skip
    masked = results[results["series_uid"] == "1.2.1"].set_index("region")
    assert set(LOBES) <= set(masked.index) and not set(LOBES) & set(results.loc[results["series_uid"] == "1.2.0",
                                                                                 "region"])  # fmt: skip
    truth = np.array([100.0 * ph.lobe_involvement[lobe] for lobe in LOBES])
    assert np.abs(masked.loc[LOBES, "opacity_pct"].to_numpy() - truth).max() < 0.5  # the true lobes were used
    assert masked["qa_mask_dice"].iloc[0] > 0.95  # the classical mask agrees with the phantom's true lungs
    assert np.isnan(results.loc[results["series_uid"] == "1.2.0", "qa_mask_dice"]).all()
    cohort = join_to_cohort(pd.DataFrame({"subjid": ["P0", "P1"]}), results).set_index("subjid")
    assert np.isnan(cohort.loc["P0", "ct_lobe_score_total"])
    assert cohort.loc["P1", "ct_lobe_score_total"] == severity_scores(truth).sum()
    assert cohort.loc["P1", "ct_mask_source"].startswith("totalsegmentator")
    # re-run: both cached; then the mask changes (RUL relabelled RML) -> only that series is recomputed
    again = quantify_series_table(table, cache_dir=tmp_path / "cache", workers=1, show_progress=False)
    assert again["cached"].all()
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))
    array[array == 12] = 13
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(ct)
    sitk.WriteImage(edited, str(mask))
    third = quantify_series_table(table, cache_dir=tmp_path / "cache", workers=1, show_progress=False)
    assert third.groupby("series_uid")["cached"].all().to_dict() == {"1.2.0": True, "1.2.1": False}
    assert third.set_index(["series_uid", "region"]).loc[("1.2.1", "RUL"), "volume_ml"] == 0
    # without the comparison (faster): the unmasked series stays cached, the masked one has no qa_mask_dice
    fast = quantify_series_table(table, cache_dir=tmp_path / "cache", workers=1, show_progress=False,
                                 compare_masks=False)  # fmt: skip
    assert fast.groupby("series_uid")["cached"].all().to_dict() == {"1.2.0": True, "1.2.1": False}
    masked_fast = fast[fast["series_uid"] == "1.2.1"]
    assert masked_fast["qa_mask_dice"].isna().all() and "mask_disagreement" not in masked_fast["qa_flags"].iloc[0]
    assert (masked_fast["mask_source"] == "totalsegmentator:1.2.1.nii.gz").all()


def test_demo_repository_masks_are_found_for_its_lung_series(demo_repository):
    """The demo writes lobe truth for its lung-kernel series; series_masks finds them by SeriesInstanceUID, and by
    the series folder once renamed to the repository layout."""
    import shutil

    import pandas as pd

    from kicc_analysis.cohort import build_cohort, ct_series_jobs
    from kicc_analysis.pipeline import series_masks

    build = build_cohort(demo_repository, workers=1, show_progress=False)
    jobs = ct_series_jobs(build)
    masks = series_masks(jobs, demo_repository / "ground_truth" / "lobes", demo_repository)
    truth = pd.read_csv(demo_repository / "ground_truth" / "truth.csv").set_index("series_uid")
    roles = truth.loc[jobs["series_uid"], "series_role"].to_numpy()
    assert all((m is not None) == (role == "lung") for m, role in zip(masks, roles, strict=True))
    assert any(m is not None for m in masks)
    # by series path: MASKS/<series folder relative to the repository>.nii.gz
    by_path = demo_repository.parent / "masks_by_path"
    k = next(i for i, m in enumerate(masks) if m is not None)
    folder = os.path.commonpath([os.path.dirname(f) for f in jobs.loc[k, "source"]])
    relative = os.path.relpath(folder, demo_repository)
    (by_path / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(masks[k], by_path / f"{relative}.nii.gz")
    found = series_masks(jobs, by_path, demo_repository)
    assert found[k] == str(by_path / f"{relative}.nii.gz") and sum(m is not None for m in found) == 1
