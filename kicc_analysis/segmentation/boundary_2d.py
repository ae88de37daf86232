"""Input-grid boundary rules of the 2-D axial path (step 7 of :func:`~kicc_analysis.segmentation.segment_lungs`).

Step 6 runs on the working grid (about 2.5 mm), so a recovered dense block that straddles the chest wall comes back to
the input grid as a whole 2.5 mm block: rib and intercostal tissue beyond the pleura enter the mask in blocky rims.
After :func:`~kicc_analysis.segmentation.lungs._upsample_refined`, on each axial slice with a thoracic cavity
(:func:`~kicc_analysis.segmentation.dense_2d.thoracic_cavity_2d`), these rules place the lung's outer boundary at full
resolution:

1. **Pleural line** (rule ``pleural_line_2d``, :func:`pleural_line_2d`): the parietal pleura lies on the inner surface
   of the ribs and spans each intercostal space along the line joining the inner surfaces of the ribs above and
   below it in the slice (the innermost intercostal muscle and the endothoracic fascia are in line with the ribs'
   inner surfaces). Along fine rays from the cavity's centre, the inner surface is the innermost input-grid bone
   pixel (in bone pieces of at least ``pleura_min_bone_mm2``: a rib, not a contrast-filled vessel or a calcified
   granuloma) within ``pleura_band_mm`` of the working-grid cavity ring, as a rolling minimum over three rays; rays
   between ribs take it by linear interpolation in angle from the nearest rays with a rib. A dense-recovered input
   pixel beyond that line or less than ``pleura_margin_mm`` inside it (the intercostal stripe) is chest wall (rib,
   intercostal muscle, extrapleural fat), not lung, and is taken out; aerated pixels are never touched (their
   boundary already follows ``boundary_max_hu``).
2. **Partly aerated lung** (rule ``partial_aeration_2d``, :func:`partial_aeration_2d`): input pixels from
   ``partial_min_hu`` (-800) up to ``boundary_max_hu`` (-200 HU), reached from the mask through such pixels within
   ``partial_reach_mm`` (5 mm), inside the pleural line, are lung: ground glass beside the mask whose working blocks
   average above the air threshold lies beyond step 7's one-block band (paravertebral and perihilar ground glass).
3. **Holes** (rule ``fill_holes_2d``, :func:`fill_holes_2d`): enclosed holes of each lung on the input grid are lung
   (vessels, bronchi and solid spots inside consolidation; step 5 fills holes on the working grid only, so holes
   smaller than a working block or opened by the boundary band of step 7 stayed out).

Slices without a thoracic cavity (tight crops through the body: teaching images, where ``thoracic_cavity_2d`` finds
no cage) are left as step 7 made them. There the filled holes would be vessel cross-sections that the lesion regions
of :func:`~kicc_analysis.quantification.segment_opacity_regions` then count as opacity: on the MedSeg teaching
crops, filling them lowered the held-out lesion Dice from 0.679 to 0.670 (docs/ct_development_log.md, edge11).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .dense_2d import _cage_bone_2d
from .geometry import LEFT, RIGHT, nearest_label
from .parameters import BOUNDARY_RULE_NAMES, DEFAULT_PARAMETERS, LungParameters


def pleural_depth_2d(
    hu: np.ndarray,
    cavity: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray | None:
    """Depth (mm) inside the parietal pleura of one axial slice on the input grid, or ``None`` without a cage.

    Parameters
    ----------
    hu : numpy.ndarray
        Input-grid slice (y, x), HU.
    cavity : numpy.ndarray
        bool (y, x) thoracic cavity of the working grid brought to the input grid (block repeat).
    trunk : numpy.ndarray
        bool (y, x) trunk mask on the input grid (bounds the bone search, as in :func:`_cage_bone_2d`).
    spacing : numpy.ndarray
        Input-grid spacing (y, x) or (z, y, x), mm.

    Returns
    -------
    numpy.ndarray or None
        float (y, x): how far (mm, along the ray) each pixel lies inside the line through the inner surfaces of the
        ribs (negative: beyond it); ``None`` when the cavity is empty or the whole image (no cage found) or fewer
        than 8 rays meet a rib.
    """
    spacing_yx = np.asarray(spacing, dtype=float)[-2:]
    if not cavity.any() or cavity.all():
        return None
    bone = _cage_bone_2d(hu, trunk, params=params)
    if bone is None or not bone.any():
        return None
    comp, n = ndimage.label(bone, structure=np.ones((3, 3)))
    area = ndimage.sum_labels(bone, comp, np.arange(1, n + 1)) * float(spacing_yx[0] * spacing_yx[1])
    bone = np.isin(comp, 1 + np.nonzero(area >= params.pleura_min_bone_mm2)[0])  # not a contrast-filled vessel
    ny, nx = hu.shape
    n_rays = int(params.pleura_rays)
    cy, cx = ndimage.center_of_mass(cavity)
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot((yy - cy) * spacing_yx[0], (xx - cx) * spacing_yx[1])  # mm
    ray = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * n_rays).astype(int) % n_rays
    ring = np.full(n_rays, -np.inf)
    np.maximum.at(ring, ray[cavity], radius[cavity])
    rays = np.arange(n_rays)
    has_ring = np.isfinite(ring)
    if has_ring.sum() < 8:
        return None
    ring = np.interp(rays, rays[has_ring], ring[has_ring], period=n_rays)
    near = bone & (np.abs(radius - ring[ray]) <= params.pleura_band_mm)
    inner = np.full(n_rays, np.inf)
    np.minimum.at(inner, ray[near], radius[near])
    hit = np.isfinite(inner)
    if hit.sum() < 8:
        return None
    # a ray that meets only the outer corner of a rib's end (the sector is about one pixel wide at the ribs) takes
    # its neighbour's inner surface: rolling minimum over three rays (1.5 degrees, a negligible arc sag)
    inner = ndimage.minimum_filter1d(inner, 3, mode="wrap")
    line = np.interp(rays, rays[hit], inner[hit], period=n_rays)
    return line[ray] - radius


def pleural_line_2d(
    hu: np.ndarray,
    cavity: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray | None:
    """bool (y, x): at least ``pleura_margin_mm`` inside the pleural line (:func:`pleural_depth_2d`), or ``None``."""
    depth = pleural_depth_2d(hu, cavity, trunk, spacing, params=params)
    return None if depth is None else depth >= params.pleura_margin_mm


def partial_aeration_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    allowed: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """bool (y, x): partly aerated input pixels connected to the lung mask (rule ``partial_aeration_2d``).

    Pixels from ``partial_min_hu`` up to ``boundary_max_hu`` (ground glass, partly aerated lung and its partial
    volume: more than about a quarter air, less than aerated parenchyma), in ``allowed`` (trunk, inside the pleural
    line), outside the mask, reached from the mask through such pixels within ``partial_reach_mm``. Step 7's boundary
    band is one working block wide, so partly aerated lung whose 2.5 mm blocks average above the air threshold
    (-400 HU) and that lies more than a block beyond the mask stayed out. Darker pixels (aerated parenchyma, an airway
    lumen) are not crossed, so the rule never joins a bronchus or the trachea to the lung; solid tissue (chest wall,
    mediastinum, vessels, fluid) lies above ``boundary_max_hu`` and stops it.
    """
    spacing_yx = np.asarray(spacing, dtype=float)[-2:]
    lung = labels > 0
    ok = allowed & ~lung & (hu < params.boundary_max_hu) & (hu >= params.partial_min_hu)
    if not ok.any() or not lung.any():
        return np.zeros(labels.shape, dtype=bool)
    steps = max(1, int(round(params.partial_reach_mm / float(spacing_yx.min()))))
    grown = ndimage.binary_dilation(lung, structure=np.ones((3, 3), dtype=bool), iterations=steps, mask=ok | lung)
    return grown & ok


def fill_holes_2d(labels: np.ndarray) -> np.ndarray:
    """Lung labels (y, x) with the enclosed holes of each lung filled with its label (input grid)."""
    out = labels.copy()
    for value in (RIGHT, LEFT):
        lung = labels == value
        if lung.any():
            out[ndimage.binary_fill_holes(lung) & (out == 0)] = value
    return out


def refine_boundary_2d(
    labels: np.ndarray,
    dense: np.ndarray,
    hu: np.ndarray,
    cavity: np.ndarray | None,
    trunk: np.ndarray,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Step 7 on the 2-D axial path: the pleural-line cut and the hole filling, per slice of the input grid.

    Parameters
    ----------
    labels, dense : numpy.ndarray
        uint8 (z, y, x) input-grid labels and dense-recovered mask from
        :func:`~kicc_analysis.segmentation.lungs._upsample_refined`.
    hu : numpy.ndarray
        Input-grid CT (z, y, x), HU.
    cavity, trunk : numpy.ndarray
        bool (z, y, x) thoracic cavity (all True on a slice without one; ``None``: ``cage_2d`` switched off) and
        trunk, input grid. Only slices with a cavity are changed.
    spacing : numpy.ndarray
        Input-grid spacing (z, y, x), mm.

    Returns
    -------
    labels, dense, pixels : numpy.ndarray, numpy.ndarray, dict
        The refined labels and dense mask, and per rule run the input pixels it changed (negative: removed by
        ``pleural_line_2d``; positive: added by ``fill_holes_2d``).
    """
    labels = labels.copy()
    dense = dense.copy()
    changed: dict[str, int] = {}
    if cavity is None:
        return labels, dense, changed
    changed = {name: 0 for name in BOUNDARY_RULE_NAMES if params.rule_enabled(name)}
    for z in range(labels.shape[0]):
        if not labels[z].any() or cavity[z].all() or not cavity[z].any():
            continue  # no thoracic cavity: a tight crop (teaching image), left as step 7 made it
        inside = None
        if "pleural_line_2d" in changed:
            inside = pleural_line_2d(hu[z], cavity[z], trunk[z], spacing, params=params)
            if inside is not None:
                cut = (dense[z] > 0) & (labels[z] > 0) & ~inside
                labels[z][cut] = 0
                dense[z][cut] = 0
                changed["pleural_line_2d"] -= int(cut.sum())
        if "partial_aeration_2d" in changed:
            allowed = trunk[z] if inside is None else trunk[z] & inside
            grown = partial_aeration_2d(labels[z], hu[z], allowed, spacing, params=params)
            if grown.any():
                labels[z][grown] = nearest_label(labels[z][None], grown[None])[0][grown]
                changed["partial_aeration_2d"] += int(grown.sum())
        if "fill_holes_2d" in changed:
            filled = fill_holes_2d(labels[z])
            changed["fill_holes_2d"] += int(((filled > 0) & (labels[z] == 0)).sum())
            labels[z] = filled
    return labels, dense, changed
