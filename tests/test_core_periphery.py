"""Core / periphery regions of kicc_analysis.quantification (periphery_mask, quantify(core_periphery=True))."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from kicc_analysis.errors import AnalysisError
from kicc_analysis.quantification import periphery_mask, quantify


def _image(array: np.ndarray, spacing_zyx: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return image


def test_disk_periphery_is_the_outer_third_of_the_radius():
    # a disk of radius R: the hull is the disk, depth = R - r, periphery = r > 2R/3 -> area share 1 - (2/3)^2 = 5/9
    radius_px = 120
    yy, xx = np.mgrid[-130:131, -130:131]
    disk = np.hypot(yy, xx) <= radius_px
    periphery = periphery_mask(disk, (0.7, 0.7))
    assert periphery.sum() / disk.sum() == pytest.approx(5 / 9, abs=0.01)
    r = np.hypot(yy, xx)
    assert periphery[(r < 0.6 * radius_px)].sum() == 0
    assert periphery[disk & (r > 0.7 * radius_px)].all()


def test_fraction_changes_the_share_and_is_validated():
    disk = np.hypot(*np.mgrid[-60:61, -60:61]) <= 55
    share_quarter = periphery_mask(disk, (1.0, 1.0), fraction=0.25).sum() / disk.sum()
    assert share_quarter == pytest.approx(1 - 0.75**2, abs=0.02)
    with pytest.raises(AnalysisError, match="fraction"):
        periphery_mask(disk, (1.0, 1.0), fraction=1.0)


def test_hilum_between_two_lungs_is_core():
    # two half-ellipse lungs: their medial (hilar) edges face the bridged mediastinum, so they are deep = core
    yy, xx = np.mgrid[0:200, 0:300]
    thorax = ((yy - 100) / 90.0) ** 2 + ((xx - 150) / 140.0) ** 2 <= 1
    labels = np.zeros((3, 200, 300), dtype=np.uint8)
    labels[:, thorax & (xx < 130)] = 1
    labels[:, thorax & (xx > 170)] = 2
    periphery = periphery_mask(labels, (5.0, 1.0, 1.0))
    assert not periphery[1, 100, 125]  # medial edge of the right lung, mid-height: core
    assert periphery[1, 100, 15]  # lateral costal edge: periphery
    assert not periphery[labels == 0].any()


def test_quantify_core_periphery_rows_add_up_and_locate_a_subpleural_lesion():
    shape = (12, 160, 220)
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    thorax = ((yy - 80) / 70.0) ** 2 + ((xx - 110) / 100.0) ** 2 <= 1
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, thorax & (xx < 100)] = 1
    labels[:, thorax & (xx > 120)] = 2
    hu = np.full(shape, 40, dtype=np.int16)
    hu[labels > 0] = -850
    lesion = (labels == 1) & (np.hypot(yy - 80, xx - 20)[None] < 12)  # GGO patch against the right costal wall
    hu[lesion] = -500
    image = _image(hu, (5.0, 1.0, 1.0))
    lung_image = _image(labels, (5.0, 1.0, 1.0))
    table = quantify(image, lung_image, core_periphery=True, remove_vessels=False).set_index("region")
    plain = quantify(image, lung_image, remove_vessels=False).set_index("region")
    for side in ("both", "right", "left"):
        assert table.loc[f"{side}_core", "volume_ml"] + table.loc[f"{side}_periphery", "volume_ml"] == pytest.approx(
            table.loc[side, "volume_ml"]
        )
        assert table.loc[f"{side}_core", "zone"] == "core"
    ggo_ml = lesion.sum() * 5e-3
    assert table.loc["right_periphery", "ggo_ml"] == pytest.approx(ggo_ml)
    assert table.loc["right_core", "ggo_ml"] == 0
    assert table.loc["left_periphery", "ggo_ml"] == 0
    # the extra rows change neither the standard rows nor the severity total
    assert table.loc["both", "severity_total"] == plain.loc["both", "severity_total"]
    np.testing.assert_allclose(table.loc[plain.index, "opacity_pct"], plain["opacity_pct"])


def test_filled_hull_is_exact_and_contains_skimage_hull():
    from matplotlib.path import Path
    from scipy.spatial import ConvexHull
    from skimage.morphology import convex_hull_image

    from kicc_analysis.quantification.opacity import _filled_hull

    # a 3 x 7 bar and a single pixel below it: the hull edge from corner (4.5, 1.5) to (8.5, 4.5) passes x = 1.875
    # at row 5, so the centre (5, 2) is strictly inside the hull of the pixel squares
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:5, 2:9] = True
    mask[8, 5] = True
    hull = _filled_hull(mask)
    assert hull[5, 2] and hull[5, 8] and hull[7, 5]
    assert not hull[5, 1] and not hull[8, 4] and not hull[1, 2]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:70]
    for _ in range(50):
        blobs = np.zeros((60, 70), dtype=bool)
        for _ in range(int(rng.integers(1, 5))):
            cy, cx, r = int(rng.integers(5, 55)), int(rng.integers(5, 65)), int(rng.integers(1, 10))
            blobs |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        ours, reference = _filled_hull(blobs), convex_hull_image(blobs)
        assert not (reference & ~ours).any()  # never smaller than scikit-image's
        # exact: the same pixel centres as matplotlib's point-in-polygon test of the hull of the pixel squares
        # (either boundary convention: centres exactly on an edge may go either way)
        corners = np.argwhere(blobs)[:, None, :] + np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
        corners = corners.reshape(-1, 2)
        path = Path(corners[ConvexHull(corners).vertices])
        centres = np.column_stack([yy.ravel(), xx.ravel()])
        inside_a = path.contains_points(centres, radius=-1e-6).reshape(blobs.shape) | blobs
        inside_b = path.contains_points(centres, radius=1e-6).reshape(blobs.shape) | blobs
        assert not ((ours != inside_a) & (ours != inside_b)).any()
