"""Dense-recovery rules of the 2-D path only (step 6d of :func:`~kicc_analysis.segmentation.lungs.segment_lungs`).

Single teaching slices and thin stacks (< 30 mm) have no neighbouring slices, so the 3-D rules (outline
interpolation, lung-base dome, gutter, recess) cannot see dense lung there; these rules (lungs-1.5) use the geometry
of one slice instead. :func:`~kicc_analysis.segmentation.lungs._recover_dense` calls them in this order:

1. **Mediastinum filter** (:func:`_mediastinum_2d`): the hull-deficit and sub-pleural cage rules keep nothing between
   the two aerated lungs' medial edges (row window +- 10 mm, at most 60 mm either side of the trunk midline;
   :func:`_mediastinum_edges`): a cage ray through the mediastinum meets the sternum or spine, not a rib, and took
   in the oesophagus, prevascular fat and hilar tissue.
2. **Dependent rule** (:func:`_recover_dependent_2d`): per lung and column, from the deepest (most posterior) lung
   pixel down to the posterior rib cage (first bone behind it, rolling minimum over 20 mm; bone = within 40 HU of
   the image maximum when that is below ``bone_hu``, as display-converted images clip bone at the window top:
   :func:`_cage_bone_2d`), minus 6 mm of pleura (:func:`_band_to_cage`), in posterior-half columns away from the
   vertebral body / aorta (:func:`_paravertebral_band`) and from the lung's medial and lateral edges; columns leaving
   the crop have no cage and are skipped; a band closing a ring around the heart is dropped (:func:`_no_new_holes`).
3. **Air-bronchogram rule** (:func:`_recover_bronchograms_2d`): a slice with at least five small air pockets enclosed
   in dense tissue (aerated bronchi inside consolidation) inside the thoracic cavity, outside the paravertebral /
   aortic band and the mediastinum (:func:`_between_lungs`), takes the dense tissue within 25 mm of them (more than
   6 mm from bone) as lung.

4. **Dependent consolidation inside the thoracic cavity** (lungs-1.8, :func:`_recover_dependent_cavity_2d`): soft
   tissue inside the cavity, behind the lung in its column with no lung behind it, outside the mediastinum and the
   paravertebral / aortic band.
5. **Posterior consolidation beside the spine** (lungs-1.9, :func:`_recover_posterior_2d`): partly aerated soft
   tissue (smoothed HU below -70, lungs-1.10) in the posterior half, lateral of the paravertebral line, reached from
   the lung.
6. **Mediastinal block filter** (lungs-1.9, :func:`_mediastinal_block_2d`): recovered tissue in the solid
   soft-tissue block between the lungs (hilum, great vessels), up to 25 mm beyond the zone between the aerated lungs,
   is taken back.
7. **Cage filter** (lungs-1.8, rule ``cage_2d``): everything recovered outside the thoracic cavity is taken back.

The **thoracic cavity** of an axial slice (:func:`thoracic_cavity_2d`, lungs-1.8) is fitted to the rib ring; before
the side split, aerated components mostly outside it (air in an arm, in an object on the chest) are dropped.
Tissue recovered by an earlier rule counts as lung of the nearest side (:func:`_with_recovered`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import LEFT, RIGHT, nearest_label, reach_along, vertebral_body
from .cavity_2d import posterior_rib_line, spine_rays
from .parameters import DEFAULT_PARAMETERS, LungParameters


def _mediastinum_2d(
    labels: np.ndarray, trunk: np.ndarray, spacing: np.ndarray, *, params: LungParameters = DEFAULT_PARAMETERS
) -> np.ndarray:
    """bool (z, y, x): per slice, the pixels between the two lungs' medial edges in their rows (mediastinum).

    Same geometry as :func:`_between_lungs` (row window +- ``bronchogram_rows_mm``, at most
    ``bronchogram_midline_mm`` either side of the trunk's mean x), from the aerated lung labels only. 2-D path: no
    recovered dense tissue lies there (oesophagus, prevascular fat, hilar vessels, sternum / spine side of a ray).
    """
    out = np.zeros(labels.shape, dtype=bool)
    xs = np.arange(labels.shape[2])[None, :]
    for z in range(labels.shape[0]):
        if not labels[z].any() or not trunk[z].any():
            continue
        midline = float(np.nonzero(trunk[z])[1].mean())
        r_edge, l_edge = _mediastinum_edges(
            labels[z], np.zeros(labels.shape[1:], dtype=bool), midline, spacing, params=params
        )
        out[z] = (xs > r_edge[:, None]) & (xs < l_edge[:, None])
    return out


def _mediastinum_edges(
    labels: np.ndarray,
    recovered: np.ndarray,
    midline: float,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of one slice: x of the right lung's most medial pixel and of the left lung's (see _between_lungs)."""
    ny, nx = labels.shape
    xs = np.arange(nx)[None, :]
    sides = _with_recovered(labels, recovered)
    right, left = sides == RIGHT, sides == LEFT
    r_edge = np.where(right.any(axis=1), np.where(right, xs, -1).max(axis=1), -1).astype(float)
    l_edge = np.where(left.any(axis=1), np.where(left, xs, nx).min(axis=1), nx).astype(float)
    size = 2 * max(1, int(round(params.bronchogram_rows_mm / spacing[1]))) + 1
    r_edge = ndimage.maximum_filter1d(r_edge, size, mode="nearest")
    l_edge = ndimage.minimum_filter1d(l_edge, size, mode="nearest")
    half = params.bronchogram_midline_mm / spacing[2]
    r_edge = np.maximum(r_edge, midline - half)  # the mediastinum is never assumed wider than +- half
    l_edge = np.minimum(l_edge, midline + half)
    return r_edge, l_edge


def _between_lungs(
    labels: np.ndarray,
    recovered: np.ndarray,
    points: np.ndarray,
    midline: float,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """For (y, x) points of one slice: True when the point lies between the two lungs (mediastinum) in its rows.

    Per row window (+- ``bronchogram_rows_mm``), the mediastinum spans from the right lung's most medial pixel to
    the left lung's; a side without lung in the window is replaced by the midline +- ``bronchogram_midline_mm``.
    """
    r_edge, l_edge = _mediastinum_edges(labels, recovered, midline, spacing, params=params)
    rows = np.clip(np.round(points[:, 0]).astype(int), 0, labels.shape[0] - 1)
    return (points[:, 1] > r_edge[rows]) & (points[:, 1] < l_edge[rows])


def _with_recovered(labels: np.ndarray, recovered: np.ndarray) -> np.ndarray:
    """Lung labels of one slice with the ``recovered`` pixels (outside ``labels``) given the nearest lung's label."""
    if not recovered.any():
        return labels
    nearest = nearest_label(labels[None], recovered[None])[0]
    return np.where(recovered, nearest, labels)


def _recover_dependent_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Dependent (posterior) consolidation of single slices: dense tissue between the lung and the posterior cage.

    Per column (x) of each slice and lung, the deepest lung pixel (largest y = most posterior) is found and the
    column is walked posteriorly, through non-bone tissue up to ``dependent_max_hu``, towards the posterior cage:
    the first bone pixel behind it (:func:`_cage_bone_2d`), as the rolling minimum depth over
    ``dependent_cage_window_mm`` (a column between two ribs takes the neighbouring ribs). Tissue more than
    ``dependent_margin_mm`` in front of the cage, at most ``dependent_max_depth_mm`` behind the lung, in bands of
    at least ``dependent_min_band_mm`` and ``dependent_min_columns`` columns wide, is lung. Only columns whose
    deepest lung pixel lies in the posterior half of the trunk (dependent lung) are walked, never columns near the
    vertebral body (``dependent_medial_mm``; ``dependent_aorta_mm`` on the left, descending aorta), in the medial
    ``dependent_lung_medial`` or lateral ``dependent_lung_lateral`` share of the lung's width (mediastinum; chest
    wall along the lung's lateral curve), nor columns without a cage (leaving a tight crop). A band that would
    enclose a new hole in the lung (a ring around the heart) is dropped (:func:`_no_new_holes`).

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 (z, y, x) lung labels on the working grid (thin stack).
    hu : numpy.ndarray
        Working-grid CT (HU).
    dense_ok : numpy.ndarray
        bool (z, y, x): soft-tissue-range voxels not yet recovered (only used to skip empty slices).
    trunk : numpy.ndarray
        bool (z, y, x) trunk mask.
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm.
    recovered : numpy.ndarray
        bool (z, y, x) voxels already recovered by the other rules (counted as lung).

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) recovered voxels.
    """
    out = np.zeros(labels.shape, dtype=bool)
    ny, nx = labels.shape[1:]
    xs = np.arange(nx)
    half = max(1, int(round(params.dependent_cage_window_mm / spacing[2] / 2)))
    margin = params.dependent_margin_mm / spacing[1]
    min_band = max(2.0, params.dependent_min_band_mm / spacing[1])
    depth = max(1, int(round(params.dependent_max_depth_mm / spacing[1])))
    for z in range(labels.shape[0]):
        bone = _cage_bone_2d(hu[z], trunk[z], params=params)
        if bone is None or not labels[z].any() or not dense_ok[z].any():
            continue
        midline = float(np.nonzero(trunk[z])[1].mean())
        band_lo, band_hi = _paravertebral_band(bone, trunk[z], spacing, midline, params=params)
        medial = (xs >= band_lo) & (xs <= band_hi)
        tys = np.nonzero(trunk[z])[0]
        centre_y = 0.5 * (tys.min() + tys.max())
        ok = trunk[z] & ~bone & (hu[z] <= params.dependent_max_hu)
        sides = _with_recovered(labels[z], recovered[z])
        any_lung = sides > 0
        for value in (RIGHT, LEFT):
            lung = sides == value
            if lung.sum() < 20:
                continue
            lxs = np.nonzero(lung)[1]
            width = float(lxs.max() - lxs.min() + 1)
            inner_side = xs > lxs.max() - params.dependent_lung_medial * width  # right lung: medial = larger x
            outer_side = xs < lxs.min() + params.dependent_lung_lateral * width
            if value == LEFT:
                inner_side = xs < lxs.min() + params.dependent_lung_medial * width
                outer_side = xs > lxs.max() - params.dependent_lung_lateral * width
            deepest = np.where(lung.any(axis=0), ny - 1 - np.argmax(lung[::-1], axis=0), -1)
            allowed = ~medial & ~inner_side & ~outer_side & (deepest >= centre_y)
            band = _band_to_cage(lung, bone, ok, allowed, half, margin, min_band, depth) & ~any_lung
            band = ndimage.binary_opening(band, structure=np.ones((1, params.dependent_min_columns), dtype=bool))
            out[z] |= _no_new_holes(any_lung, band)
    return out


def _cage_bone_2d(
    hu: np.ndarray, trunk: np.ndarray, *, params: LungParameters = DEFAULT_PARAMETERS
) -> np.ndarray | None:
    """Bone of one slice for the 2-D cage: >= ``bone_hu``, or near the saturated top of a display-converted image.

    Returns ``None`` when the image maximum is below ``dependent_min_top_hu`` (a window so low that muscle
    saturates like bone).
    """
    if not trunk.any():
        return None
    top = float(hu[trunk].max())
    if top < params.dependent_min_top_hu:
        return None
    bone = (hu >= min(params.bone_hu, top - params.dependent_bone_below_top_hu)) & trunk
    lab, n = ndimage.label(bone, structure=np.ones((3, 3)))
    if n == 0:
        return bone
    sizes = ndimage.sum_labels(bone, lab, np.arange(1, n + 1))
    return np.isin(lab, 1 + np.nonzero(sizes >= params.dependent_min_bone_px)[0])


def _paravertebral_band(
    bone: np.ndarray | None,
    trunk: np.ndarray,
    spacing: np.ndarray,
    midline: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[float, float]:
    """Column range (x, working-grid pixels) of the vertebral body and descending aorta in one slice (2-D rules).

    From ``dependent_medial_mm`` beyond the vertebral body's smaller-x (patient-right) edge to ``dependent_aorta_mm``
    beyond its larger-x (patient-left) edge, where the descending aorta lies beside the spine. Without bone or a
    vertebral body (:func:`vertebral_body`) the trunk ``midline`` (x index) stands in for the body.
    """
    vb = vertebral_body(bone, trunk, spacing, midline, params=params) if bone is not None else None
    right_edge, left_edge = (vb[2], vb[3]) if vb is not None else (int(round(midline)), int(round(midline)))
    return right_edge - params.dependent_medial_mm / spacing[2], left_edge + params.dependent_aorta_mm / spacing[2]


def _band_to_cage(
    lung: np.ndarray,
    bone: np.ndarray,
    ok: np.ndarray,
    allowed: np.ndarray,
    half: int,
    margin: float,
    min_band: float,
    depth: int,
) -> np.ndarray:
    """Tissue behind the lung (increasing row index) and in front of the cage, per column of a 2-D slice.

    Per column, the cage is the first ``bone`` pixel behind the last ``lung`` pixel, as a rolling minimum over
    ``2 * half + 1`` columns; pixels of ``ok`` reached from the lung through ``ok`` (at most ``depth`` pixels),
    more than ``margin`` pixels in front of the cage, in ``allowed`` columns whose band is at least ``min_band``
    pixels deep, are returned. Columns without a cage (leaving the image) give nothing.
    """
    n = lung.shape[0]
    index = np.arange(n)[:, None]
    has = lung.any(axis=0)
    deepest = np.where(has, n - 1 - np.argmax(lung[::-1], axis=0), -1)
    behind = bone & (index > deepest[None, :])
    first = np.where(behind.any(axis=0), np.argmax(behind, axis=0), 11 * n).astype(float)
    cage = ndimage.minimum_filter1d(first, 2 * half + 1, mode="nearest")
    inner = np.where(cage > n, -1.0, cage - margin)
    columns = has & allowed & (inner - deepest >= min_band)
    if not columns.any():
        return np.zeros(lung.shape, dtype=bool)
    reach = reach_along(lung, ok, axis=0, reverse=False, max_steps=depth)
    return reach & columns[None, :] & (index < inner[None, :])


def _no_new_holes(lung: np.ndarray, band: np.ndarray, max_hole_px: int = 0) -> np.ndarray:
    """Components of ``band`` (2-D) whose addition to ``lung`` encloses no new hole (a ring around the heart) larger
    than ``max_hole_px`` pixels (a solid spot inside consolidation)."""
    if not band.any():
        return band
    before = ndimage.binary_fill_holes(lung)
    comp, n = ndimage.label(band, structure=np.ones((3, 3)))
    keep = np.zeros(n + 1, dtype=bool)
    for i in range(1, n + 1):
        part = comp == i
        holes = ndimage.binary_fill_holes(lung | part) & ~before & ~part
        if max_hole_px > 0 and holes.any():
            hl, hn = ndimage.label(holes)
            keep[i] = bool(ndimage.sum_labels(holes, hl, np.arange(1, hn + 1)).max() <= max_hole_px)
        else:
            keep[i] = not holes.any()
    return keep[comp]


def _recover_bronchograms_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    air_threshold: float,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
    cavity: np.ndarray | None = None,
) -> np.ndarray:
    """Consolidated lung around air bronchograms (2-D thin stacks only).

    An air bronchogram is an aerated bronchus inside consolidated lung: on a single slice, a small air pocket
    (< ``air_threshold``, at most ``bronchogram_max_area_mm2``, not touching the image border, not lung) whose
    one-pixel ring is almost all dense tissue (``bronchogram_ring_dense``). Pockets near the vertebral body and
    descending aorta (the dependent rule's medial band), anterior of ``bronchogram_posterior`` or between the two
    lungs (:func:`_between_lungs`: oesophagus, main bronchi in the mediastinum) are not counted, nor pockets with less
    than ``bronchogram_cavity_share`` of their area inside the thoracic cavity (``cavity``: air in an arm or in an
    object on the chest is no bronchogram). When a slice holds at least ``bronchogram_min_count`` pockets before the
    mediastinum test (several bronchograms = a consolidated lobe; an isolated pocket is as often a hilar bronchus or
    the oesophagus), dense tissue within ``bronchogram_radius_mm`` of the accepted pockets, more than
    ``dependent_margin_mm`` from bone, is lung.

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 (z, y, x) lung labels on the working grid (thin stack).
    hu : numpy.ndarray
        Working-grid CT (HU).
    air_threshold : float
        Air-like below this (HU).
    dense_ok : numpy.ndarray
        bool (z, y, x): soft-tissue-range voxels not yet recovered.
    trunk : numpy.ndarray
        bool (z, y, x) trunk mask.
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm.
    recovered : numpy.ndarray
        bool (z, y, x) voxels already recovered by the other rules (counted as lung).
    cavity : numpy.ndarray, optional
        bool (z, y, x) thoracic cavity per slice (all True where no cage was found); ``None``: no cavity test.

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) recovered voxels (air pockets included).
    """
    out = np.zeros(labels.shape, dtype=bool)
    pixel_mm2 = float(spacing[1] * spacing[2])
    for z in range(labels.shape[0]):
        lung = (labels[z] > 0) | recovered[z]
        if not lung.any() or not trunk[z].any():
            continue
        bone = _cage_bone_2d(hu[z], trunk[z], params=params)
        midline = float(np.nonzero(trunk[z])[1].mean())
        band_lo, band_hi = _paravertebral_band(bone, trunk[z], spacing, midline, params=params)
        tys = np.nonzero(trunk[z])[0]
        posterior_y = 0.5 * (tys.min() + tys.max()) + params.bronchogram_posterior * 0.5 * (tys.max() - tys.min())
        air = (hu[z] < air_threshold) & trunk[z] & ~lung
        comp, n = ndimage.label(air, structure=np.ones((3, 3)))
        if n < params.bronchogram_min_count:
            continue
        index = np.arange(1, n + 1)
        area = ndimage.sum_labels(air, comp, index) * pixel_mm2
        centres = np.array(ndimage.center_of_mass(air, comp, index)).reshape(-1, 2)
        border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
        ring = ndimage.binary_dilation(air, structure=np.ones((3, 3))) & ~air
        owner = ndimage.grey_dilation(comp, size=(3, 3))  # ring pixel -> (one of) the pocket(s) it surrounds
        dense_share = np.nan_to_num(np.asarray(ndimage.mean(dense_ok[z][ring], owner[ring], index), dtype=float))
        cx = centres[:, 1]
        medial = (cx >= band_lo) & (cx <= band_hi)
        pockets = (
            (area <= params.bronchogram_max_area_mm2)
            & ~np.isin(index, border)
            & (dense_share >= params.bronchogram_ring_dense)
        )
        pockets &= ~medial & (centres[:, 0] >= posterior_y)
        if cavity is not None and not cavity[z].all():  # air outside the rib cage is no bronchogram
            pockets &= np.asarray(ndimage.mean(cavity[z], comp, index), dtype=float) >= params.bronchogram_cavity_share
        if pockets.sum() < params.bronchogram_min_count:
            continue
        pockets &= ~_between_lungs(labels[z], recovered[z], centres, midline, spacing, params=params)
        seeds = np.isin(comp, index[pockets])
        near = ndimage.distance_transform_edt(~seeds, sampling=spacing[1:]) <= params.bronchogram_radius_mm
        region = (near & dense_ok[z]) | seeds
        if bone is not None:
            region &= ndimage.distance_transform_edt(~bone, sampling=spacing[1:]) > params.dependent_margin_mm
        out[z] = region & ~lung
    return out


def thoracic_cavity_2d(
    hu: np.ndarray,
    trunk: np.ndarray,
    lungs: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray | None:
    """The thoracic cavity of one axial slice: pixels inside the rib cage (bool (y, x)), or ``None`` without a cage.

    Rays (``n_rays``) are cast from the point on the trunk's mean x (midline) at the aerated lungs' centre row. On
    each ray that meets the aerated lung (``lungs``: only
    components with at least a fifth of the largest one's area, so an air pocket in an arm or an object on the
    chest does not move the cage) the cage is the first bone pixel (:func:`_cage_bone_2d`) beyond the outermost lung
    pixel; rays without a hit (between two ribs, through the mediastinum, through consolidated lung) take it
    interpolated in angle from the rays with one, and the radii are smoothed by a running median over
    ``cavity_median_deg`` (a humerus or scapula seen through an intercostal gap, the spine, do not count). Rule
    ``cavity_rib_line_2d`` (:func:`~kicc_analysis.segmentation.cavity_2d.posterior_rib_line`): posterior rays
    without a rib hit take the rib line interpolated between the neighbouring posterior rib hits instead of the
    smooth ring, which the vertebral body pulls inside the posterior ribs (not where the added tissue is water
    density: pleural effusion). The cavity is the star-shaped region inside that radius. ``None`` for a tight crop (the trunk covers more than
    ``cavity_max_border_share`` of the image border) unless rule ``cavity_fov_2d`` finds the rib ring closed inside
    the field (:func:`_ring_closed_in_field`: the arms or the soft tissue cut by the edge, the lungs not), and when
    fewer than ``cavity_min_hit_share`` of the rays meeting lung hit bone (no visible cage, e.g. a window so low
    that muscle saturates like bone).

    Parameters
    ----------
    hu : numpy.ndarray
        Working-grid slice (y, x), HU.
    trunk : numpy.ndarray
        bool (y, x) trunk mask.
    lungs : numpy.ndarray
        bool (y, x) aerated lung candidates (airways removed).
    spacing : numpy.ndarray
        Working spacing (z, y, x) or (y, x) in mm.

    Returns
    -------
    numpy.ndarray or None
        bool (y, x) cavity.
    """
    spacing_yx = np.asarray(spacing, dtype=float)[-2:]
    if not trunk.any() or not lungs.any():
        return None
    edge = np.concatenate([trunk[0], trunk[-1], trunk[:, 0], trunk[:, -1]])
    touches = edge.mean() > params.cavity_max_border_share
    if touches and not params.rule_enabled("cavity_fov_2d"):
        return None  # a tight crop through the body (teaching image): arms and the table are not in the field
    bone = _cage_bone_2d(hu, trunk, params=params)
    if bone is None or not bone.any():
        return None
    comp, n = ndimage.label(lungs, structure=np.ones((3, 3)))
    sizes = ndimage.sum_labels(lungs, comp, np.arange(1, n + 1))
    major = np.isin(comp, 1 + np.nonzero(sizes >= 0.2 * sizes.max())[0])
    ny, nx = hu.shape
    n_rays = params.n_rays
    yy, xx = np.mgrid[0:ny, 0:nx]
    # rays from the lungs' centre row (arms do not shift it) on the trunk's midline (a consolidated lung does not
    # shift it towards the aerated one)
    cy = ndimage.center_of_mass(major)[0]
    cx = float(np.nonzero(trunk)[1].mean())
    pixel_mm = float(np.sqrt(spacing_yx[0] * spacing_yx[1]))
    radius = np.hypot((yy - cy) * spacing_yx[0], (xx - cx) * spacing_yx[1]) / pixel_mm
    ray = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * n_rays).astype(int) % n_rays
    r_lung = np.full(n_rays, -1.0)
    np.maximum.at(r_lung, ray[major], radius[major])
    r_trunk = np.zeros(n_rays)
    np.maximum.at(r_trunk, ray[trunk], radius[trunk])
    inner = np.maximum(r_lung, params.cavity_inner_share * r_trunk)
    near = bone & (radius > inner[ray])
    r_bone = np.full(n_rays, np.inf)
    np.minimum.at(r_bone, ray[near], radius[near])
    found = np.isfinite(r_bone)
    if found.sum() < max(8, params.cavity_min_hit_share * (r_lung >= 0).sum()):
        return None
    rays = np.arange(n_rays)
    theta = (rays + 0.5) / n_rays * 2 * np.pi
    window = max(3, int(round(params.cavity_median_deg / 360.0 * n_rays)) | 1)
    model = _periodic_fit(theta[found], r_bone[found], params.cavity_harmonics, params.cavity_band, theta)
    # second pass: on every ray the innermost bone within the band around the fitted ring, else the ring itself
    ring = model[ray]
    in_band = bone & (np.abs(radius - ring) <= params.cavity_band * ring)
    hit = np.full(n_rays, np.inf)
    np.minimum.at(hit, ray[in_band], radius[in_band])
    cage = np.where(np.isfinite(hit), hit, model)
    if not params.rule_enabled("cavity_rib_line_2d"):
        cage = ndimage.median_filter(cage, size=window, mode="wrap")
    else:  # posteriorly the ring follows the rib line, not the vertebral body (cavity_2d.py)
        spine = spine_rays(bone, trunk, near, ray, radius, r_bone, spacing, cx, cy, params=params)
        sigma = params.block_sigma_mm / spacing_yx
        smooth = ndimage.gaussian_filter(hu.astype(float), sigma)
        cage = posterior_rib_line(cage, hit, theta, spine, window, smooth, bone, ray, radius, params=params)
    if touches and not _ring_closed_in_field(hu, trunk, major, hit, cage, ray, radius, pixel_mm, params):
        return None  # a tight crop through the lungs (teaching image): the ring leaves the field
    return (radius <= cage[ray]) & trunk


def _ring_closed_in_field(
    hu: np.ndarray,
    trunk: np.ndarray,
    major: np.ndarray,
    hit: np.ndarray,
    cage: np.ndarray,
    ray: np.ndarray,
    radius: np.ndarray,
    pixel_mm: float,
    params: LungParameters,
) -> bool:
    """Rule ``cavity_fov_2d``: is the rib ring of a slice whose trunk touches the image border closed inside it?

    True when the slice holds bone in HU (trunk maximum >= ``bone_hu``: not a display image whose window top clips
    bone, where the cage is the clipped top and less certain), the aerated lung (``major``) touches no image
    border, at least ``cavity_fov_min_ring_hits`` of the
    rays meet bone near the ring (``hit`` finite) and the ring radius (``cage``, pixels) lies at least
    ``cavity_fov_margin_mm`` inside the image border on at least ``cavity_fov_inside_share`` of the rays: an arm
    or the soft tissue cut by the edge, not the cage (ICU patients, arms beside the chest).
    """
    if not params.rule_enabled("cavity_fov_2d") or float(hu[trunk].max()) < params.bone_hu:
        return False
    n_rays = cage.size
    r_field = np.zeros(n_rays)
    np.maximum.at(r_field, ray.ravel(), radius.ravel())  # image border radius per ray
    inside = cage <= r_field - params.cavity_fov_margin_mm / pixel_mm
    if np.concatenate([major[0], major[-1], major[:, 0], major[:, -1]]).any():
        return False
    return bool(
        np.isfinite(hit).mean() >= params.cavity_fov_min_ring_hits and inside.mean() >= params.cavity_fov_inside_share
    )


def _periodic_fit(theta: np.ndarray, radius: np.ndarray, harmonics: int, band: float, at: np.ndarray) -> np.ndarray:
    """A smooth closed curve r(angle) (Fourier series up to ``harmonics``) fitted to (``theta``, ``radius``) points
    by least squares, refitted twice without the points off by more than ``band`` (share of the fitted radius);
    returns its radius at the angles ``at`` (radians)."""

    def design(t: np.ndarray) -> np.ndarray:
        columns = [np.ones_like(t)]
        for k in range(1, harmonics + 1):
            columns += [np.cos(k * t), np.sin(k * t)]
        return np.stack(columns, axis=1)

    keep = np.ones(theta.size, dtype=bool)
    coef = np.zeros(2 * harmonics + 1)
    coef[0] = float(np.median(radius))
    for _ in range(3):
        if keep.sum() < 2 * harmonics + 2:
            break
        coef = np.linalg.lstsq(design(theta[keep]), radius[keep], rcond=None)[0]
        keep = np.abs(radius - design(theta) @ coef) <= band * (design(theta) @ coef)
    return design(at) @ coef


def _recover_dependent_cavity_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    cavity: np.ndarray | None,
    spacing: np.ndarray,
    recovered: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Dependent consolidation of single axial slices inside the thoracic cavity (rule ``dependent_cavity_2d``).

    Per slice with a cavity (:func:`thoracic_cavity_2d`): soft tissue (``dense_ok``, not recovered yet) at least
    ``cavity_pleura_mm`` inside the cage, in the posterior half of the cavity, with lung (aerated or recovered) in
    front of it in its column and none behind it (the dependent lung lies on the posterior ribs; the liver or
    spleen dome of a base slice has the lung's posterior recess behind it), not in the vertebral body / descending
    aorta band (:func:`_paravertebral_band`) nor between the two lungs (:func:`_between_lungs`, mediastinum), in
    components touching the lung and holding no new hole (:func:`_no_new_holes`), is lung.

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) recovered voxels.
    """
    out = np.zeros(labels.shape, dtype=bool)
    if cavity is None:
        return out
    ny, nx = labels.shape[1:]
    rows = np.arange(ny)[:, None]
    xs = np.arange(nx)
    for z in range(labels.shape[0]):
        if cavity[z].all() or not labels[z].any() or not dense_ok[z].any():
            continue
        lung = (labels[z] > 0) | recovered[z]
        inner = ndimage.distance_transform_edt(cavity[z], sampling=spacing[1:]) > params.cavity_pleura_mm
        cys = np.nonzero(cavity[z])[0]
        posterior = rows >= 0.5 * (cys.min() + cys.max())
        in_front = np.maximum.accumulate(lung, axis=0)
        behind = np.maximum.accumulate(lung[::-1], axis=0)[::-1]
        candidate = dense_ok[z] & ~lung & inner & posterior & in_front & ~behind
        if not candidate.any():
            continue
        bone = _cage_bone_2d(hu[z], trunk[z], params=params)
        midline = float(np.nonzero(cavity[z])[1].mean())
        band_lo, band_hi = _paravertebral_band(bone, trunk[z], spacing, midline, params=params)
        candidate &= ~((xs >= band_lo) & (xs <= band_hi))[None, :]
        points = np.argwhere(candidate).astype(float)
        if points.size:
            between = _between_lungs(labels[z], recovered[z], points, midline, spacing, params=params)
            candidate[tuple(points[between].astype(int).T)] = False
        comp, n = ndimage.label(candidate, structure=np.ones((3, 3)))
        if n == 0:
            continue
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=np.ones((3, 3))) & (comp > 0)])
        band = np.isin(comp, touching[touching > 0])
        out[z] = _no_new_holes(lung, band)
    return out


