"""kicc_analysis.metrics: overlap and surface metrics (values known by hand or analytically)."""

from __future__ import annotations

import numpy as np
import pytest

from kicc_analysis.agreement import segmentation_agreement
from kicc_analysis.errors import AnalysisError
from kicc_analysis.metrics import (
    average_surface_distance,
    compute_surface_distances,
    dice,
    hausdorff_distance,
    hd95,
    jaccard,
    percentile_hausdorff,
    relative_volume_difference,
    surface_dice,
    surface_distances,
    volume_difference_ml,
    volume_ml,
)


def _square(shape=(12, 12), lo=2, hi=6) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[lo:hi, lo:hi] = True
    return m


def test_overlap_by_hand():
    a = _square()
    b = np.roll(a, 1, axis=0)  # 12 of 16 voxels shared
    assert dice(a, b) == pytest.approx(2 * 12 / 32)
    assert jaccard(a, b) == pytest.approx(12 / 20)
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert jaccard(a, np.zeros_like(a)) == 0.0
    assert volume_ml(np.ones((10, 10, 10)), spacing=(2.0, 1.0, 0.5)) == pytest.approx(1.0)
    assert volume_difference_ml(a[None], b[None], spacing=10.0) == pytest.approx(0.0)
    assert relative_volume_difference(a, _square(hi=4)) == pytest.approx((16 - 4) / 4)
    with pytest.raises(AnalysisError, match="same shape"):
        dice(a, a[:5])


def test_directed_distances_of_nested_squares():
    # A (4 x 4) inside B (6 x 6): every A surface voxel is 1 voxel from B's ring; B's 16 edge voxels are 1 away
    # from A's ring and B's 4 corners sqrt(2).
    a = _square(lo=2, hi=6)
    b = _square(lo=1, hi=7)
    assert average_surface_distance(a, b, mode="a_to_b") == pytest.approx(1.0)
    assert average_surface_distance(a, b, mode="b_to_a") == pytest.approx((16 + 4 * np.sqrt(2)) / 20)
    pooled = (12 * 1.0 + 16 + 4 * np.sqrt(2)) / 32
    assert average_surface_distance(a, b) == pytest.approx(pooled)
    mean_of_means = (1.0 + (16 + 4 * np.sqrt(2)) / 20) / 2
    assert average_surface_distance(a, b, mode="mean_of_means") == pytest.approx(mean_of_means)
    assert surface_dice(a, b, tolerance=1.0, direction="a_to_b") == 1.0
    assert surface_dice(a, b, tolerance=1.0, direction="b_to_a") == pytest.approx(16 / 20)
    assert surface_dice(a, b, tolerance=1.0) == pytest.approx((12 + 16) / 32)
    assert hausdorff_distance(a, b, spacing=2.0) == pytest.approx(2 * np.sqrt(2))
    assert percentile_hausdorff(a, b, mode="a_to_b") == pytest.approx(1.0)
    assert hd95(a, b) == pytest.approx(percentile_hausdorff(a, b, percentile=95))


def test_segmentation_agreement_reports_the_metrics_module_values():
    a = _square(lo=2, hi=6)
    b = _square(lo=1, hi=7)
    res = segmentation_agreement(a, b, spacing=(0.5, 0.7), tolerance=0.6)
    assert res.dice == dice(a, b)
    assert res.asd_b_to_a_mm == average_surface_distance(a, b, (0.5, 0.7), mode="b_to_a")
    assert res.surface_dice_b_to_a == surface_dice(a, b, (0.5, 0.7), tolerance=0.6, direction="b_to_a")
    assert res.surface_dice_a_to_b == surface_dice(a, b, (0.5, 0.7), tolerance=0.6, direction="a_to_b")
    d_ab, d_ba = surface_distances(a, b, (0.5, 0.7))
    assert res.hausdorff_mm == max(d_ab.max(), d_ba.max())


def _box_surface_area(n0: int, n1: int, n2: int, s: tuple[float, float, float]) -> float:
    """Area (mm^2) of the marching-cubes surface of an n0 x n1 x n2 voxel box: flat faces at the voxel faces,
    edges cut by chamfers through the midpoints of the voxel-centre edges, corners by triangles."""
    s0, s1, s2 = s
    faces = 2 * ((n1 - 1) * s1 * (n2 - 1) * s2 + (n0 - 1) * s0 * (n2 - 1) * s2 + (n0 - 1) * s0 * (n1 - 1) * s1)
    # chamfer along axis k: length (n_k - 1) s_k, width = hypotenuse of half-spacings of the two other axes
    chamfers = 4 * (
        (n0 - 1) * s0 * np.hypot(s1 / 2, s2 / 2)
        + (n1 - 1) * s1 * np.hypot(s0 / 2, s2 / 2)
        + (n2 - 1) * s2 * np.hypot(s0 / 2, s1 / 2)
    )
    # corner triangle with vertices at half-spacing along each axis
    v = np.array([[s0 / 2, 0, 0], [0, s1 / 2, 0], [0, 0, s2 / 2]])
    corner = np.linalg.norm(np.cross(v[1] - v[0], v[2] - v[0])) / 2
    return faces + chamfers + 8 * corner


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.9)])
def test_surfel_area_of_a_box_is_analytic(spacing):
    m = np.zeros((10, 11, 12), bool)
    m[2:7, 3:9, 2:10] = True  # 5 x 6 x 8 voxels
    sd = compute_surface_distances(m, m, spacing, weighting="surfel")
    assert sd.weights_a.sum() == pytest.approx(_box_surface_area(5, 6, 8, spacing), rel=1e-12)
    assert sd.average() == 0.0 and sd.surface_dice(0.0) == 1.0


