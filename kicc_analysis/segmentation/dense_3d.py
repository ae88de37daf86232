"""Dense-recovery rules of the 3-D path only (step 6e of :func:`~kicc_analysis.segmentation.lungs.segment_lungs`).

A volume has neighbouring slices, so the diaphragm dome, the spine and the lung base can be modelled. Thin stacks
(< 30 mm) never reach these rules. :func:`~kicc_analysis.segmentation.lungs._recover_dense` calls them in this order,
each on the soft-tissue voxels (-400..+150 HU) not recovered yet:

1. **Lung base** (:func:`_recover_lung_base`, lungs-1.3): models the diaphragm. Per lung, a quadratic dome
   (:func:`_fit_dome`) is fitted to the lower envelope of the lowest lung voxel of every (y, x) column; dense voxels
   between the dome and the base of posterior columns raised 5-40 mm above it (:func:`_raised_columns`:
   consolidation lying on the diaphragm has no aerated lung below it), at least 20 mm from the midline (vertebral
   body, aorta), touching the lung, are lung. Only when the whole lung is in the scan (at least 120 mm high; the
   first and last slice hold at most 10 % of its largest cross-section). Pleural effusion lying on the diaphragm is
   included like consolidation (HU cannot tell them apart).
2. **Paravertebral gutter** (:func:`_recover_gutter`, lungs-1.4): per slice the vertebral body is found
   (:func:`~kicc_analysis.segmentation._common._vertebral_body`: thickest bone near the midline in the posterior half
   of the trunk); a dense pocket up to 25 mm lateral of it, between its centre and its posterior edge, is lung when
   it is enclosed by that lung laterally (reached row by row) and by the rib head / vertebra behind it (reached
   column by column, at most 25 mm), is more than 4 mm from bone and is thicker than two pixels.
3. **Costophrenic recess** (:func:`_recover_consolidated_base` -> :func:`_recover_recess`, lungs-1.5): a lung base
   consolidated over its whole depth. Below a lung's largest cross-section, a gap of at most 90 degrees (outside the
   anterior 60 degrees) between rays of one slice that meet the lung gets the lung's radial extent interpolated
   between the two rays bounding it (outer edge out to the rib cage when within 10 mm); dense voxels there under the
   lung of the slice above (a base only narrows caudally), at least 20 mm from the midline, more than 4 mm from bone,
   thicker than two pixels and touching the lung are lung. No HU step between organ and consolidation is used (see
   docs/ct_development_log.md, lungs-1.5 trial log, for the rejected base-layer rule).

4. **Halo gate** (:func:`_with_abnormal_halo`, lungs-1.6; ``segment_lungs(..., halo_gate=False)`` switches it
   off): a filter on what the two rules that reach along the chest wall and across the heart and hila -- the
   rib-cage band and the outline interpolation (``_common.py``) -- recovered. Per slice, a recovered component is
   kept when at least 30 % of the aerated lung in the ring just beyond 3 mm from it (nearer pixels skipped:
   partial volume) is denser than -700 HU (ground glass, partly aerated lung), or when no aerated lung lies in that
   ring; otherwise its rib-cage-band and interpolated voxels are dropped. COVID-19 consolidation lies in diseased
   lung; the pericardial fat, heart border, hilar vessels and chest-wall rim those rules also take in border normal
   lung. No HU of the dense tissue itself is used. On the healthy real ct64, what ``quantify`` counts as
   consolidation falls from 97 to 18 mL (10 mL on the CIP mask; Dice vs CIP 0.977 -> 0.986); on the COVID phantoms
   the consolidation voxels outside the true lung fall from 815 / 983 / 716 to 90 / 269 / 114 (seeds 0 / 1 / 3)
   while the consolidation inside the mask goes from 0.599 / 0.570 / 0.684 to 0.591 / 0.562 / 0.678. Pure
   consolidation against normal lung (no ground glass around it) is dropped too: see docs/ct.md, Known limitations.

The other 3-D-only rule, abdominal gas (step 2), filters the air candidate rather than recovering dense lung: see
:func:`~kicc_analysis.segmentation.lungs._drop_abdominal_gas`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import LEFT, RIGHT, STRUCT_3D, reach_along, side_of_components, thick_part, vertebral_body
from .parameters import DEFAULT_PARAMETERS, LungParameters


def _recover_lung_base(
    labels: np.ndarray,
    dense_ok: np.ndarray,
    spacing: np.ndarray,
    body_x: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Dense lung lying on the diaphragm: raised columns are filled down to the modelled dome (3-D path only).

    Per lung, the lowest lung voxel of every (y, x) column gives the base height; a smooth dome (:func:`_fit_dome`)
    models the diaphragm under aerated lung. In the columns whose base lies clearly above the dome
    (:func:`_raised_columns`; consolidation on the diaphragm has no aerated lung below it), dense voxels between
    the dome and the base, in 3-D components touching the lung, are lung. Skipped when the first or last slice
    holds more than 10 % of the largest lung cross-section (lung cut by the scan range: base or apex missing) or
    the lung is shorter than ``base_min_lung_height_mm`` (lung bases of an abdominal CT: no dome to model).
    """
    nz = labels.shape[0]
    recovered = np.zeros(labels.shape, dtype=bool)
    if nz < 3:
        return recovered
    z_mm = np.arange(nz)[:, None, None] * spacing[0]
    for value in (RIGHT, LEFT):
        lung = labels == value
        footprint = lung.any(axis=0)
        if footprint.sum() < 12:
            continue
        area = lung.sum(axis=(1, 2))
        z_lung = np.nonzero(area)[0]
        height_mm = (z_lung[-1] - z_lung[0] + 1) * spacing[0]
        if max(area[0], area[-1]) > 0.1 * area.max() or height_mm < params.base_min_lung_height_mm:
            continue
        base = np.argmax(lung, axis=0)  # lowest lung slice of each column
        ys, xs = np.nonzero(footprint)
        dome = np.full(footprint.shape, np.inf)
        dome[ys, xs] = _fit_dome(base[ys, xs] * spacing[0], ys * spacing[1], xs * spacing[2], params=params)
        base_mm = np.where(footprint, base * spacing[0], -np.inf)
        columns = _raised_columns(footprint, base_mm - dome, spacing, float(np.median(body_x)), params=params)
        if not columns.any():
            continue
        candidate = (z_mm >= dome[None]) & (z_mm < base_mm[None]) & columns[None] & dense_ok & (labels == 0)
        comp, _ = ndimage.label(candidate, structure=STRUCT_3D)
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=STRUCT_3D) & (comp > 0)])
        recovered |= np.isin(comp, touching[touching > 0])
    return recovered


