"""Central airway lumen joined to the lung on a single axial slice (2-D path, step 3 of
:func:`~kicc_analysis.segmentation.segment_lungs`; rule ``hilar_airway_2d``).

On one axial slice at or below the carina, a main bronchus runs from the carina (on the midline, in front of the
oesophagus and the vertebral body) out through the mediastinum to the hilum, where it divides into the lobar
bronchi inside the lung. Its lumen is air below the -400 HU air threshold, so where it meets the lung (the lobar
bronchi open into the aerated lung in the slice, or the bronchial wall is thinner than a pixel through partial
volume) it joins the lung candidate as one component, and the midline airway rule of the 2-D path
(:func:`~kicc_analysis.segmentation.lungs._airway_2d`, only components apart from the lung) cannot see it. Lung
outlines exclude the trachea, the main bronchi and the large hilar bronchi where they join the mediastinum.

:func:`hilar_airway_2d` cuts that lumen off, from three properties that hold for the central airways of any chest
CT and not for lung:

1. **Tube width.** A main bronchus is 10-20 mm wide (lumen plus partial-volume wall), the trachea up to 25 mm; a
   lung is wider than that everywhere except at thin edges. The part of the lung candidate not covered by a
   morphological opening with a disk of radius ``hilar_airway_open_mm`` is the *thin part*; its 8-connected
   components are the airway candidates. Holes up to ``hilar_airway_fill_max_mm2`` (intrapulmonary vessels and
   bronchi, up to about 10 mm across) are filled first, as they lie inside the lung; larger enclosed soft tissue
   (a hilar artery or lymph node between the bronchus and the lung) is not, so a bronchus curving around it stays a
   tube.
2. **Carina on the midline, in the middle mediastinum.** A main bronchus starts at the carina: the candidate must
   reach within ``hilar_airway_midline_mm`` of the midline (the vertebral body's centre), and that medial end must lie
   between ``hilar_airway_min_anterior_mm`` and ``hilar_airway_max_anterior_mm`` in front of the vertebral body's
   anterior edge (the oesophagus lies between the airway and the spine; the anterior junction of the two lungs lies
   in front of the heart, farther forward). Lung edges that reach the midline lie mostly outside that window: the
   anterior junction line in front of the heart, the posterior junction line directly on the spine; the tip of the
   azygo-oesophageal recess can reach into it, and is cut only when it is thin and holds pure air (emphysema: on
   the 60 emphysematous ct-64 slices segmented one by one the rule loses 2 lung pixels net, 32 on their 8-bit
   lung-window versions, while it cuts 165 / 269 non-lung pixels: trachea and main bronchi).
3. **Pure air.** The lumen holds air alone, darker than parenchyma (air with about 10-20 % tissue and blood, about
   -850 HU in normal lung, denser in disease): at least ``hilar_airway_min_lumen_share`` of the candidate is darker
   than ``airway_lumen_hu`` (-900 HU, as the 3-D airway tracking).

An accepted candidate is removed whole; the partial-volume wall around it is decided on the input grid by the
boundary band (step 7). Peripheral bronchi, bullae, cavities and emphysema never qualify: they lie inside the lung,
far from the midline (property 2), or in a part of the lung wider than a tube (property 1). A slice without a
vertebral body (a crop) gets no cut. What is cut counts in ``qa["airway_ml"]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

from .dense_2d import _cage_bone_2d
from .geometry import vertebral_body
from .parameters import DEFAULT_PARAMETERS, LungParameters


def hilar_airway_2d(
    lungs: np.ndarray,
    hu: np.ndarray,
    trunk: np.ndarray,
    midline_x: float,
    spacing: np.ndarray,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """The central airway lumen inside the lung candidate of one axial slice (see the module docstring).

    Parameters
    ----------
    lungs : numpy.ndarray
        bool (y, x) lung candidate of the slice (aerated, airways apart from the lung already removed), working grid.
    hu : numpy.ndarray
        Working-grid CT of the slice (HU).
    trunk : numpy.ndarray
        bool (y, x) trunk mask of the slice.
    midline_x : float
        x index of the patient's midline (the vertebral body's centre when found).
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm.
    params : LungParameters
        ``hilar_airway_*`` fields and ``airway_lumen_hu``.

    Returns
    -------
    numpy.ndarray
        bool (y, x): lung-candidate pixels that are central airway lumen (all False when none is found).
    """
    out = np.zeros(lungs.shape, dtype=bool)
    if not lungs.any():
        return out
    bone = _cage_bone_2d(hu, trunk, params=params)
    vb = vertebral_body(bone, trunk, spacing, midline_x, params=params) if bone is not None and bone.any() else None
    if vb is None:
        return out
    centre_y, centre_x, _, _, back_y = vb
    front_y = centre_y - (back_y - centre_y)  # anterior edge of the vertebral body (y index; y runs posterior)
    filled = ndimage.binary_fill_holes(lungs)
    holes, n_holes = ndimage.label(filled & ~lungs)
    if n_holes:  # only vessel-sized holes are lung; larger enclosed tissue keeps a bronchus around it a tube
        areas = np.bincount(holes.ravel())[1:] * float(spacing[1] * spacing[2])
        filled = lungs | np.isin(holes, 1 + np.nonzero(areas <= params.hilar_airway_fill_max_mm2)[0])
    radius = max(1, int(round(params.hilar_airway_open_mm / spacing[2])))
    core = ndimage.binary_opening(filled, structure=disk(radius))
    thin = lungs & ~core
    lab, n = ndimage.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return out
    lumen = lungs & (hu < params.airway_lumen_hu)
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs]
    offset_mm = np.abs(xs - float(centre_x)) * spacing[2]
    for i in range(1, n + 1):
        sel = ids == i
        nearest = int(np.argmin(np.where(sel, offset_mm, np.inf)))
        if offset_mm[nearest] > params.hilar_airway_midline_mm:
            continue
        anterior_mm = (front_y - ys[nearest]) * spacing[1]
        if not params.hilar_airway_min_anterior_mm <= anterior_mm <= params.hilar_airway_max_anterior_mm:
            continue
        component = lab == i
        if float(lumen[component].mean()) < params.hilar_airway_min_lumen_share:
            continue
        out |= component
    return out