def test_surfel_distances_of_a_grown_rectangle_are_analytic():
    # A: rows 4-7, cols 2-9; B = A grown by 3 rows at the bottom; spacing 2 mm (rows) x 1 mm (cols). A's bottom
    # surfels sit on the row line 7.5 at cols c + 0.5 (c = 2..8), each 1 mm long; B's surface there is its left
    # side (col 1.5), right side (col 9.5) or bottom (row 10.5, 6 mm away): distance min(c - 1, 9 - c, 6) mm.
    # Every other surfel of A lies on B's surface (distance 0).
    a = np.zeros((20, 12), bool)
    a[4:8, 2:10] = True
    b = a.copy()
    b[8:11, 2:10] = True
    sd = compute_surface_distances(a, b, spacing=(2.0, 1.0), weighting="surfel")
    corner = np.hypot(1.0, 0.5)  # the cut through a corner block: half a row (1 mm) by half a column (0.5 mm)
    length_a = 2 * (3 * 2.0 + 7 * 1.0) + 4 * corner
    assert sd.weights_a.sum() == pytest.approx(length_a)
    expected = [min(c - 1, 9 - c, 6) for c in range(2, 9)]
    assert sorted(sd.a_to_b[sd.a_to_b > 0].tolist()) == pytest.approx(sorted(expected))
    assert sd.average("a_to_b") == pytest.approx(sum(expected) * 1.0 / length_a)
    assert sd.surface_dice(1.0, "a_to_b") == pytest.approx(1 - 5.0 / length_a)  # 5 surfels of 1 mm at 2, 3, 4, 3, 2 mm
    # voxel convention on the same masks: surface voxels, each counting once
    vox = compute_surface_distances(a, b, spacing=(2.0, 1.0))
    assert vox.weights_a.sum() == 20 and sd.weighting == "surfel"


def test_surfel_weighting_differs_from_voxel_counts_under_anisotropy():
    a = _square((16, 16), 3, 9)
    b = _square((16, 16), 4, 9)
    vox = average_surface_distance(a, b, (3.0, 1.0), mode="a_to_b")
    surf = average_surface_distance(a, b, (3.0, 1.0), mode="a_to_b", weighting="surfel")
    assert vox != pytest.approx(surf)


def test_empty_masks():
    z = np.zeros((5, 5), bool)
    a = _square((5, 5), 1, 3)
    assert hausdorff_distance(z, z) == 0.0 and surface_dice(z, z) == 1.0
    assert np.isnan(average_surface_distance(a, z)) and surface_dice(z, a) == 0.0
    with pytest.raises(AnalysisError, match="non-empty"):
        surface_distances(a, z)
    with pytest.raises(AnalysisError, match="weighting"):
        compute_surface_distances(a, a, weighting="area")


# Published expectations of DeepMind's surface-distance library (google-deepmind/surface-distance,
# surface_distance_test.py: test_on_2_pixels_2mm_away (2-D and 3-D) and test_two_cubes_shifted_by_one_pixel),
# reproduced with weighting="surfel".
def test_surfel_reproduces_deepmind_two_pixels_2mm_away():
    gt = np.zeros((20, 20), bool)
    pred = gt.copy()
    gt[10, 7] = True
    pred[10, 9] = True
    sd = compute_surface_distances(gt, pred, (2, 1), weighting="surfel")
    diag = 0.5 * np.hypot(2, 1)
    assert sd.weights_a == pytest.approx([diag] * 4)
    assert sorted(sd.a_to_b) == pytest.approx([1, 1, 2, 2])
    assert (sd.average("a_to_b"), sd.average("b_to_a")) == pytest.approx((1.5, 1.5))
    assert (sd.hausdorff(), sd.percentile_hausdorff(95)) == (2.0, 2.0)
    assert sd.surface_dice(1.0) == pytest.approx(0.5)
    gt3 = np.zeros((20, 20, 20), bool)
    pred3 = gt3.copy()
    gt3[10, 10, 7] = True
    pred3[10, 10, 9] = True
    sd3 = compute_surface_distances(gt3, pred3, (3, 2, 1), weighting="surfel")
    assert (sd3.average("a_to_b"), sd3.average("b_to_a"), sd3.hausdorff()) == pytest.approx((1.5, 1.5, 2.0))
    assert (sd3.surface_dice(1.0, "a_to_b"), sd3.surface_dice(1.0)) == pytest.approx((0.5, 0.5))


def test_surfel_reproduces_deepmind_two_cubes_shifted_by_one_pixel():
    gt = np.zeros((100, 100, 100), bool)
    pred = gt.copy()
    gt[0:50] = True
    pred[0:51] = True
    sd = compute_surface_distances(gt, pred, (2, 1, 1), weighting="surfel")
    assert sd.average("a_to_b") == pytest.approx(0.322, abs=5e-4)
    assert sd.average("b_to_a") == pytest.approx(0.339, abs=5e-4)
    assert (sd.hausdorff(), sd.percentile_hausdorff(95)) == (2.0, 2.0)
    assert sd.surface_dice(1.0, "a_to_b") == pytest.approx(0.842, abs=5e-4)
    assert sd.surface_dice(1.0, "b_to_a") == pytest.approx(0.830, abs=5e-4)
    assert sd.surface_dice(1.0) == pytest.approx(0.836, abs=5e-4)
    assert dice(gt, pred) == pytest.approx(0.990, abs=5e-4)


def test_segmentation_agreement_summary_names_directed_values_and_convention():
    a = _square(lo=2, hi=6)
    res = segmentation_agreement(a, _square(lo=1, hi=7), weighting="surfel")
    text = str(res)
    assert text == res.summary() and "A->B" in text and "B->A" in text
    assert "surfel" in res.convention and text.endswith(res.convention)