def _dome_design(ys_mm: np.ndarray, xs_mm: np.ndarray, *, params: LungParameters = DEFAULT_PARAMETERS) -> np.ndarray:
    """Design matrix of the dome model: all monomials y^i x^j, i + j <= ``base_fit_degree`` (y, x centred, dm)."""
    yc = (ys_mm - float(np.mean(ys_mm))) / 100.0  # decimetres: keeps the least-squares system well conditioned
    xc = (xs_mm - float(np.mean(xs_mm))) / 100.0
    terms = [yc**i * xc**j for i in range(params.base_fit_degree + 1) for j in range(params.base_fit_degree + 1 - i)]
    return np.stack(terms, axis=-1)


def _fit_dome(
    base_mm: np.ndarray, ys_mm: np.ndarray, xs_mm: np.ndarray, *, params: LungParameters = DEFAULT_PARAMETERS
) -> np.ndarray:
    """Lower-envelope fit of the lung base height (mm) over the lung footprint; returns the dome height (mm).

    Asymmetric iteratively reweighted least squares: columns whose base lies above the current surface (raised by
    consolidation lying on the diaphragm, or by the heart) get weight ``base_fit_asymmetry``, columns below it
    ``1 - base_fit_asymmetry``, so the surface follows the part of the dome that carries aerated lung.
    """
    design = _dome_design(ys_mm, xs_mm, params=params)
    weights = np.ones_like(base_mm)
    for _ in range(params.base_fit_iterations):
        sw = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], base_mm * sw, rcond=None)
        dome = design @ coef
        weights = np.where(base_mm > dome, params.base_fit_asymmetry, 1.0 - params.base_fit_asymmetry)
    return dome


