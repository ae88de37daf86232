"""Per-lobe quantification and the lobar CT severity score (kicc_analysis.quantification.lobes, kicc_analysis.scores)."""

from __future__ import annotations

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
