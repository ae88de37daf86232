"""Dense-recovery rules shared by the 2-D and 3-D paths of :func:`segment_lungs` (step 6b and 6c).

Used by :mod:`kicc_analysis.segmentation.lungs` (:func:`~kicc_analysis.segmentation.lungs.dense_rules`); the geometry
helpers (labels, connectivity, trunk, nearest label, vertebral body, ...) are public in
:mod:`kicc_analysis.segmentation.geometry` and re-exported here for the rule modules; thresholds are fields of
:class:`~kicc_analysis.segmentation.parameters.LungParameters`.

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

from .geometry import (  # noqa: F401
    LEFT,
    RIGHT,
    STRUCT_2D,
    STRUCT_3D,
    nearest_label,
    reach_along,
    side_of_components,
    thick_part,
    trunk_mask,
    vertebral_body,
)
from .parameters import DEFAULT_PARAMETERS, LungParameters


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
        comp, _ = ndimage.label(candidate, structure=STRUCT_3D)
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=STRUCT_3D) & (comp > 0)])
        recovered |= np.isin(comp, touching[touching > 0])
    return recovered