def _mediastinal_block_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    trunk: np.ndarray,
    cavity: np.ndarray | None,
    spacing: np.ndarray,
    recovered: np.ndarray | None = None,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """bool (z, y, x): per axial slice, the mediastinal soft-tissue block (filter ``mediastinal_block_2d``).

    Solid soft tissue is where the CT smoothed by a Gaussian of ``block_sigma_mm`` is at least ``block_min_hu``
    (heart, great vessels, hilar vessels, oesophagus, mediastinal fat with partial volume), outside the aerated lung
    and, when the slice has one, inside the thoracic cavity. After an opening of radius ``block_opening_mm`` (thin
    strands of dense lung do not connect), its components that reach the seed zone are the block, grown back by the
    opening and kept within ``block_reach_mm`` of the seed zone. The seed zone is the zone between the two aerated
    lungs (:func:`_mediastinum_2d`) in rows with aerated lung on both sides (within +- ``bronchogram_rows_mm``) or in
    front of the vertebral body (the trunk's centre row without one): beside the vertebral body lies dependent lung.
    A recovered component (8-connected) with at least ``block_component_share`` of its pixels in the block is taken
    back whole (a hilar vessel with its lung-side partial-volume rim). Recovered dense tissue in the block is hilum or
    mediastinum, not lung: the single-slice rules (hull deficit, rib cage, air bronchograms) take it in when the lung
    beside the mediastinum is consolidated. Consolidation with no air left that touches the mediastinum is taken
    back too (HU cannot separate them).

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) pixels to take out of the recovered tissue.
    """
    out = np.zeros(labels.shape, dtype=bool)
    zone = _mediastinum_2d(labels, trunk, spacing, params=params)
    sigma = params.block_sigma_mm / np.asarray(spacing[1:], dtype=float)
    radius = params.block_opening_mm / np.asarray(spacing[1:], dtype=float)
    ry, rx = (int(np.ceil(r)) for r in radius)
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disk = (yy / max(radius[0], 1e-6)) ** 2 + (xx / max(radius[1], 1e-6)) ** 2 <= 1.0
    rows_window = 2 * max(1, int(round(params.bronchogram_rows_mm / float(spacing[1])))) + 1
    for z in range(labels.shape[0]):
        if trunk[z].any():
            # seed rows: aerated lung on both sides (the zone between their edges), or in front of the vertebral
            # body (the mediastinum; beside the vertebral body lies dependent lung)
            both = ndimage.maximum_filter1d((labels[z] == RIGHT).any(axis=1), rows_window) & (
                ndimage.maximum_filter1d((labels[z] == LEFT).any(axis=1), rows_window)
            )
            bone = _cage_bone_2d(hu[z], trunk[z], params=params)
            midline = float(np.nonzero(trunk[z])[1].mean())
            vb = vertebral_body(bone, trunk[z], spacing, midline, params=params) if bone is not None else None
            tys = np.nonzero(trunk[z])[0]
            front = 2 * vb[0] - vb[4] if vb is not None else 0.5 * (tys.min() + tys.max())
            zone[z] &= (both | (np.arange(labels.shape[1]) < front))[:, None]
        if not labels[z].any() or not zone[z].any():
            continue
        smooth = ndimage.gaussian_filter(hu[z].astype(float), sigma)
        solid = trunk[z] & (smooth >= params.block_min_hu) & (labels[z] == 0)
        if cavity is not None and not cavity[z].all():
            solid &= cavity[z]
        core = ndimage.binary_opening(solid, structure=disk)
        comp, n = ndimage.label(core, structure=np.ones((3, 3)))
        if n == 0:
            continue
        hit = np.unique(comp[zone[z] & core])
        block = np.isin(comp, hit[hit > 0])
        block = ndimage.binary_dilation(block, structure=disk) & solid  # the opening's rim back
        if params.block_reach_mm > 0:  # only this far beyond the zone between the aerated lungs
            seed = zone[z] & solid
            near = ndimage.distance_transform_edt(~seed, sampling=spacing[1:]) <= params.block_reach_mm
            block &= near
        if recovered is not None and params.block_component_share < 1.0 and block.any():
            # a recovered component mostly in the block is the hilar vessel itself, its lung-side rim included
            comp_r, n_r = ndimage.label(recovered[z], structure=np.ones((3, 3)))
            if n_r:
                index = np.arange(1, n_r + 1)
                share = np.asarray(ndimage.mean(block, comp_r, index), dtype=float)
                block = block | np.isin(comp_r, index[share >= params.block_component_share])
        out[z] = block
    return out


