"""Step 7 of the 2-D axial path on the input grid (kicc_analysis.segmentation.boundary_2d): the pleural line and the
hole filling, on synthetic slices where the answer is known (the real covid_ny_sbu slices are in
tests/test_segmentation_covid.py)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from kicc_analysis.segmentation import BOUNDARY_RULE_NAMES, LEFT, RIGHT, LungParameters, segment_lungs
from kicc_analysis.segmentation.boundary_2d import (
    fill_holes_2d,
    partial_aeration_2d,
    pleural_depth_2d,
    refine_boundary_2d,
)

SPACING = 0.7  # mm, input grid
INNER_MM, OUTER_MM = 100.0, 106.0  # rib ring radii (mm)


def _rib_ring(gap_deg: float = 8.0, n_ribs: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A round chest (y, x) in HU: ``n_ribs`` rib arcs between ``INNER_MM`` and ``OUTER_MM`` with intercostal gaps
    of ``gap_deg``, soft tissue around them, lung (-850 HU) inside. Returns hu, radius (mm), angle (deg), trunk."""
    n = int(2 * 150 / SPACING)
    yy, xx = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2.0
    radius = np.hypot(yy - c, xx - c) * SPACING
    angle = np.degrees(np.arctan2(yy - c, xx - c)) % 360.0
    trunk = radius <= 140.0
    hu = np.where(trunk, 40.0, -1000.0)
    period = 360.0 / n_ribs
    rib = (radius >= INNER_MM) & (radius <= OUTER_MM) & ((angle % period) >= gap_deg)
    hu[rib] = 700.0
    hu[radius < INNER_MM] = -850.0
    return hu.astype(np.float32), radius, angle, trunk


def test_pleural_depth_follows_the_inner_rib_surface_and_bridges_the_gaps():
    """The line runs on the ribs' inner surface and across each intercostal gap (a chord: at most r (1 - cos(gap /
    2)) = 0.24 mm inside the circle for 8 degrees); a contrast-filled vessel (a small bright spot 5 mm inside the
    ribs) and a humerus outside the cage do not move it."""
    hu, radius, angle, trunk = _rib_ring()
    cy = cx = (hu.shape[0] - 1) / 2.0
    yy, xx = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]]
    vessel = np.hypot((yy - cy) * SPACING, (xx - (cx + 95.0 / SPACING)) * SPACING) <= 1.0  # 3 mm^2, 95 mm out
    hu[vessel] = 300.0
    humerus = np.hypot((yy - cy) * SPACING, (xx - (cx - 125.0 / SPACING)) * SPACING) <= 8.0
    hu[humerus] = 700.0
    cavity = radius <= INNER_MM + 1.5  # the working-grid ring: a little off the true surface
    depth = pleural_depth_2d(hu, cavity, trunk, np.array([SPACING, SPACING]))
    assert depth is not None
    lung = (radius < INNER_MM - 3.0) & (radius > 20.0)
    error = depth[lung] - (INNER_MM - radius[lung])
    assert np.abs(error).max() <= 1.0  # mm, within about one input pixel everywhere, gaps and vessel included
    gap = (radius > INNER_MM - 3.0) & (radius < INNER_MM) & ((angle % (360.0 / 14)) < 8.0)
    assert (depth[gap] > -0.5).all()  # the gaps are bridged, not opened to the chest wall


def test_pleural_depth_needs_a_cage():
    """No cavity (all True: no cage found), an empty one, or no bone: no line."""
    hu, radius, _, trunk = _rib_ring()
    spacing = np.array([SPACING, SPACING])
    assert pleural_depth_2d(hu, np.ones(hu.shape, dtype=bool), trunk, spacing) is None
    assert pleural_depth_2d(hu, np.zeros(hu.shape, dtype=bool), trunk, spacing) is None
    no_bone = np.where(hu > 150, 40.0, hu).astype(np.float32)
    assert pleural_depth_2d(no_bone, radius <= INNER_MM, trunk, spacing) is None


def test_refine_cuts_only_dense_recovered_pixels_beyond_the_line():
    """A dense-recovered rim reaching into the ribs is cut back to 2 mm inside their inner surface; aerated lung
    pixels beyond the line (none should exist, but the rule must not decide for them) and dense pixels inside are
    kept; without a cavity (rule ``cage_2d`` off, or none found: a tight crop) nothing changes, holes included."""
    hu, radius, angle, trunk = _rib_ring()
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[radius < OUTER_MM] = RIGHT
    dense = ((radius >= 80.0) & (radius < OUTER_MM) & (angle < 180.0)).astype(np.uint8)  # recovered rim, one half
    spacing = np.array([1.0, SPACING, SPACING])
    cavity = radius <= INNER_MM
    out, out_dense, changed = refine_boundary_2d(
        labels[None], dense[None], hu[None], cavity[None], trunk[None], spacing
    )
    out, out_dense = out[0], out_dense[0]
    rim = dense > 0
    assert not (out[rim & (radius > INNER_MM - 1.0)] > 0).any()  # nothing of the rim in or beyond the ribs
    assert (out[rim & (radius < INNER_MM - 3.0)] > 0).all()  # consolidation inside the pleura kept
    assert (out[(dense == 0) & (radius < OUTER_MM)] > 0).all()  # not dense-recovered: never cut
    assert not (out_dense & (out == 0)).any()
    assert changed["pleural_line_2d"] < 0 and changed["fill_holes_2d"] == 0
    same, _, changed = refine_boundary_2d(labels[None], dense[None], hu[None], None, trunk[None], spacing)
    assert (same[0] == labels).all() and changed == {}
    holed = labels.copy()
    holed[(radius > 40.0) & (radius < 42.0)] = 0  # a ring-shaped hole in the lung
    crop, _, changed = refine_boundary_2d(
        holed[None], dense[None], hu[None], np.ones((1, *hu.shape), dtype=bool), trunk[None], spacing
    )
    assert (crop[0] == holed).all() and changed == {name: 0 for name in BOUNDARY_RULE_NAMES}  # no cavity: a crop


