"""Constants, geometry and dense-recovery rules shared by the 2-D and 3-D paths of :func:`segment_lungs`.

Used by :mod:`kicc_analysis.segmentation.lungs` (steps 1-6) and by the path-specific rule modules
:mod:`~kicc_analysis.segmentation.dense_2d` and :mod:`~kicc_analysis.segmentation.dense_3d`; imports nothing from
them.

- **Labels and connectivity**: ``RIGHT`` / ``LEFT`` lung labels, structuring elements within a slice (8-connected,
  none across slices) and in 3-D (6-connected).
- **Geometry**: the trunk of each slice (:func:`_trunk`), the side of recovered voxels (:func:`_nearest_label`; per
  3-D component: :func:`_side_of_components`), the part of a mask thicker than two pixels (:func:`_thick_part`: the
  partial-volume rim of the pleural boundary is neither lung nor consolidation), propagation along one axis through
  allowed pixels (:func:`_reach_along`) and the vertebral body of a slice (:func:`_vertebral_body`: paravertebral
  gutter in 3-D, paravertebral band in 2-D).
- **Sub-pleural rib-cage band** (step 6b, :func:`_recover_rib_cage`, lungs-1.1): along ``n_rays`` rays from the
  trunk centre, dense pixels between the outermost lung pixel and the inner surface of the rib cage (first bone
  >= ``bone_hu`` outside the lung, minus 6 mm of pleura and intercostal tissue; bands >= 8 mm, touching the lung)
  are lung. 3-D path (lungs-1.3): a ray passing between two ribs takes the cage interpolated from the slices within
  ``cage_z_reach_mm``, with a 4 mm margin and 5 mm bands, except in the anterior sector where the heart lies against
  the sternum (``cage_z_anterior_deg``) and in the upper third of the lungs, where the ribs run obliquely.
- **Outline interpolation** (step 6c, :func:`_recover_between_slices`, lungs-1.2): dense voxels with lung of the same
  side both above and below in their (y, x) column (within ``interp_window_mm``) lie inside the lung outline
  (interpolation only: the liver under the diaphragm dome has lung above but not below). Needs at least 3 slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .parameters import DEFAULT_PARAMETERS, LungParameters

RIGHT, LEFT = 1, 2  # lung labels (LPS: the right lung has the smaller x)

_STRUCT_2D = np.zeros((3, 3, 3), dtype=bool)
_STRUCT_2D[1] = True  # 8-connectivity within a slice, none across slices
_STRUCT_3D = ndimage.generate_binary_structure(3, 1)


def _trunk(outside: np.ndarray) -> np.ndarray:
    """Per slice, the largest non-outside component with holes filled (the patient without table or arms)."""
    trunk = np.zeros(outside.shape, dtype=bool)
    for z in range(outside.shape[0]):
        lab, n = ndimage.label(~outside[z])
        if n == 0:
            continue
        largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(lab), lab, np.arange(1, n + 1))))
        trunk[z] = ndimage.binary_fill_holes(lab == largest)
    return trunk


def _nearest_label(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Label of the nearest labelled voxel for every voxel of ``where`` (0 elsewhere).

    The distance transform runs on the bounding box of ``labels > 0`` and ``where`` only (speed).
    """
    out = np.zeros(labels.shape, dtype=labels.dtype)
    union = (labels > 0) | where
    if not union.any() or not (labels > 0).any():
        return out
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(union))
    sub = labels[box]
    _, indices = ndimage.distance_transform_edt(sub == 0, return_indices=True)
    nearest = sub[tuple(indices)]
    nearest[~where[box]] = 0
    out[box] = nearest
    return out