def _raised_columns(
    footprint: np.ndarray,
    raise_mm: np.ndarray,
    spacing: np.ndarray,
    midline_x: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """(y, x) columns of one lung whose base is raised above the dome by a dependent, sub-pleural dense layer.

    Raised by ``base_raised_mm`` ... ``base_max_raise_mm`` (higher: apex or mediastinal overhang), posterior half of
    the footprint (the heart sits on the anterior diaphragm), at least ``base_midline_mm`` from the midline
    (vertebral body, aorta), at least three columns wide (a rim column clips the curved lung wall high) and
    reaching the rim of the footprint (sub-pleural: against the chest wall).
    """
    ny, nx = footprint.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ys = np.nonzero(footprint)[0]
    columns = footprint & (raise_mm >= params.base_raised_mm) & (raise_mm <= params.base_max_raise_mm)
    columns &= yy >= ys.mean()
    columns &= np.abs(xx - midline_x) * spacing[2] >= params.base_midline_mm
    columns = ndimage.binary_opening(columns, structure=np.ones((3, 3), dtype=bool))
    rim = footprint & ~ndimage.binary_erosion(footprint, iterations=2)
    comp, _ = ndimage.label(columns)
    keep = np.unique(comp[rim & (comp > 0)])
    return np.isin(comp, keep[keep > 0])


def _recover_gutter(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    body_x: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Dense lung filling the paravertebral gutter (posterior costovertebral recess), 3-D path only.

    Per slice the vertebral body is located (:func:`vertebral_body`). The gutter of each lung is the band up to
    ``gutter_width_mm`` lateral of the body's lateral edge, between the body's centre and its posterior edge (the
    descending aorta and the azygos vein lie antero-lateral, in front of the centre; the paravertebral muscles lie
    behind the rib heads and transverse processes). A dense pocket there is lung when it is enclosed: reached
    medially, row by row, from that lung lying lateral of it, and anteriorly, column by column, from the rib head or
    vertebra behind it (at most ``gutter_depth_mm``), through dense voxels only. Voxels within
    ``cage_margin_3d_mm`` of bone (pleura, periosteum, intercostal vessels) are never lung, and only pockets thicker
    than two pixels are kept (:func:`thick_part`; the corner triangles left by the partial-volume boundary are
    neither lung nor consolidation).
    """
    nx = labels.shape[2]
    recovered = np.zeros(labels.shape, dtype=bool)
    depth = max(1, int(round(params.gutter_depth_mm / spacing[1])))
    width = max(1, int(round(params.gutter_width_mm / spacing[2])))
    bone = (hu >= params.bone_hu) & trunk
    for z in np.nonzero(labels.any(axis=(1, 2)))[0]:
        vb = vertebral_body(bone[z], trunk[z], spacing, float(body_x[z]), params=params)
        if vb is None:
            continue
        cy, _, left, right, back = vb
        pad = int(np.ceil(params.cage_margin_3d_mm / min(spacing[1], spacing[2]))) + 1
        # rows that matter: the gutter rows plus the reach of the rib behind them (and bone just around them)
        ya, yb = max(0, cy - pad), min(labels.shape[1], back + depth + 2)
        for value in (RIGHT, LEFT):
            # gutter columns [x0, x1) next to the body (the right lung has the smaller x, LPS); the analysed band
            # [xa, xb) extends one gutter width further out so that the lung lateral of the gutter is seen
            if value == RIGHT:
                x0, x1 = max(0, left - width), left
                xa, xb = max(0, x0 - width), x1
            else:
                x0, x1 = right + 1, min(nx, right + 1 + width)
                xa, xb = x0, min(nx, x1 + width)
            if x1 <= x0:
                continue
            window = (z, slice(ya, yb), slice(xa, xb))
            lung = labels[window] == value
            ok = dense_ok[window] & (labels[window] == 0)
            reach = reach_along(lung, ok, axis=1, reverse=value == LEFT, max_steps=width)
            reach[: cy - ya] = False
            reach[back + 1 - ya :] = False
            if not reach.any():
                continue
            reach &= reach_along(bone[window], ok, axis=0, reverse=True, max_steps=depth)
            # distance to bone within the window padded by the margin (bone just outside the band counts too)
            pa, pb = max(0, xa - pad), min(nx, xb + pad)
            far = (
                ndimage.distance_transform_edt(~bone[z, ya:yb, pa:pb], sampling=spacing[1:]) > params.cage_margin_3d_mm
            )
            reach = thick_part(reach & far[:, xa - pa : xb - pa])
            recovered[z, ya:yb, x0:x1] |= reach[:, x0 - xa : x1 - xa]
    return recovered


def _recover_consolidated_base(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """lungs-1.5 (3-D path only): a lung base consolidated over its whole depth, after the other dense rules.

    The costophrenic recess (:func:`_recover_recess`: angular gaps of a base slice's lung crescent). ``recovered``
    (voxels accepted by the other rules) counts as lung, on the side of the nearest lung; only new voxels are
    returned.
    """
    current = side_of_components(labels, recovered)
    return _recover_recess(current, hu, dense_ok, trunk, spacing, params=params)


def _gap_runs(has: np.ndarray, allowed: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Circular runs of rays without lung, bounded by lung rays on both sides: (first ray, run length).

    Only runs of at most ``max_len`` rays whose rays are all ``allowed`` are returned.
    """
    n = has.size
    if has.all() or not has.any():
        return []
    start = int(np.nonzero(has)[0][0])
    order = (start + np.arange(n)) % n  # begins on a lung ray, so every gap is closed on both sides
    runs = []
    k = 0
    while k < n:
        if has[order[k]]:
            k += 1
            continue
        j = k
        while j < n and not has[order[j]]:
            j += 1
        length = j - k
        if length <= max_len and allowed[order[k:j]].all():
            runs.append((int(order[k]), length))
        k = j
    return runs


def _recover_recess(
    current: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Consolidated costophrenic recess: the crescent of dense lung between two stretches of lung (3-D path only).

    Below its largest cross-section a lung base is a dome sitting in the bowl of the rib cage: in an axial slice the
    lung is a crescent around the liver / spleen dome. When a stretch of that crescent is consolidated over its
    whole depth, the rays from the trunk centre that cross it meet no lung of the slice, so the radial rib-cage rule
    cannot see it. Here, per slice (cranial to caudal) and lung, a gap of at most ``recess_max_gap_deg`` between
    rays that meet the lung, outside the anterior sector (``cage_z_anterior_deg``: heart, cardiac notch), gets the
    radial extent of the lung interpolated (linearly in angle) between the two rays bounding it -- the outer edge
    moves out to the first bone on the ray when that lies within ``recess_cage_reach_mm`` (the lung fills the cavity
    up to the inner surface of the rib cage) -- and its dense voxels are lung when they lie under the lung of the
    slice above (a lung base only narrows caudally; in-plane tolerance one pixel), at least ``base_midline_mm`` from
    the trunk's midline (vertebral body, aorta, oesophagus), more than ``cage_margin_3d_mm`` from bone, form a part
    thicker than two pixels and touch the lung. Slices are processed caudally so a recovered crescent carries on to
    the next slice.
    ``current``: lung labels including the voxels recovered so far; the voxels added here are labelled in place.
    Returns the added voxels.
    """
    nz, ny, nx = current.shape
    out = np.zeros(current.shape, dtype=bool)
    if nz < 3:
        return out
    n_rays = params.n_rays
    rays = np.arange(n_rays)
    angle = (rays + 0.5) / n_rays * 360.0 - 180.0  # image y = posterior; anterior = -90 degrees
    allowed = np.abs(((angle + 90.0) + 180.0) % 360.0 - 180.0) >= params.cage_z_anterior_deg
    max_len = int(round(params.recess_max_gap_deg / 360.0 * n_rays))
    yy, xx = np.mgrid[0:ny, 0:nx]
    pixel_mm = float(np.sqrt(spacing[1] * spacing[2]))
    one = np.ones((3, 3), dtype=bool)
    geometry: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # per slice: radius (px), ray, off midline
    for value in (RIGHT, LEFT):
        area = (current == value).sum(axis=(1, 2))
        if not area.any():
            continue
        z_top = int(np.argmax(area))
        for z in range(z_top - 1, -1, -1):
            lung = current[z] == value
            if lung.sum() < 5 or not trunk[z].any():
                continue
            if z not in geometry:
                cy, cx = ndimage.center_of_mass(trunk[z])
                radius = np.hypot((yy - cy) * spacing[1], (xx - cx) * spacing[2]) / pixel_mm
                ray = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * n_rays).astype(int) % n_rays
                lateral = np.abs(xx - cx) * spacing[2] >= params.base_midline_mm  # not the spine, aorta, oesophagus
                geometry[z] = (radius, ray, lateral)
            radius, ray, lateral = geometry[z]
            r_in = np.full(n_rays, np.inf)
            r_out = np.full(n_rays, -np.inf)
            np.minimum.at(r_in, ray[lung], radius[lung])
            np.maximum.at(r_out, ray[lung], radius[lung])
            has = np.isfinite(r_in)
            inner = np.full(n_rays, np.inf)
            outer = np.full(n_rays, -np.inf)
            for first, length in _gap_runs(has, allowed, max_len):
                a, b = (first - 1) % n_rays, (first + length) % n_rays
                w = (np.arange(1, length + 1)) / (length + 1.0)
                gap = (first + np.arange(length)) % n_rays
                inner[gap] = (1 - w) * r_in[a] + w * r_in[b]
                outer[gap] = (1 - w) * r_out[a] + w * r_out[b]
            if not np.isfinite(inner).any():
                continue
            # the crescent reaches the inner surface of the rib cage: first bone outside the interpolated inner edge
            bone = (hu[z] >= params.bone_hu) & trunk[z] & (radius > inner[ray])
            r_bone = np.full(n_rays, np.inf)
            np.minimum.at(r_bone, ray[bone], radius[bone])
            reach = np.isfinite(inner) & (r_bone > outer) & (r_bone - outer <= params.recess_cage_reach_mm / pixel_mm)
            outer = np.where(reach, r_bone, outer)
            band = (radius >= inner[ray]) & (radius <= outer[ray]) & lateral
            band &= ndimage.binary_dilation(current[z + 1] == value, structure=one) & dense_ok[z] & (current[z] == 0)
            if not band.any():
                continue
            far = (
                ndimage.distance_transform_edt(hu[z] < params.bone_hu, sampling=spacing[1:]) > params.cage_margin_3d_mm
            )
            band = thick_part(band & far)
            if not band.any():
                continue
            comp, _ = ndimage.label(band, structure=one)
            touching = np.unique(comp[ndimage.binary_dilation(lung, structure=one) & (comp > 0)])
            band = np.isin(comp, touching[touching > 0])
            current[z][band] = value
            out[z] |= band
    return out


def _with_abnormal_halo(
    recovered: np.ndarray,
    labels: np.ndarray,
    hu: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """The recovered pixels whose per-slice component borders diseased lung (halo gate, 3-D path, lungs-1.6).

    COVID-19 consolidation lies in diseased lung: ground-glass opacity or partly aerated lung surrounds it, while the
    dense non-lung tissue the geometric rules can take in -- pericardial fat, the heart border, hilar vessels and
    bronchial walls, the partial-volume rim of the chest wall -- borders normal aerated lung. Per axial slice, each
    8-connected component of ``recovered`` is kept when its halo -- the aerated lung pixels of the ring lying just
    beyond ``halo_gap_mm`` around it (the pixels nearer than that are skipped: partial volume with the component)
    -- holds at least ``halo_min_share`` of pixels denser than ``halo_abnormal_hu``, or when no aerated lung lies
    in that ring (a consolidation that fills its surroundings). No HU of the dense tissue itself is used, so the
    gate behaves the same for consolidation at -30 HU and at +40 HU.

    Parameters
    ----------
    recovered : numpy.ndarray
        bool (z, y, x): dense pixels accepted by the geometric rules.
    labels : numpy.ndarray
        Lung labels (z, y, x) before the recovery (aerated lung, > 0).
    hu : numpy.ndarray
        Working-grid CT (z, y, x) in HU.
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm; the in-plane pixel size sets the skipped gap (``halo_gap_mm``).

    Returns
    -------
    numpy.ndarray
        bool (z, y, x): the kept subset of ``recovered``.
    """
    kept = np.zeros(recovered.shape, dtype=bool)
    square = np.ones((3, 3), dtype=bool)
    gap_px = max(1, int(round(params.halo_gap_mm / float(np.sqrt(spacing[1] * spacing[2])))))
    pad = gap_px + 2
    for z in np.nonzero(recovered.any(axis=(1, 2)))[0]:
        components, _ = ndimage.label(recovered[z], structure=square)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            box = tuple(slice(max(0, side.start - pad), side.stop + pad) for side in box)
            component = components[box] == index
            near = ndimage.binary_dilation(component, structure=square, iterations=gap_px)
            halo = ndimage.binary_dilation(near, structure=square) & ~near & (labels[z][box] > 0)
            if not halo.any() or (hu[z][box][halo] > params.halo_abnormal_hu).mean() >= params.halo_min_share:
                kept[z][box] |= component
    return kept