def test_fill_holes_per_lung_not_between_the_lungs():
    """A hole inside one lung is filled with its label; the region enclosed only by the two lungs together (the
    mediastinum between two touching lungs) is not."""
    labels = np.zeros((60, 80), dtype=np.uint8)
    labels[10:50, 5:40] = RIGHT
    labels[10:50, 40:75] = LEFT
    labels[20:40, 30:50] = 0  # straddles both lungs: enclosed by the union only
    labels[25:30, 10:15] = 0  # a vessel inside the right lung
    filled = fill_holes_2d(labels)
    assert (filled[25:30, 10:15] == RIGHT).all()
    assert (filled[20:40, 30:50] == 0).all()


def _round_chest() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole axial slice for segment_lungs: the rib ring, a mediastinum and spine between two aerated lungs, and
    dependent consolidation (30 HU) against the posterior ribs of the right lung."""
    hu, radius, angle, trunk = _rib_ring()
    n = hu.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2.0
    x_mm, y_mm = (xx - c) * SPACING, (yy - c) * SPACING
    mediastinum = (np.abs(x_mm) < 25.0) & (radius < INNER_MM)
    hu[mediastinum] = 40.0
    hu[(np.abs(x_mm) < 14.0) & (y_mm > 60.0) & (y_mm < 90.0)] = 700.0  # vertebral body
    consolidation = (radius < INNER_MM) & (y_mm > 45.0) & (x_mm < -35.0)
    hu[consolidation] = 30.0
    return hu, consolidation, radius


def test_pleural_line_keeps_consolidation_against_the_ribs_on_a_whole_slice():
    """On a synthetic whole slice whose right lung has dependent consolidation against the posterior ribs, the rule
    takes nothing that lies more than 3 mm inside the ribs' inner surface and leaves no mask pixel in the ribs."""
    hu, consolidation, radius = _round_chest()
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((SPACING, SPACING))
    on = sitk.GetArrayFromImage(segment_lungs(image).labels)
    off = sitk.GetArrayFromImage(
        segment_lungs(image, parameters=LungParameters(disabled_rules=frozenset({"pleural_line_2d"}))).labels
    )
    deep = consolidation & (radius < INNER_MM - 3.0)
    assert (on[deep] > 0).sum() >= (off[deep] > 0).sum()  # the cut never reaches deeper than its margin
    assert not ((on > 0) & (hu >= 200)).any()


def test_partial_aeration_reaches_ground_glass_only_near_the_mask():
    """partial_aeration_2d: ground glass (-300 HU) beside the mask is lung within ``partial_reach_mm`` (5 mm) of it,
    not beyond; an airway lumen (-950 HU) behind a partial-volume wall is never joined; solid tissue (+40 HU) and
    pixels outside ``allowed`` (beyond the pleural line) are never taken."""
    spacing = np.array([0.7, 0.7])
    hu = np.full((120, 200), 40.0, dtype=np.float32)  # solid tissue
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[20:100, 10:60] = RIGHT
    hu[labels > 0] = -850.0
    hu[20:100, 60:120] = -300.0  # ground glass continuing 42 mm beyond the mask
    yy, xx = np.mgrid[0:120, 0:200]
    wall = np.hypot(yy - 60, xx - 67) <= 6  # partial-volume bronchial wall touching the mask side of the glass
    hu[wall] = -500.0
    lumen = np.hypot(yy - 60, xx - 67) <= 3
    hu[lumen] = -950.0
    allowed = np.ones(hu.shape, dtype=bool)
    allowed[:, 115:] = False
    grown = partial_aeration_2d(labels, hu, allowed, spacing)
    distance = (xx - 59) * 0.7  # mm beyond the mask's edge column
    assert grown[30:50, 60:66].all() and grown[72:90, 60:66].all()  # the first 4 mm of the glass
    assert not (grown & (distance > 5.0 + 0.75)).any()  # never beyond the reach (one pixel of diagonal slack)
    assert not (grown & lumen).any() and not (grown & (hu > -200)).any() and not (grown & ~allowed).any()
    far = partial_aeration_2d(labels, hu, allowed, spacing, params=LungParameters(partial_reach_mm=40.0))
    assert far[30:50, 60:115].all() and not far[:, 115:].any() and not (far & lumen).any()