def _recover_posterior_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    cavity: np.ndarray | None,
    spacing: np.ndarray,
    recovered: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Posterior (dependent) consolidation beside the spine on single axial slices (rule ``posterior_2d``).

    Per slice with a thoracic cavity: soft tissue (``dense_ok``, not recovered yet) in the posterior half of the
    trunk, lateral of the paravertebral line (``posterior_spine_mm`` beyond the vertebral body; without one, beyond
    the trunk midline), more than ``dependent_margin_mm`` from bone, whose smoothed HU (:func:`_mediastinal_block_2d`
    smoothing) stays below ``posterior_max_smooth_hu`` (partly aerated consolidation; muscle, fat planes and the
    pleura with its partial volume are solid), reached from the lung (aerated or recovered) through such tissue within
    ``posterior_reach_mm``, holding no new hole (:func:`_no_new_holes`), is lung.
    """
    out = np.zeros(labels.shape, dtype=bool)
    if cavity is None:
        return out
    ny, nx = labels.shape[1:]
    rows = np.arange(ny)[:, None]
    xs = np.arange(nx)[None, :]
    sigma = params.block_sigma_mm / np.asarray(spacing[1:], dtype=float)
    steps = max(1, int(round(params.posterior_reach_mm / float(spacing[1]))))
    for z in range(labels.shape[0]):
        if cavity[z].all() or not labels[z].any() or not dense_ok[z].any():
            continue
        bone = _cage_bone_2d(hu[z], trunk[z], params=params)
        if bone is None or not bone.any():
            continue
        midline = float(np.nonzero(trunk[z])[1].mean())
        vb = vertebral_body(bone, trunk[z], spacing, midline, params=params)
        right_edge, left_edge = (vb[2], vb[3]) if vb is not None else (midline, midline)
        spine = params.posterior_spine_mm / spacing[2]
        tys = np.nonzero(trunk[z])[0]
        posterior = rows >= 0.5 * (tys.min() + tys.max())
        lateral = (xs < right_edge - spine) | (xs > left_edge + spine)
        smooth = ndimage.gaussian_filter(hu[z].astype(float), sigma)
        far = ndimage.distance_transform_edt(~bone, sampling=spacing[1:]) > params.dependent_margin_mm
        lung = (labels[z] > 0) | recovered[z]
        candidate = dense_ok[z] & ~lung & posterior & lateral & far & (smooth < params.posterior_max_smooth_hu)
        if not candidate.any():
            continue
        grown = ndimage.binary_dilation(lung, structure=np.ones((3, 3)), iterations=steps, mask=candidate | lung)
        band = grown & candidate
        if params.posterior_min_thickness_px > 1:  # not the partial-volume rim along the pleura
            size = params.posterior_min_thickness_px
            band = ndimage.binary_opening(band, structure=np.ones((size, size), dtype=bool))
        max_hole = int(params.posterior_max_hole_mm2 / float(spacing[1] * spacing[2]))
        out[z] = _no_new_holes(lung, band, max_hole)
    return out
