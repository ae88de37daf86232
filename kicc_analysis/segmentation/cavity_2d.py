"""The posterior ring of the thoracic cavity of a single axial slice (rule ``cavity_rib_line_2d``, cavity11).

:func:`~kicc_analysis.segmentation.dense_2d.thoracic_cavity_2d` casts rays from the lungs' centre on the trunk's
midline and takes on each the first bone beyond the aerated lung: on most rays a rib, but on the rays behind the
mediastinum the anterior surface of the **vertebral body**, some 15-25 mm in front of the posterior ribs beside it
(the paravertebral gutters reach back to the rib heads and necks, behind the vertebral body's front). The smooth
ring (three harmonics) fitted to all hits and the running median over ``cavity_median_deg`` cannot follow that
notch: the vertebral-body rays, a cluster of about 30 degrees, pull the ring on the neighbouring posterior rays up
to about 10 mm inside the posterior ribs, and the dense-recovery rules, which stay inside the ring, then leave out
the dependent consolidation lying on the posterior ribs (covid_ny_sbu A046441 later, right lower lobe).

The rule: a ray whose first bone hit lies behind the rays' centre and within ``cavity_spine_half_mm`` of the
vertebral body's centre column (:func:`~kicc_analysis.segmentation.geometry.vertebral_body`; the trunk's midline
when the body is not found, e.g. an osteopenic body whose cortex is not a closed ring at the bone threshold) is a
**spine ray**: it meets the vertebral body, the rib heads against it or the spinous process. Spine rays are left out of the ring fit and of the running median of the
other rays, so the ring there follows the rib line; the spine rays themselves keep the ring as it was (the
vertebral body's front bounds the cavity behind the mediastinum). This holds on any chest CT: the vertebral body is
the only bone that rays from inside the thorax meet in front of the posterior rib line. Slices without a vertebral
body (a crop, a missing spine) are unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import vertebral_body
from .parameters import DEFAULT_PARAMETERS, LungParameters


def spine_rays(
    bone: np.ndarray,
    trunk: np.ndarray,
    near: np.ndarray,
    ray: np.ndarray,
    radius: np.ndarray,
    r_bone: np.ndarray,
    spacing: np.ndarray,
    midline: float,
    centre_y: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """bool (n_rays,): the rays whose first bone hit lies on the vertebral body (see the module docstring).

    Parameters
    ----------
    bone : numpy.ndarray
        bool (y, x) bone of the slice (:func:`~kicc_analysis.segmentation.dense_2d._cage_bone_2d`).
    trunk : numpy.ndarray
        bool (y, x) trunk mask.
    near : numpy.ndarray
        bool (y, x) bone pixels the rays may hit (beyond the aerated lung on their ray).
    ray, radius : numpy.ndarray
        Per pixel: ray index and radius (pixels) from the rays' centre.
    r_bone : numpy.ndarray
        Per ray: radius of the first bone hit (``inf`` without one).
    spacing : numpy.ndarray
        Spacing (z, y, x) or (y, x) in mm.
    midline : float
        x index of the trunk's midline (the rays' centre).
    centre_y : float
        y index of the rays' centre: only hits behind it count.
    """
    n_rays = r_bone.size
    out = np.zeros(n_rays, dtype=bool)
    spacing_zyx = np.concatenate([[1.0], np.asarray(spacing, dtype=float)[-2:]])
    vb = vertebral_body(bone, trunk, spacing_zyx, midline, params=params)
    centre = float(vb[1]) if vb is not None else float(midline)  # an osteopenic body (no closed cortex): the midline
    ys, xs = np.nonzero(near)
    rays = ray[ys, xs]
    first = np.isfinite(r_bone[rays]) & (radius[ys, xs] <= r_bone[rays])  # the first bone pixel of its ray
    on_spine = np.abs(xs - centre) * spacing_zyx[2] <= params.cavity_spine_half_mm
    posterior = ys >= centre_y
    out[np.unique(rays[first & on_spine & posterior])] = True
    return out


def posterior_rib_line(
    cage: np.ndarray,
    hit: np.ndarray,
    theta: np.ndarray,
    spine: np.ndarray,
    window: int,
    smooth_hu: np.ndarray,
    bone: np.ndarray,
    ray: np.ndarray,
    radius: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Smoothed cage radius per ray with the posterior ring on the rib line (see the module docstring).

    Parameters
    ----------
    cage : numpy.ndarray
        Per ray: the cage radius before smoothing (the rib hit, else the fitted ring).
    hit : numpy.ndarray
        Per ray: the rib hit's radius (``inf`` without one).
    theta : numpy.ndarray
        Per ray: angle (radians) of :func:`~kicc_analysis.segmentation.dense_2d.thoracic_cavity_2d` (posterior rays
        between pi and 2 pi).
    spine : numpy.ndarray
        bool per ray: spine rays (:func:`spine_rays`).
    window : int
        Running-median window (rays, odd).
    smooth_hu : numpy.ndarray
        (y, x) CT smoothed by a Gaussian of ``block_sigma_mm`` (HU).
    ray, radius : numpy.ndarray
        Per pixel: ray index and radius (pixels) from the rays' centre.

    Returns
    -------
    numpy.ndarray
        Per ray: the cage radius (pixels).
    """
    n = cage.size
    posterior = np.sin(theta - np.pi) > 0
    out = cage.astype(float).copy()
    anchors = np.nonzero(np.isfinite(hit) & posterior & ~spine)[0]
    max_gap = params.cavity_rib_gap_deg / 360.0 * n
    for i in np.nonzero(posterior & ~spine & ~np.isfinite(hit))[0] if anchors.size >= 2 else []:
        before, after = anchors[anchors < i], anchors[anchors > i]
        if before.size == 0 or after.size == 0:
            continue
        b, a = before[-1], after[0]
        if a - b <= max_gap and not spine[b:a].any():  # a gap between two ribs of the same side
            out[i] = cage[b] + (cage[a] - cage[b]) * (i - b) / (a - b)
    old = ndimage.median_filter(cage, size=window, mode="wrap")
    new = ndimage.median_filter(out, size=window, mode="wrap")
    # a ray moves out only where partly aerated tissue (lung) fills the added segment, not fluid (pleural effusion)
    added = (radius > old[ray]) & (radius <= new[ray]) & ~bone  # soft tissue of the added segment
    count = np.bincount(ray[added], minlength=n)
    wet = np.bincount(ray[added], weights=(smooth_hu[added] >= params.cavity_fluid_hu), minlength=n)
    fluid = (count > 0) & (wet > 0.5 * np.maximum(count, 1))
    return np.where(fluid | spine, old, new)  # spine rays: the vertebral body bounds the cavity behind the mediastinum