def _side_of_components(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``labels`` with each 3-D component of ``where`` given the side of the lung voxels touching it most.

    A cheap stand-in for :func:`_nearest_label` (one 3-D distance transform of the thorax, ~0.2 s on a 512 x 512 x
    300 scan) for recovered voxels, which nearly all touch one lung; components touching both lungs or neither are
    assigned voxel by voxel to the nearest lung within 5 voxels around them (0 when there is none).
    """
    out = labels.copy()
    if not where.any():
        return out
    box = tuple(slice(max(0, int(idx.min()) - 1), int(idx.max()) + 2) for idx in np.nonzero(where))  # one voxel around
    comp, n = ndimage.label(where[box], structure=_STRUCT_3D)
    grown = ndimage.grey_dilation(comp, footprint=_STRUCT_3D)  # id of a component next to each voxel
    sub = labels[box]
    right = np.bincount(grown[(sub == RIGHT) & (grown > 0)], minlength=n + 1)
    left = np.bincount(grown[(sub == LEFT) & (grown > 0)], minlength=n + 1)
    side = np.where(right >= left, RIGHT, LEFT).astype(labels.dtype)
    side[(right + left) == 0] = 0
    side[0] = 0
    out[box] = np.where(comp > 0, side[comp], sub)
    unsure = np.nonzero(((right > 0) & (left > 0)) | ((right + left) == 0))[0]
    unsure = unsure[unsure > 0]
    if unsure.size:  # touching both lungs or neither: voxel by voxel, nearest lung within a local box
        mask = np.isin(comp, unsure)
        local = tuple(slice(max(0, int(i.min()) - 5), int(i.max()) + 6) for i in np.nonzero(mask))
        sub_local = sub[local]
        if (sub_local > 0).any():
            _, idx = ndimage.distance_transform_edt(sub_local == 0, return_indices=True)
            nearest = sub_local[tuple(idx)]
            view = out[box][local]
            view[mask[local]] = nearest[mask[local]]
    return out


def _thick_part(mask: np.ndarray) -> np.ndarray:
    """Components (8-connected, 2-D) of ``mask`` that survive a 3 x 3 opening somewhere.

    Drops regions that are at most two pixels thick everywhere: the partial-volume staircase of the pleural
    boundary (neither lung nor consolidation) and thin walls, while a consolidation keeps its thin extensions.
    """
    opened = ndimage.binary_opening(mask, structure=np.ones((3, 3), dtype=bool))
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    keep = np.unique(lab[opened])
    return np.isin(lab, keep[keep > 0])


def _reach_along(start: np.ndarray, ok: np.ndarray, axis: int, reverse: bool, max_steps: int) -> np.ndarray:
    """Pixels of ``ok`` reached from ``start`` along one axis of a 2-D slice, through ``ok`` pixels only.

    Propagation runs towards increasing index along ``axis`` (``reverse``: decreasing); a pixel is reached when
    the pixel before it is ``start`` or reached, at most ``max_steps`` pixels from ``start``.
    """
    start_t, ok_t = (start, ok) if axis == 0 else (start.T, ok.T)
    if reverse:
        start_t, ok_t = start_t[::-1], ok_t[::-1]
    reach = np.zeros_like(ok_t)
    steps = np.zeros(ok_t.shape, dtype=np.int32)
    for i in range(1, ok_t.shape[0]):
        reach[i] = ok_t[i] & (start_t[i - 1] | (reach[i - 1] & (steps[i - 1] < max_steps)))
        steps[i] = np.where(start_t[i - 1], 1, steps[i - 1] + 1)
    if reverse:
        reach = reach[::-1]
    return reach if axis == 0 else reach.T


def _vertebral_body(
    bone: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    midline_x: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[int, int, int, int, int] | None:
    """Vertebral body of one axial slice: (centre y, centre x, left x, right x, posterior y) indices, or ``None``.

    The vertebral body is the thickest bone of the posterior half of the trunk near the midline (within
    ``gutter_midline_mm``): the maximum of the in-plane distance transform of the hole-filled bone mask (cortical
    ring + cancellous interior), so thin posterior elements (transverse processes, rib heads) do not move it. Its
    left / right / posterior edges are the extent of the filled bone along the centre row / column. ``None`` when
    the thickest bone has an inscribed radius below ``gutter_min_radius_mm`` (no vertebra in the slice).
    """
    ys = np.nonzero(trunk)[0]
    if ys.size == 0 or not bone.any():
        return None
    # posterior half of the trunk (y = posterior), within a vertebral half-width of the allowed centres: the
    # crop also keeps a closed rib ring from filling the whole thorax
    y0 = int(ys.mean())
    half = int(np.ceil((params.gutter_midline_mm + params.gutter_width_mm) / spacing[2]))
    x0, x1 = max(0, int(midline_x) - half), min(bone.shape[1], int(midline_x) + half + 1)
    filled = ndimage.binary_fill_holes(bone[y0:, x0:x1])
    if not filled.any():
        return None
    dist = ndimage.distance_transform_edt(np.pad(filled, 1), sampling=spacing[1:])[1:-1, 1:-1]
    xs = np.arange(x0, x1)[None, :]
    dist[:, np.abs(xs[0] - midline_x) * spacing[2] > params.gutter_midline_mm] = 0.0  # centre near the midline
    cy, cx = (int(i) for i in np.unravel_index(int(np.argmax(dist)), dist.shape))
    if dist[cy, cx] < params.gutter_min_radius_mm:
        return None
    row, col = filled[cy], filled[:, cx]
    left = cx - int(np.argmax(~row[cx::-1])) + 1 if (~row[: cx + 1]).any() else 0
    right = cx + int(np.argmax(~row[cx:])) - 1 if (~row[cx:]).any() else row.size - 1
    back = cy + int(np.argmax(~col[cy:])) - 1 if (~col[cy:]).any() else col.size - 1
    cy, back, cx, left, right = cy + y0, back + y0, cx + x0, left + x0, right + x0
    return cy, cx, left, right, back


def _recover_rib_cage(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    between_slices: bool = False,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Dense lung between the aerated lung and the inner surface of the rib cage (radial rule).

    Rays are cast from each slice's trunk centre. On each ray that meets lung, the rib cage is the first bone
    pixel (>= ``bone_hu``) outside the outermost lung pixel; rays without bone take the cage radius from the
    neighbouring rays (circular interpolation, at most ``cage_max_gap_deg`` away) and the cage radius is smoothed
    by a rolling lower quartile (+-10 degrees) so a scapula behind a gap between ribs does not count. Dense pixels
    (soft-tissue range) farther out than the lung and more than ``cage_margin_mm`` inside the cage, in bands at
    least ``min_band_mm`` deep and touching the lung, are consolidated lung lying against the pleura.

    ``between_slices`` (3-D path): real ribs are discontinuous in axial slices (they slope), so a ray of one slice
    often passes between two ribs. Missing rays are then filled by linear interpolation along z from the nearest
    slices with a rib hit on that ray, at most ``cage_z_reach_mm`` away (the inner surface of the rib cage between
    ribs), and the margin and band are ``cage_margin_3d_mm`` / ``min_band_3d_mm``. Rays within
    ``cage_z_anterior_deg`` of anterior (heart against the sternum and costal cartilage) and slices in the upper
    ``cage_apex_fraction`` of the lung height (oblique ribs near the apex) keep the per-slice rule (6 mm, 8 mm).
    """
    nz, ny, nx = labels.shape
    n_rays = params.n_rays
    yy, xx = np.mgrid[0:ny, 0:nx]
    pixel_mm = float(np.sqrt(spacing[1] * spacing[2]))
    max_gap = int(round(params.cage_max_gap_deg / 360.0 * n_rays))
    window = max(3, int(round(20.0 / 360.0 * n_rays)) | 1)
    rays = np.arange(n_rays)
    recovered = np.zeros(labels.shape, dtype=bool)
    slices = np.nonzero(labels.any(axis=(1, 2)) & trunk.any(axis=(1, 2)))[0]
    if slices.size == 0:
        return recovered
    # pass 1: per slice and ray, outermost lung radius and first bone radius outside it (pixels)
    geometry = {}
    r_bone_all = np.full((nz, n_rays), np.nan)
    for z in slices:
        cy, cx = ndimage.center_of_mass(trunk[z])
        radius = np.hypot((yy - cy) * spacing[1], (xx - cx) * spacing[2]) / pixel_mm
        ray = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * n_rays).astype(int) % n_rays
        lung = labels[z] > 0
        r_lung = np.full(n_rays, -1.0)
        np.maximum.at(r_lung, ray[lung], radius[lung])
        bone = (hu[z] >= params.bone_hu) & trunk[z] & (radius > r_lung[ray])
        r_bone = np.full(n_rays, np.inf)
        np.minimum.at(r_bone, ray[bone], radius[bone])
        r_bone_all[z] = np.where(np.isfinite(r_bone), r_bone, np.nan)
        geometry[z] = (radius, ray, r_lung)
    # pass 2: fill rays between ribs from the slices above and below (linear in z, within the reach)
    reach = params.cage_z_reach_mm / spacing[0]
    z_index = np.arange(nz)
    # ray k points at angle (k + 0.5) / n_rays * 360 - 180 degrees (image y = posterior); anterior = -90 degrees
    angle = (rays + 0.5) / n_rays * 360.0 - 180.0
    anterior = np.abs(((angle + 90.0) + 180.0) % 360.0 - 180.0) < params.cage_z_anterior_deg
    if not between_slices:  # per-slice rule: every ray as the anterior sector (no interpolation, 6 mm / 8 mm)
        anterior[:] = True
    # posterior and lateral rays (ossified ribs, dependent lung): thinner margin and bands; anterior as in 2-D
    margin = np.where(anterior, params.cage_margin_mm, params.cage_margin_3d_mm) / pixel_mm
    min_band = np.maximum(2.0, np.where(anterior, params.min_band_mm, params.min_band_3d_mm) / pixel_mm)
    # upper part of the lungs: the ribs run obliquely near the apex, so no interpolation and the 2-D margins there
    apical = z_index >= slices[0] + (1.0 - params.cage_apex_fraction) * (slices[-1] - slices[0])
    for k in rays[~anterior]:
        hit = np.isfinite(r_bone_all[:, k])
        if not hit.any() or hit.all():
            continue
        zh = z_index[hit]
        filled = np.interp(z_index, zh, r_bone_all[hit, k])
        pos = np.searchsorted(zh, z_index)
        below = np.where(pos > 0, z_index - zh[np.maximum(pos - 1, 0)], np.inf)
        above = np.where(pos < zh.size, zh[np.minimum(pos, zh.size - 1)] - z_index, np.inf)
        ok = ~hit & (below <= reach) & (above <= reach) & ~apical
        r_bone_all[ok, k] = filled[ok]
    # pass 3: the per-slice band between lung and cage
    for z in slices:
        radius, ray, r_lung = geometry[z]
        has_lung = r_lung >= 0
        r_bone = np.where(np.isnan(r_bone_all[z]), np.inf, r_bone_all[z])
        r_bone = np.where(r_bone > r_lung, r_bone, np.inf)  # an interpolated cage inside the lung is no cage
        found = np.isfinite(r_bone)
        if found.sum() < 3:
            continue
        idx = rays[found]
        cage = np.interp(rays, idx, r_bone[found], period=n_rays)
        distance = np.min(np.abs(((rays[:, None] - idx[None, :]) + n_rays // 2) % n_rays - n_rays // 2), axis=1)
        cage[distance > max_gap] = np.nan
        padded = np.pad(np.nan_to_num(cage, nan=1e6), window // 2, mode="wrap")
        cage_low = ndimage.percentile_filter(padded, 25, size=window, mode="nearest")[window // 2 : -(window // 2)]
        cage = np.where(np.isnan(cage) | (cage_low > 1e5), np.nan, np.minimum(cage, cage_low))
        if apical[z]:
            inner = cage - params.cage_margin_mm / pixel_mm
            deep = has_lung & np.isfinite(inner) & (inner - r_lung >= max(2.0, params.min_band_mm / pixel_mm))
        else:
            inner = cage - margin
            deep = has_lung & np.isfinite(inner) & (inner - r_lung >= min_band)
        if not deep.any():
            continue
        band = deep[ray] & (radius > r_lung[ray]) & (radius < np.nan_to_num(inner, nan=-1.0)[ray])
        band &= dense_ok[z] & (labels[z] == 0)
        if not band.any():
            continue
        lung = labels[z] > 0
        comp, _ = ndimage.label(band, structure=np.ones((3, 3)))
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=np.ones((3, 3))) & (comp > 0)])
        recovered[z] = np.isin(comp, touching[touching > 0])
    return recovered


def _recover_between_slices(
    labels: np.ndarray, dense_ok: np.ndarray, spacing: np.ndarray, *, params: LungParameters = DEFAULT_PARAMETERS
) -> np.ndarray:
    """Dense voxels with lung of the same side above AND below in their (y, x) column (3-D outline interpolation).

    A consolidated region that slices above and below show as aerated lung lies inside the lung outline: for each
    voxel the nearest lung voxel of each side is looked up cranially and caudally in the same column, within
    ``interp_window_mm``. Only interpolation, never extrapolation: the liver and spleen below the diaphragm dome
    have lung above them but none below. Accepted regions must touch the lung (3-D components).
    """
    nz = labels.shape[0]
    recovered = np.zeros(labels.shape, dtype=bool)
    if nz < 3:
        return recovered
    reach = max(1, int(round(params.interp_window_mm / spacing[0])))
    for value in (RIGHT, LEFT):
        lung = labels == value
        big = np.iinfo(np.int32).max // 2
        below = np.full(labels.shape, -big, dtype=np.int32)  # index of the last lung voxel at or below z
        above = np.full(labels.shape, big, dtype=np.int32)
        last = np.full(labels.shape[1:], -big, dtype=np.int32)
        for z in range(nz):
            last = np.where(lung[z], z, last)
            below[z] = last
        last = np.full(labels.shape[1:], big, dtype=np.int32)
        for z in range(nz - 1, -1, -1):
            last = np.where(lung[z], z, last)
            above[z] = last
        z_index = np.arange(nz, dtype=np.int32)[:, None, None]
        inside = (z_index - below <= reach) & (above - z_index <= reach) & (above - below <= 2 * reach)
        candidate = inside & dense_ok & (labels == 0)
        if not candidate.any():
            continue
        comp, _ = ndimage.label(candidate, structure=_STRUCT_3D)
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=_STRUCT_3D) & (comp > 0)])
        recovered |= np.isin(comp, touching[touching > 0])
    return recovered
