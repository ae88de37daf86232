"""Weight-free lung segmentation that keeps consolidation inside the lung: :func:`segment_lungs`.

All steps run on a coarse working grid of about ``working_spacing_mm`` (the input block-averaged); step 7 brings the
labels back to the input grid. Stacks thinner than 30 mm (single teaching slices, crops) take the **2-D path**
(per slice), volumes the **3-D path**.

1. **Air** = HU < ``air_threshold_hu`` (-400); **outside air** = air connected, within each axial slice, to the image
   border (tight crops through the body: pure air only). Air inside the body is the lung candidate
   (:func:`_segment_array`).
2. **Non-lung air dropped**: components too small or pure gas (mean < -960 HU) (:func:`_drop_small_and_gas`); 3-D
   path, supine or unknown patient position: abdominal gas (anterior-only, pure-air interior) after the airways are
   removed (:func:`_drop_abdominal_gas`; ``qa["dropped_gas_ml"]``, flags ``no_lung_gas_only`` /
   ``gas_rule_off_not_supine``); 2-D path, after step 4's thoracic cavity: the same per axial slice
   (:func:`~kicc_analysis.segmentation.planes.drop_abdominal_gas_2d`, rule ``abdominal_gas_2d``).
3. **Airways**: the trachea is found as a small, round, midline air region in the cranial slices and tracked
   through the candidate until it enters the lung (:func:`_airway_3d`); 2-D path: small, dark (< -900 HU), midline
   components (:func:`_airway_2d`); on single axial slices, after the thoracic cavity (step 4), a main bronchus
   joined to the lung is cut off: a tube-wide part of the candidate that reaches the carina on the midline in front
   of the vertebral body and holds pure air (``airways_2d.py``, :func:`hilar_airway_2d`, rule ``hilar_airway_2d``).
4. **Left/right split** (:func:`_split_left_right`): components, eroded apart where the lungs touch and grown back;
   side from the centroid relative to the body centre (LPS: the right lung has the smaller x). 2-D path
   (lungs-1.8): first the thoracic cavity of each slice (:func:`_thoracic_cavity`; aerated components mostly
   outside it are dropped), then sides by position relative to the midline (:func:`_midline_2d`,
   :func:`_split_by_midline`). A single coronal or sagittal slice is segmented in its own plane
   (:func:`_segment_plane`; its airway, gas and severity rules: :mod:`~kicc_analysis.segmentation.planes`).
5. **Filling** (:func:`_fill_slices`): holes of each lung per axial slice (vessels, bronchi, enclosed opacities).
6. **Dense recovery** (:func:`_recover_dense`; ``recover_dense=False`` skips it): soft tissue (-400..+150 HU) that
   is lung, rules in this order, each on what is not recovered yet:

   a. convex-hull deficit of each slice's lung, non-medial components (:func:`_recover_hull_deficit`, here);
   b. sub-pleural band up to the rib cage (``_common.py``, :func:`_recover_rib_cage`);
   c. 3-D outline interpolation between slices (``_common.py``, :func:`_recover_between_slices`);
   d. 2-D path only (``dense_2d.py``): mediastinum filter on (a) and (b); after (c), dependent rule, air bronchograms,
      dependent consolidation inside the thoracic cavity, posterior consolidation beside the spine, the mediastinal
      block filter (nothing in the solid soft tissue between the lungs) and the cage filter (nothing outside the
      cavity);
   e. 3-D path only (``dense_3d.py``): lung base on the diaphragm dome, paravertebral gutter, costophrenic recess;
   f. 3-D path only (``dense_3d.py``, ``halo_gate=True``): halo gate -- voxels from (b) and (c) are kept only in
      recovered components that border diseased lung (ground glass) or no aerated lung (:func:`_with_abnormal_halo`).

   Recovered voxels take the nearest lung's label and are returned as ``dense_recovered``.
7. **Input grid** (:func:`_upsample_refined`): labels go back block by block; in the boundary band a full-resolution
   voxel is lung when it is below ``boundary_max_hu`` (single slices; -200 HU, the visible pleural boundary) or
   ``air_threshold_hu`` (3-D path; -400 HU, half air: volumes without a partial-volume rim) or lies in a recovered
   dense block. 2-D axial path
   (``boundary_2d.py``, :func:`~kicc_analysis.segmentation.boundary_2d.refine_boundary_2d`): dense-recovered input
   pixels beyond the pleural line (the inner surface of the ribs, bridged across the intercostal spaces) are taken
   out (rule ``pleural_line_2d``), then the enclosed holes of each lung are filled on the input grid
   (``fill_holes_2d``). QA volumes and flags: :func:`_quality`.
8. **Grid-phase vote** (2-D axial path, ``phase_votes`` 4): steps 1-7 run on four working grids that start 0 or half a
   block earlier in y and x (:func:`_grid_phases`, :func:`_segment_on_grid`), and each input pixel takes the majority
   (:func:`_vote_phases`), so the mask does not depend on where the block grid falls on the anatomy.

Settings: :class:`~kicc_analysis.segmentation.parameters.LungParameters`; step-6 rules in order:
:func:`dense_rules`, the mL each added in ``qa["rule_added_ml"]``. Version history (``ALGORITHM_VERSION``): CHANGELOG.md;
measurements: docs/ct_development_log.md.

Why hand-written: no maintained Python library provides a weight-free lung segmentation that keeps dense lung
(lungmask and TotalSegmentator need downloaded model weights); every heavy step (resampling, labelling, distance
transforms, hulls) is SimpleITK, SciPy or scikit-image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ..errors import SegmentationError
from ..imaging import get_load_report
from ._common import (
    LEFT,
    RIGHT,
    STRUCT_2D,
    STRUCT_3D,
    _recover_between_slices,
    _recover_rib_cage,
    nearest_label,
    thick_part,
    trunk_mask,
    vertebral_body,
)
from .airways_2d import hilar_airway_2d
from .base_2d import below_dome_2d
from .boundary_2d import refine_boundary_2d
from .dense_2d import (
    _cage_bone_2d,
    _mediastinal_block_2d,
    _mediastinum_2d,
    _recover_bronchograms_2d,
    _recover_dependent_2d,
    _recover_dependent_cavity_2d,
    _recover_posterior_2d,
    thoracic_cavity_2d,
)
from .dense_3d import _recover_consolidated_base, _recover_gutter, _recover_lung_base, _with_abnormal_halo
from .geometry import interior_median_hu, posterior_half
from .parameters import DEFAULT_PARAMETERS, LungParameters
from .planes import abnormal_share, airway_tube_plane, drop_abdominal_gas_2d

ALGORITHM_VERSION = "lungs-1.11"  # bump when outputs change; history in CHANGELOG.md


@dataclass
class LungSegmentation:
    """Result of :func:`segment_lungs`.

    Attributes
    ----------
    labels : SimpleITK.Image
        uint8 label image on the input grid: 0 background, 1 right lung, 2 left lung.
    qa : dict
        Quality facts: ``right_ml``, ``left_ml``, ``total_ml`` (mL), ``lr_ratio`` (smaller / larger lung),
        ``dense_recovered_ml`` and ``dense_recovered_fraction`` (share of the mask added by dense recovery),
        ``leak_fraction`` (share of the mask next to outside air), ``airway_ml`` (trachea/bronchi removed),
        ``mode`` ("3d" or "2d"), ``working_spacing_mm`` and ``flags`` (list of strings, empty when all is well):
        ``no_lung``, ``one_lung``, ``implausible_volume``, ``lr_imbalance``, ``leak_outside_thorax``,
        ``large_dense_recovered``, ``airway_not_found``, ``no_lung_gas_only`` (only abdominal gas was found),
        ``gas_rule_off_not_supine`` (prone or decubitus scan: the abdominal-gas rule was not applied),
        ``low_confidence`` (the mask is likely wrong; use an external mask, see
        :func:`~kicc_analysis.segmentation.load_lung_mask`). ``low_confidence`` (bool) and
        ``low_confidence_reasons`` (list of strings): no lung or one lung, implausible volume, leak outside the
        thorax, smaller / larger lung below ``low_confidence_lr_ratio_3d`` (0.5; single slices
        ``low_confidence_lr_ratio_2d``, 0.25), or more than ``low_confidence_dense_fraction`` (0.3) of the mask
        added by dense recovery (the mask then rests on the rules more than on aerated lung). On the six outlined
        covid_ny_sbu slices (lungs-1.11) it is set on the two most consolidated (A046441, Dice 0.95 / 0.93 against
        the outlines), not on the four at 0.96-0.98.
        ``patient_position`` (the DICOM PatientPosition used, ``""`` when unknown).
        ``cage_removed_ml`` (2-D axial path: aerated components outside the thoracic cavity dropped, working grid,
        mL); ``plane`` (single coronal / sagittal slices only: ``"coronal"`` / ``"sagittal"``) and there
        ``plane_abnormal_share`` (share of the mask above ``halo_abnormal_hu``; above
        ``plane_low_confidence_abnormal_share`` it is a ``low_confidence`` reason).
        ``boundary_changed_ml`` (2-D axial path, step 7 on the input grid: mL each rule changed, negative for
        ``pleural_line_2d`` (removed), positive for ``partial_aeration_2d`` and ``fill_holes_2d`` (added); empty on
        the 3-D path and on slices without a thoracic cavity).
        ``dropped_gas_ml`` (mL) and ``dropped_gas`` (one dict per component dropped as abdominal gas: ``volume_ml``,
        ``interior_median_hu``, ``posterior_share``, ``z_slices``). ``rule_added_ml`` (per step-6 rule run, in
        :func:`dense_rules` order: mL on the working grid it added; negative: what a filter removed).
        ``phase_votes`` (2-D axial path: how many working-grid phases were segmented and voted, see
        ``LungParameters.phase_votes``; 1 elsewhere) and ``phase_agreement`` (share, 0-1, of the mask that every
        run says is lung; 1.0 with one run). With several runs the mL / share facts above that come from the rules
        (``rule_added_ml``, ``boundary_changed_ml``, ``cage_removed_ml``, ``airway_ml``, ``leak_fraction``) are the
        mean over the runs; the volumes, ratios and dense share are measured on the voted mask.
    dense_recovered : SimpleITK.Image
        uint8 mask (input grid) of the voxels added by dense recovery (step 6).
    """

    labels: sitk.Image
    qa: dict[str, Any]
    dense_recovered: sitk.Image

    def __iter__(self):  # allows ``labels, qa = segment_lungs(image)``
        yield self.labels
        yield self.qa


def segment_lungs(
    image: sitk.Image,
    *,
    working_spacing_mm: float | None = None,
    air_threshold_hu: float | None = None,
    recover_dense: bool | None = None,
    dense_max_hu: float | None = None,
    patient_position: str | None = None,
    halo_gate: bool | None = None,
    parameters: LungParameters | None = None,
) -> LungSegmentation:
    """Segment the right and left lung of a chest CT, keeping consolidation inside the lung.

    Parameters
    ----------
    image : SimpleITK.Image
        CT in HU (e.g. from :func:`kicc_analysis.imaging.load_ct`), 3-D (a 2-D image or a 1-slice volume is
        processed slice-wise). Orientation is taken from the array: x -> patient left, y -> posterior, z -> superior
        (canonical LPS, as ``load_ct`` returns).
    working_spacing_mm : float
        Approximate in-plane and through-plane spacing (mm) of the working grid (input is block-averaged by integer
        factors; never upsampled).
    air_threshold_hu : float
        Voxels below this (HU) are air-like (aerated lung, airways, outside air).
    recover_dense : bool
        Run step 6 (dense recovery). Switch off to get a classical aerated-lung mask.
    dense_max_hu : float
        Upper HU limit of recovered dense lung (bone and contrast-filled vessels above are not lung).
    patient_position : str, optional
        DICOM PatientPosition (``"HFS"``/``"FFS"`` supine, ``"HFP"``/``"FFP"`` prone, ``"HFDL"``, ... decubitus).
        ``None`` (default): taken from the load report of :func:`kicc_analysis.imaging.load_ct` when there is one,
        else unknown, which is treated as supine (the usual chest CT). The abdominal-gas rule (3-D) assumes gas rises
        anteriorly, as in a supine patient; for any other position it is switched off and the QA flag
        ``gas_rule_off_not_supine`` is set (bowel or stomach gas may then be labelled lung: check ``qa``).
    halo_gate : bool
        3-D path (lungs-1.6): dense tissue recovered by the rib-cage band and the outline interpolation is kept only
        where it borders diseased lung (ground glass) or no aerated lung at all, so the heart border, pericardial
        fat, hilar vessels and chest-wall rim next to normal lung are not counted as consolidation (healthy real
        CT: 97 -> 18 mL). ``False`` restores lungs-1.5 (more pure consolidation against normal lung kept, and that
        non-lung tissue with it). ``qa["halo_dropped_ml"]`` reports what the gate removed.
    parameters : LungParameters, optional
        Every setting (:class:`~kicc_analysis.segmentation.parameters.LungParameters`; default: its defaults,
        2.5 mm, -400 HU, dense recovery on, 150 HU, halo gate on). The five keyword arguments above override the
        fields of the same name when given. ``parameters.disabled_rules`` switches step-6 rules off by name.

    Returns
    -------
    LungSegmentation
        ``.labels`` (1 right, 2 left), ``.qa`` (volumes, flags), ``.dense_recovered``; unpacks as ``labels, qa``.

    Raises
    ------
    SegmentationError
        When the image is not a scalar 2-D/3-D image.
    """
    params = _resolve_parameters(
        parameters,
        working_spacing_mm=working_spacing_mm,
        air_threshold_hu=air_threshold_hu,
        recover_dense=recover_dense,
        dense_max_hu=dense_max_hu,
        halo_gate=halo_gate,
    )
    working_spacing_mm = params.working_spacing_mm
    image3d, was_2d = _as_3d(image)
    position = _patient_position(image, patient_position)
    view = _PlaneView.of(image3d)
    if view is not None:  # a single coronal or sagittal slice
        return _segment_plane(image3d, view, position, params)
    spacing = np.array(image3d.GetSpacing()[::-1], dtype=float)  # (z, y, x) mm
    factors = np.maximum(1, np.floor(working_spacing_mm / spacing + 1e-6)).astype(int)
    factors = np.minimum(factors, np.array(image3d.GetSize()[::-1]))  # never shrink an axis below one voxel
    thin = (image3d.GetSize()[2] // factors[0]) * spacing[0] * factors[0] < 30.0
    gas_rule = position in params.supine_positions or not position
    phases = _grid_phases(factors, params.phase_votes) if thin else [(0, 0)]
    runs = [_segment_on_grid(image3d, factors, phase, thin, gas_rule, params) for phase in phases]
    if len(runs) == 1:
        labels_full, dense_full, info = runs[0]
    else:
        labels_full, dense_full, info = _vote_phases(runs)
    info["patient_position"] = position
    work_spacing = spacing * factors
    labels_img = _array_to_image(labels_full, image3d)
    dense_img = _array_to_image(dense_full, image3d)
    qa = _quality(labels_img, dense_img, info, thin, work_spacing, params)
    if was_2d:
        labels_img, dense_img = labels_img[:, :, 0], dense_img[:, :, 0]
    return LungSegmentation(labels=labels_img, qa=qa, dense_recovered=dense_img)


@dataclass(frozen=True)
class _PlaneView:
    """How a single coronal or sagittal slice maps to a canonical 2-D view (array (1, rows, columns)): rows run
    superior -> inferior, columns patient right -> left (coronal) or anterior -> posterior (sagittal)."""

    plane: str  # "coronal" or "sagittal"
    order: tuple[int, int, int]  # array axes of the slice (singleton, row, column)
    flips: tuple[bool, bool]  # rows / columns reversed after the transpose
    x_mm: float  # LPS x (mm) of the slice centre (sagittal: which side of the scanner's x = 0 it lies)

    @staticmethod
    def of(image: sitk.Image) -> _PlaneView | None:
        """The view of a 3-D image that is one coronal or sagittal slice (from its direction), else ``None``."""
        size = image.GetSize()  # (x, y, z) image axes; array axis a = image axis 2 - a
        single = [axis for axis in range(3) if size[axis] == 1]
        if len(single) != 1:
            return None
        direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)  # column i: image axis i (LPS)
        normal_axis = int(np.argmax(np.abs(direction[:, single[0]])))
        if normal_axis == 2:  # axial
            return None
        in_plane = [axis for axis in range(3) if axis != single[0]]
        row = max(in_plane, key=lambda axis: abs(direction[2, axis]))  # superior-inferior axis
        column = next(axis for axis in in_plane if axis != row)
        along = 0 if normal_axis == 1 else 1  # coronal columns run along x (left), sagittal along y (posterior)
        centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in size])
        return _PlaneView(
            plane="coronal" if normal_axis == 1 else "sagittal",
            order=(2 - single[0], 2 - row, 2 - column),
            flips=(bool(direction[2, row] > 0), bool(direction[along, column] < 0)),
            x_mm=float(centre[0]),
        )

    def forward(self, array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, self.order)
        if self.flips[0]:
            out = out[:, ::-1]
        if self.flips[1]:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)

    def backward(self, array: np.ndarray) -> np.ndarray:
        out = array
        if self.flips[1]:
            out = out[:, :, ::-1]
        if self.flips[0]:
            out = out[:, ::-1]
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.order)))


def _segment_plane(image3d: sitk.Image, view: _PlaneView, position: str, params: LungParameters) -> LungSegmentation:
    """:func:`segment_lungs` on one coronal or sagittal slice: air-based mask, no dense recovery (its rules are
    axial), nothing below the diaphragm; sides from the midline (coronal) or the slice position (sagittal)."""
    spacing3 = np.array(image3d.GetSpacing()[::-1], dtype=float)
    canon_hu = view.forward(sitk.GetArrayFromImage(image3d).astype(np.float32))
    canon_spacing = spacing3[list(view.order)]
    canon = sitk.GetImageFromArray(canon_hu)
    canon.SetSpacing(tuple(float(v) for v in canon_spacing[::-1]))
    factors = np.maximum(1, np.floor(params.working_spacing_mm / canon_spacing + 1e-6)).astype(int)
    factors = np.minimum(factors, np.array(canon_hu.shape))
    hu = sitk.GetArrayFromImage(sitk.BinShrink(canon, [int(f) for f in factors[::-1]]))
    work_spacing = canon_spacing * factors
    labels_w, info = _segment_plane_array(hu, work_spacing, view, params)
    info["patient_position"] = position
    labels_c, _ = _upsample_refined(
        labels_w, np.zeros_like(labels_w, dtype=bool), factors, canon, params.boundary_max_hu
    )
    labels_img = _array_to_image(view.backward(labels_c), image3d)
    dense_img = _array_to_image(np.zeros(sitk.GetArrayViewFromImage(image3d).shape, dtype=np.uint8), image3d)
    qa = _quality(labels_img, dense_img, info, True, work_spacing[list(np.argsort(view.order))], params)
    qa["plane"] = view.plane
    qa["plane_abnormal_share"] = abnormal_share(labels_c, canon_hu, params)  # planes.py: air-only mask, severe disease
    if qa["plane_abnormal_share"] > params.plane_low_confidence_abnormal_share:
        qa["low_confidence_reasons"].append(f"plane_abnormal_share>{params.plane_low_confidence_abnormal_share:g}")
        qa["low_confidence"] = True
        if "low_confidence" not in qa["flags"]:
            qa["flags"].append("low_confidence")
    return LungSegmentation(labels=labels_img, qa=qa, dense_recovered=dense_img)


def _segment_plane_array(
    hu: np.ndarray, spacing: np.ndarray, view: _PlaneView, params: LungParameters
) -> tuple[np.ndarray, dict[str, Any]]:
    """Lung labels of a canonical coronal / sagittal view (1, rows superior -> inferior, columns), working grid.

    Air inside the body (steps 1-2) gives the candidates; the trachea / main bronchi are taken out as a narrow
    midline pure-air tube (:func:`~kicc_analysis.segmentation.planes.airway_tube_plane`). Lung = the most superior
    candidate whose interior (eroded by one pixel) is lung-like rather than gas (share of pixels in ``-960..-500`` HU
    at least ``plane_min_parenchyma``, interior median at least ``gas_max_hu`` unless the area is at least
    ``plane_gas_min_lung_mm2`` (rule ``gas_plane``), area at least
    ``plane_min_lung_mm2``, centroid in the upper ``plane_max_row_share`` of
    the body's height in the slice), and every lung-like candidate whose centroid
    lies above that lung's lowest row (the other lung; never the stomach or bowel gas under the diaphragm).
    Coronal: sides by the midline (body centre); sagittal: the whole slice is the right lung when its centre lies
    at LPS x < 0, else the left (scanner coordinates: the patient lies about centred; flag ``side_from_position``).
    """
    info: dict[str, Any] = {"airway_found": None, "rule_added_ml": {}, "halo_gate": False, "halo_dropped_ml": 0.0}
    pixel_mm2 = float(spacing[1] * spacing[2])
    voxel_ml = float(np.prod(spacing)) / 1000.0
    air = hu < params.air_threshold_hu
    comp, _ = ndimage.label(air[0], structure=np.ones((3, 3)))
    # outside air touches the side or inferior border; the trachea leaves the field at the superior border
    border = np.unique(np.concatenate([comp[-1], comp[:, 0], comp[:, -1]]))
    outside = np.isin(comp, border[border > 0])[None]
    candidate = air & ~outside
    body_x = _body_centre_x(~outside)
    candidate = _drop_small_and_gas(candidate, hu, voxel_ml, pixel_mm2, True)
    if view.plane == "coronal":
        airway = _airway_2d(candidate, hu, body_x, pixel_mm2)
        candidate &= ~airway
        info["airway_ml"] = float(airway.sum()) * voxel_ml
    body_rows = np.nonzero((~outside[0]).any(axis=1))[0]
    if body_rows.size == 0:  # no body in the slice (all air touching the border): nothing to segment
        body_rows = np.array([0, hu.shape[1] - 1])
    upper = body_rows.min() + params.plane_max_row_share * (body_rows.max() - body_rows.min())
    near_midline = view.plane == "coronal" or abs(view.x_mm) <= params.plane_airway_midline_mm
    if near_midline and params.rule_enabled("airway_tube_plane"):  # trachea / main bronchi (planes.py)
        midline = float(body_x[0]) if view.plane == "coronal" else None
        tube = airway_tube_plane(candidate, hu, spacing, midline_column=midline, max_row=upper, params=params)
        candidate &= ~tube
        info["airway_ml"] = info.get("airway_ml", 0.0) + float(tube.sum()) * voxel_ml
    comp, n = ndimage.label(candidate[0], structure=np.ones((3, 3)))
    lungs = np.zeros(candidate.shape[1:], dtype=bool)
    if n:
        index = np.arange(1, n + 1)
        area = ndimage.sum_labels(candidate[0], comp, index) * pixel_mm2
        interior = ndimage.binary_erosion(candidate[0])
        parenchyma = interior & (hu[0] >= -960) & (hu[0] <= -500)
        share = np.nan_to_num(
            ndimage.sum_labels(parenchyma, comp, index) / np.maximum(ndimage.sum_labels(interior, comp, index), 1)
        )
        rows = np.array([c[0] for c in ndimage.center_of_mass(candidate[0], comp, index)]).reshape(-1)
        not_gas = np.ones(n, dtype=bool)
        if params.rule_enabled("gas_plane"):  # pure gas (stomach, bowel) is never lung (planes.py)
            pure = np.array([interior_median_hu(comp == i, hu[0]) < params.gas_max_hu for i in index])
            not_gas = ~pure | (area >= params.plane_gas_min_lung_mm2)  # large: an emphysematous lung section
        lung_like = (share >= params.plane_min_parenchyma) & (area >= params.plane_min_lung_mm2) & (rows <= upper)
        lung_like &= not_gas
        if lung_like.any():
            main = int(index[lung_like][np.argmin(rows[lung_like])])  # the most superior: gas lies below
            lowest = int(np.nonzero((comp == main).any(axis=1))[0].max())
            keep = (share >= params.plane_min_parenchyma) & (rows <= lowest) & not_gas
            keep[main - 1] = True
            lungs = np.isin(comp, index[keep])
            info["dropped_below_diaphragm_ml"] = float((candidate[0] & ~lungs).sum()) * voxel_ml
    labels = np.zeros(candidate.shape, dtype=np.uint8)
    if view.plane == "coronal":
        labels[0] = _split_by_midline(lungs, float(body_x[0]))
    else:
        labels[0][lungs] = RIGHT if view.x_mm < 0 else LEFT
    labels = _fill_slices(labels)
    info["leak_fraction"] = _leak_fraction(labels, outside)
    info["side_from_position"] = view.plane == "sagittal" and bool(lungs.any())
    return labels, info


def _resolve_parameters(parameters: LungParameters | None, **overrides: Any) -> LungParameters:
    """``parameters`` (default :data:`DEFAULT_PARAMETERS`) with the keyword arguments that were given."""
    params = DEFAULT_PARAMETERS if parameters is None else parameters
    if not isinstance(params, LungParameters):
        raise SegmentationError(f"parameters: expected a LungParameters, got {type(params).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    names = {f.name for f in fields(LungParameters)}
    assert set(given) <= names
    return replace(params, **given) if given else params


# --------------------------------------------------------------------------------------------------- core steps


def _as_3d(image: sitk.Image) -> tuple[sitk.Image, bool]:
    if not isinstance(image, sitk.Image):
        raise SegmentationError(f"expected a SimpleITK.Image in HU, got {type(image).__name__}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegmentationError("expected a scalar (grey-level) CT image, got a multi-component image")
    if image.GetDimension() == 2:
        return _as_3d(sitk.JoinSeries([image]))[0], True
    if image.GetDimension() != 3:
        raise SegmentationError(f"expected a 2-D or 3-D CT image, got {image.GetDimension()}-D")
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        bad = int((~np.isfinite(sitk.GetArrayViewFromImage(image))).sum())
        if bad:
            raise SegmentationError(f"the CT has {bad} non-finite (NaN/inf) voxel(s); expected HU everywhere")
    return image, False


def _patient_position(image: sitk.Image, given: str | None) -> str:
    """DICOM PatientPosition to use: ``given``, else the one in ``load_ct``'s report, else ``""`` (unknown)."""
    if given is not None:
        return str(given).strip().upper()
    report = get_load_report(image)
    return report.patient_position if report is not None else ""


def _segment_array(
    hu: np.ndarray,
    spacing: np.ndarray,
    *,
    thin: bool,
    gas_rule: bool = True,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Steps 1-6 on the working-grid array (z, y, x). Returns labels, dense-recovered mask, info."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    pixel_mm2 = float(spacing[1] * spacing[2])
    info: dict[str, Any] = {
        "airway_found": None,
        "halo_gate": params.rule_enabled("halo_gate") and params.recover_dense and not thin,
        "halo_dropped_ml": 0.0,
        "rule_added_ml": {},
    }

    air = hu < params.air_threshold_hu
    lab2d, _ = ndimage.label(air, structure=STRUCT_2D)
    outside_labels = []
    for z in range(hu.shape[0]):
        edge = np.concatenate([lab2d[z, 0, :], lab2d[z, -1, :], lab2d[z, :, 0], lab2d[z, :, -1]])
        border = np.unique(edge[edge > 0])
        if border.size and (edge > 0).mean() < params.tight_crop_border_air:
            # tight crop through the body (teaching images): border air is outside air only if it is pure air
            # (or a small corner piece: < 10 % of the largest air region of the slice)
            means = np.asarray(ndimage.mean(hu[z], lab2d[z], border))
            sizes = np.bincount(lab2d[z].ravel())
            small = sizes[border] < 0.1 * sizes[1:].max()
            border = border[(means < params.tight_crop_outside_max_hu) | small]
        outside_labels.append(border)
    border = np.concatenate(outside_labels)
    outside = np.isin(lab2d, border)
    candidate = air & ~outside
    body = ~outside
    body_x = _body_centre_x(body)

    candidate = _drop_small_and_gas(candidate, hu, voxel_ml, pixel_mm2, thin)
    if thin:
        airway = _airway_2d(candidate, hu, body_x, pixel_mm2)
    else:
        airway = _airway_3d(candidate, hu, body_x, pixel_mm2, params=params)
        info["airway_found"] = bool(airway.any())
    info["airway_ml"] = float(airway.sum()) * voxel_ml
    lungs = candidate & ~airway
    lungs = _drop_small_and_gas(lungs, hu, voxel_ml, pixel_mm2, thin)
    trunk = trunk_mask(outside)
    cavity = None
    if thin and params.rule_enabled("cage_2d"):
        cavity, removed = _thoracic_cavity(hu, trunk, lungs, spacing, params)
        lungs = lungs & ~removed
        info["cage_removed_ml"] = float(removed.sum()) * voxel_ml
    info["dropped_gas"] = []
    info["gas_rule_off"] = not gas_rule
    if not thin and gas_rule:
        lungs, info["dropped_gas"] = _drop_abdominal_gas(lungs, hu, trunk, voxel_ml, params=params)
    elif thin and gas_rule and params.rule_enabled("abdominal_gas_2d"):  # single axial slices (planes.py)
        lungs, info["dropped_gas"] = drop_abdominal_gas_2d(lungs, hu, trunk, voxel_ml, params=params)

    if thin:  # single slices: side by position relative to the midline (vertebral body), not by component size
        labels = np.zeros(lungs.shape, dtype=np.uint8)
        for z in range(lungs.shape[0]):
            midline = _midline_2d(hu[z], trunk[z], None if cavity is None else cavity[z], body_x[z], spacing, params)
            if params.rule_enabled("hilar_airway_2d"):  # central airway lumen joined to the lung (airways_2d.py)
                hilar = hilar_airway_2d(lungs[z], hu[z], trunk[z], midline, spacing, params=params)
                lungs[z] &= ~hilar
                info["airway_ml"] += float(hilar.sum()) * voxel_ml
            labels[z] = _split_by_midline(lungs[z], midline)
    else:
        labels = _split_left_right(lungs, body_x, thin)
    labels = _fill_slices(labels)
    dense = np.zeros_like(lungs)
    if params.recover_dense and labels.any():
        dense = _recover_dense(
            labels, hu, trunk, spacing, None if thin else body_x, params, info, cavity=cavity, supine=gas_rule
        )
        labels = _fill_slices(labels)
    info["leak_fraction"] = _leak_fraction(labels, outside)
    if thin:  # for step 7 on the input grid (boundary_2d.py); popped by segment_lungs before QA
        info["_cavity"], info["_trunk"] = cavity, trunk
    return labels, dense & (labels > 0), info


def _thoracic_cavity(
    hu: np.ndarray, trunk: np.ndarray, lungs: np.ndarray, spacing: np.ndarray, params: LungParameters
) -> tuple[np.ndarray, np.ndarray]:
    """2-D path: per slice, the thoracic cavity (:func:`thoracic_cavity_2d`) and the aerated components outside it.

    Returns the cavity (bool (z, y, x); a slice without a visible cage is all True) and the lung-candidate pixels to
    drop: components (8-connected, per slice) with less than ``cavity_inside_share`` of their area inside the cavity
    (air in an arm beside the chest, in an object lying on it, under the table).
    """
    cavity = np.ones(hu.shape, dtype=bool)
    removed = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[0]):
        found = thoracic_cavity_2d(hu[z], trunk[z], lungs[z], spacing, params=params)
        if found is None:
            continue
        cavity[z] = found
        comp, n = ndimage.label(lungs[z], structure=np.ones((3, 3)))
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        inside = np.asarray(ndimage.mean(found, comp, index), dtype=float)
        removed[z] = np.isin(comp, index[inside < params.cavity_inside_share])
    return cavity, removed


def _midline_2d(
    hu: np.ndarray,
    trunk: np.ndarray,
    cavity: np.ndarray | None,
    body_x: float,
    spacing: np.ndarray,
    params: LungParameters,
) -> float:
    """x (index) of the patient's midline in one axial slice: the vertebral body's centre when found, else the
    thoracic cavity's centre, else the body's."""
    guess = float(np.nonzero(cavity)[1].mean()) if cavity is not None and not cavity.all() else float(body_x)
    bone = _cage_bone_2d(hu, trunk, params=params)
    if bone is not None and bone.any():
        vb = vertebral_body(bone, trunk, spacing, guess, params=params)
        if vb is not None:
            return float(vb[1])
    return guess


def _split_by_midline(lungs: np.ndarray, midline: float) -> np.ndarray:
    """Lung labels of one slice (y, x): components on the smaller-x side of ``midline`` are right (1), the others
    left (2); a component with at least a fifth of its area on each side (lungs touching in front of the heart)
    is cut by the erosion split (:func:`_split_block`) and each part takes the side of its centroid."""
    out = np.zeros(lungs.shape, dtype=np.uint8)
    comp, n = ndimage.label(lungs, structure=np.ones((3, 3)))
    xs = np.arange(lungs.shape[1])[None, :]
    for i in range(1, n + 1):
        part = comp == i
        right_share = float((part & (xs < midline)).sum()) / float(part.sum())
        if min(right_share, 1.0 - right_share) < 0.2:
            out[part] = RIGHT if right_share >= 0.5 else LEFT
            continue
        pieces = _split_block(part[None], np.array([midline]), STRUCT_2D)[0]
        for value in (1, 2):
            piece = pieces == value
            if piece.any():
                out[piece] = RIGHT if np.nonzero(piece)[1].mean() < midline else LEFT
    return out


def _body_centre_x(body: np.ndarray) -> np.ndarray:
    """Per-slice x centre (index) of the body mask; falls back to the image centre."""
    nz, _, nx = body.shape
    centres = np.full(nz, (nx - 1) / 2.0)
    xs = np.arange(nx)
    col = body.sum(axis=1)  # (z, x)
    total = col.sum(axis=1)
    ok = total > 0
    centres[ok] = (col[ok] * xs).sum(axis=1) / total[ok]
    return centres


def _drop_small_and_gas(mask: np.ndarray, hu: np.ndarray, voxel_ml: float, pixel_mm2: float, thin: bool):
    """Keep lung-like components: large enough and not pure gas (mean HU >= -960)."""
    structure = STRUCT_2D if thin else STRUCT_3D
    lab, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return mask
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(mask, lab, index)
    means = ndimage.mean(hu, lab, index)
    if thin:
        # per-slice components: at least 2 cm^2 and 1 % of the largest
        min_size = max(200.0 / pixel_mm2, 0.01 * sizes.max())
    else:
        min_size = max(5.0 / voxel_ml, 0.02 * sizes.max())
    keep = (sizes >= min_size) & ((means >= -960) | (sizes >= 0.3 * sizes.max()))
    return np.isin(lab, index[keep])


def _drop_abdominal_gas(
    lungs: np.ndarray,
    hu: np.ndarray,
    trunk: np.ndarray,
    voxel_ml: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Drop stomach and bowel gas (3-D path): air components that are anterior-only and pure air.

    Abdominal CTs (or PET/CTs) that contain only the lung bases -- or no lung at all -- have stomach and colon gas
    inside the body, which the air rule (step 1) takes as lung candidate. Anatomy separates them: in the supine
    abdomen gas rises to the non-dependent (anterior) side, whereas every lung, also a lung base, an emphysematous
    or a single lung, lies against the posterior ribs beside the spine. A component is gas when both hold:

    * less than ``gas_max_posterior_share`` of its voxels lie in the posterior half of the trunk (per slice,
      midpoint of the trunk's anterior-posterior extent), and
    * the median HU of its interior (component eroded by one voxel, to skip the partial-volume wall) is below
      ``gas_max_hu`` -- pure air, so the aerated anterior lung left when the dependent lung is consolidated
      (ARDS, COVID-19, around -800 HU) is never dropped.

    HU alone is not used: the emphysematous COPDGene lung (4 mm) has an interior median of -930 HU and 19 % of its
    voxels below -950 HU, close to gas; its posterior share (0.56) keeps it.

    Parameters
    ----------
    lungs : numpy.ndarray
        bool (z, y, x) lung candidate (airways removed) on the working grid.
    hu : numpy.ndarray
        Working-grid CT (HU).
    trunk : numpy.ndarray
        bool (z, y, x) trunk mask (see :func:`~kicc_analysis.segmentation.geometry.trunk_mask`).
    voxel_ml : float
        Working voxel volume (mL).

    Returns
    -------
    tuple
        The candidate without gas components and, per dropped component, a dict with ``volume_ml``,
        ``interior_median_hu``, ``posterior_share`` and ``z_slices`` (first, last working-grid slice).
    """
    lab, n = ndimage.label(lungs, structure=STRUCT_3D)
    if n == 0:
        return lungs, []
    posterior = np.broadcast_to(posterior_half(trunk), lungs.shape)
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(lungs, lab, index)
    posterior_share = ndimage.sum_labels(posterior, lab, index) / sizes
    boxes = ndimage.find_objects(lab)
    dropped: list[dict[str, float]] = []
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    for i, share, box in zip(index, posterior_share, boxes, strict=True):
        if share >= params.gas_max_posterior_share:
            continue
        median_hu = interior_median_hu(lab[box] == i, hu[box])
        if median_hu >= params.gas_max_hu:
            continue
        keep[i] = False
        dropped.append(
            {
                "volume_ml": float(sizes[i - 1]) * voxel_ml,
                "interior_median_hu": median_hu,
                "posterior_share": float(share),
                "z_slices": (int(box[0].start), int(box[0].stop - 1)),
            }
        )
    if not dropped:
        return lungs, []
    return keep[lab], dropped


def _airway_2d(candidate: np.ndarray, hu: np.ndarray, body_x: np.ndarray, pixel_mm2: float) -> np.ndarray:
    """Per-slice airway rule for thin stacks: small (< 8 cm^2), dark (< -900 HU), midline components."""
    airway = np.zeros_like(candidate)
    nx = candidate.shape[2]
    for z in range(candidate.shape[0]):
        lab, n = ndimage.label(candidate[z], structure=np.ones((3, 3)))
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        area = ndimage.sum_labels(candidate[z], lab, index) * pixel_mm2
        mean = ndimage.mean(hu[z], lab, index)
        cx = np.array([c[1] for c in ndimage.center_of_mass(candidate[z], lab, index)])
        # midline band: 30 % of the air-bearing width of the slice (at least 30 % of the image width) each side
        width = max(float(candidate[z].any(axis=0).sum()), 0.3 * nx)
        is_airway = (area < 800) & (mean < -900) & (np.abs(cx - body_x[z]) < 0.3 * width)
        airway[z] = np.isin(lab, index[is_airway])
    return airway


def _airway_3d(
    candidate: np.ndarray,
    hu: np.ndarray,
    body_x: np.ndarray,
    pixel_mm2: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Find the trachea in cranial slices and track trachea + main bronchi slice by slice.

    Tracking runs on the airway lumen (< ``airway_lumen_hu``, darker than parenchyma) so the trachea stays apart
    from touching lung; the partial-volume ring around the tracked lumen is then removed too.
    """
    nz = candidate.shape[0]
    lumen = candidate & (hu < params.airway_lumen_hu)
    airway = np.zeros_like(candidate)
    seed_z, seed = None, None
    radius_px = 30.0 / np.sqrt(pixel_mm2)
    for z in range(nz - 1, -1, -1):
        if lumen[z].any():
            lab, n = ndimage.label(lumen[z], structure=np.ones((3, 3)))
            index = np.arange(1, n + 1)
            area = ndimage.sum_labels(lumen[z], lab, index) * pixel_mm2
            centres = ndimage.center_of_mass(lumen[z], lab, index)
            offsets = np.array([abs(c[1] - body_x[z]) for c in centres])
            ok = (area >= 40) & (area <= 900) & (offsets < radius_px)
            if ok.any():
                best = int(np.argmin(np.where(ok, offsets, np.inf)))
                seed_z, seed = z, lab == index[best]
                break
        if z < nz - max(3, nz // 3):  # only look in the cranial third
            break
    if seed is None:
        return airway
    max_area = max(3.0 * float(seed.sum()), 250.0 / pixel_mm2)
    airway[seed_z] = seed
    for direction in (-1, 1):
        current = seed
        z = seed_z + direction
        while 0 <= z < nz and current.any():
            lab, _ = ndimage.label(lumen[z], structure=np.ones((3, 3)))
            touching = np.unique(lab[ndimage.binary_dilation(current) & (lab > 0)])
            nxt = np.zeros_like(current)
            for t in touching:
                comp = lab == t
                if comp.sum() <= max_area:
                    nxt |= comp
            airway[z] = nxt
            current = nxt
            z += direction
    ring = ndimage.binary_dilation(airway, structure=STRUCT_2D) & candidate & ~lumen
    return airway | ring


def _split_left_right(lungs: np.ndarray, body_x: np.ndarray, thin: bool) -> np.ndarray:
    """Label 1 (right, smaller x) and 2 (left) by components, eroding to separate touching lungs."""
    labels = np.zeros(lungs.shape, dtype=np.uint8)
    if not lungs.any():
        return labels
    if thin:
        for z in range(lungs.shape[0]):
            labels[z] = _split_block(lungs[z : z + 1], body_x[z : z + 1], STRUCT_2D)[0]
        return labels
    return _split_block(lungs, body_x, STRUCT_3D)


def _split_block(mask: np.ndarray, body_x: np.ndarray, structure: np.ndarray) -> np.ndarray:
    labels = np.zeros(mask.shape, dtype=np.uint8)
    if not mask.any():
        return labels
    markers = _two_markers(mask, structure)
    centre = float(np.mean(body_x[mask.any(axis=(1, 2))]))
    if markers is None:
        # one lung (or fused beyond separation): side by centroid of each component
        lab, n = ndimage.label(mask, structure=structure)
        for i, c in enumerate(ndimage.center_of_mass(mask, lab, np.arange(1, n + 1)), start=1):
            labels[lab == i] = RIGHT if c[2] < centre else LEFT
        return labels
    # grow markers back into the mask (nearest marker voxel)
    nearest = nearest_label(markers, mask)
    c1 = ndimage.center_of_mass(nearest == 1)[2]
    c2 = ndimage.center_of_mass(nearest == 2)[2]
    right_marker = 1 if c1 < c2 else 2
    labels[nearest == right_marker] = RIGHT
    labels[(nearest > 0) & (nearest != right_marker)] = LEFT
    return labels


def _two_markers(mask: np.ndarray, structure: np.ndarray, max_erosions: int = 6) -> np.ndarray | None:
    """Markers 1/2 of the two largest components (after erosion if needed), or None if only one lung."""
    eroded = mask
    total = mask.sum()
    for _step in range(max_erosions + 1):
        lab, n = ndimage.label(eroded, structure=structure)
        if n >= 2:
            sizes = ndimage.sum_labels(eroded, lab, np.arange(1, n + 1))
            order = np.argsort(sizes)[::-1]
            if sizes[order[1]] >= 0.08 * sizes[order[0]]:
                markers = np.zeros(mask.shape, dtype=np.uint8)
                markers[lab == order[0] + 1] = 1
                markers[lab == order[1] + 1] = 2
                # keep other large-ish components with their nearest marker later (they are in mask)
                return markers
        if eroded.sum() < 0.05 * total:
            break
        eroded = ndimage.binary_erosion(eroded, structure=structure)
    return None


def _fill_slices(labels: np.ndarray) -> np.ndarray:
    """Fill holes of each lung in each axial slice (vessels, bronchi, enclosed opacities)."""
    out = labels.copy()
    for z in np.nonzero(labels.any(axis=(1, 2)))[0]:
        for value in (RIGHT, LEFT):
            mask = labels[z] == value
            if mask.any():
                filled = ndimage.binary_fill_holes(mask) & (out[z] == 0)
                out[z][filled] = value
    return out


# -------------------------------------------------------------------------------------- dense recovery (step 6)


@dataclass
class DenseContext:
    """What the step-6 rules of :func:`segment_lungs` share (working grid, (z, y, x)); ``recovered`` grows rule by rule.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 lung labels (1 right, 2 left) before dense recovery.
    hu : numpy.ndarray
        CT (HU).
    dense_ok : numpy.ndarray
        bool, soft tissue that may be lung: ``air_threshold_hu <= HU <= dense_max_hu`` inside the trunk.
    trunk : numpy.ndarray
        bool trunk mask (:func:`~kicc_analysis.segmentation.geometry.trunk_mask`).
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm.
    body_x : numpy.ndarray or None
        Per-slice x centre (index) of the body on the 3-D path; ``None`` on the 2-D path.
    params : LungParameters
        The settings.
    recovered : numpy.ndarray
        bool voxels accepted so far.
    gated : numpy.ndarray
        bool voxels added by rules the halo gate applies to.
    cavity : numpy.ndarray or None
        2-D path: bool thoracic cavity per slice (all True where no cage was found); ``None`` on the 3-D path.
    supine : bool
        The patient lies supine or the position is unknown (dependent = posterior); ``below_dome_2d`` runs only then.
    """

    labels: np.ndarray
    hu: np.ndarray
    dense_ok: np.ndarray
    trunk: np.ndarray
    spacing: np.ndarray
    body_x: np.ndarray | None
    params: LungParameters
    recovered: np.ndarray
    gated: np.ndarray
    cavity: np.ndarray | None = None
    supine: bool = True

    @property
    def free(self) -> np.ndarray:
        """Soft tissue not recovered yet (what an adding rule may take)."""
        return self.dense_ok & ~self.recovered


@dataclass(frozen=True)
class DenseRule:
    """One step-6 rule: ``name`` (see :data:`~kicc_analysis.segmentation.parameters.RULE_NAMES`), ``function``
    (context -> bool mask), ``gated`` (its voxels pass the halo gate, 3-D path) and ``removes`` (a filter: the mask is
    taken out of what is recovered so far instead of added)."""

    name: str
    function: Callable[[DenseContext], np.ndarray]
    gated: bool = False
    removes: bool = False


def dense_rules(path: str) -> list[DenseRule]:
    """The step-6 rules of the ``"2d"`` or ``"3d"`` path, in the order they run.

    Adding rules see only tissue not recovered yet (:attr:`DenseContext.free`, except the first two); removing rules
    (filters) take voxels out of what is recovered so far.

    Examples
    --------
    >>> [rule.name for rule in dense_rules("2d")]
    ['hull_deficit', 'rib_cage', 'mediastinum_2d', 'between_slices', 'dependent_2d', 'bronchograms_2d', 'dependent_cavity_2d',
     'posterior_2d', 'below_dome_2d', 'mediastinal_block_2d', 'cage_2d']
    >>> [(rule.name, rule.gated) for rule in dense_rules("3d") if rule.gated or rule.removes]
    [('rib_cage', True), ('between_slices', True), ('halo_gate', False)]
    """
    common = [
        DenseRule(
            "hull_deficit",
            lambda c: _recover_hull_deficit(c.labels, c.dense_ok, thick_only=c.body_x is not None, params=c.params),
        ),
        # 3-D path: the cage is interpolated between slices
        DenseRule(
            "rib_cage",
            lambda c: _recover_rib_cage(
                c.labels, c.hu, c.dense_ok, c.trunk, c.spacing, between_slices=c.body_x is not None, params=c.params
            ),
            gated=True,
        ),
    ]
    between = DenseRule(
        "between_slices",
        lambda c: _recover_between_slices(c.labels, c.free, c.spacing, params=c.params),
        gated=True,
    )
    if path == "2d":
        return [
            *common,
            # nothing between the lungs (a mediastinal ray meets the sternum / spine, no rib)
            DenseRule(
                "mediastinum_2d", lambda c: _mediastinum_2d(c.labels, c.trunk, c.spacing, params=c.params), removes=True
            ),
            between,
            # dependent consolidation between the lung and the posterior cage
            DenseRule(
                "dependent_2d",
                lambda c: _recover_dependent_2d(
                    c.labels, c.hu, c.free, c.trunk, c.spacing, c.recovered, params=c.params
                ),
            ),
            DenseRule(
                "bronchograms_2d",
                lambda c: _recover_bronchograms_2d(
                    c.labels,
                    c.hu,
                    c.params.air_threshold_hu,
                    c.free,
                    c.trunk,
                    c.spacing,
                    c.recovered,
                    params=c.params,
                    cavity=c.cavity,
                ),
            ),
            # dependent consolidation inside the thoracic cavity, behind the lung, down to the posterior cage
            DenseRule(
                "dependent_cavity_2d",
                lambda c: _recover_dependent_cavity_2d(
                    c.labels, c.hu, c.free, c.trunk, c.cavity, c.spacing, c.recovered, params=c.params
                ),
            ),
            # posterior consolidation against the rib heads, per hemithorax, lateral of the paravertebral line
            DenseRule(
                "posterior_2d",
                lambda c: _recover_posterior_2d(
                    c.labels, c.hu, c.free, c.trunk, c.cavity, c.spacing, c.recovered, params=c.params
                ),
            ),
            # nothing under the diaphragm dome on a lung-base slice (aerated lung only in the posterior crescent)
            DenseRule(
                "below_dome_2d",
                lambda c: below_dome_2d(c.labels, c.recovered, c.cavity if c.supine else None, params=c.params),
                removes=True,
            ),
            # nothing in the mediastinal soft-tissue block (hilum, great vessels) of the slice
            DenseRule(
                "mediastinal_block_2d",
                lambda c: _mediastinal_block_2d(
                    c.labels, c.hu, c.trunk, c.cavity, c.spacing, c.recovered, params=c.params
                ),
                removes=True,
            ),
            # nothing outside the rib cage (arms, objects on the chest, the chest wall beyond the ribs)
            DenseRule("cage_2d", lambda c: _outside_cavity(c.cavity, c.spacing, c.params), removes=True),
        ]
    if path == "3d":
        return [
            *common,
            between,
            DenseRule(
                "lung_base", lambda c: _recover_lung_base(c.labels, c.free, c.spacing, c.body_x, params=c.params)
            ),
            DenseRule(
                "gutter",
                lambda c: _recover_gutter(c.labels, c.hu, c.free, c.trunk, c.spacing, c.body_x, params=c.params),
            ),
            DenseRule(
                "costophrenic_recess",
                lambda c: _recover_consolidated_base(
                    c.labels, c.hu, c.free, c.trunk, c.spacing, c.recovered, params=c.params
                ),
            ),
            # the rib-cage band and the outline interpolation keep only tissue next to diseased lung
            DenseRule(
                "halo_gate",
                lambda c: c.gated & ~_with_abnormal_halo(c.recovered, c.labels, c.hu, c.spacing, params=c.params),
                removes=True,
            ),
        ]
    raise SegmentationError(f"dense_rules: path must be '2d' or '3d', got {path!r}")


def _recover_dense(
    labels: np.ndarray,
    hu: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    body_x: np.ndarray | None,
    params: LungParameters,
    info: dict[str, Any],
    *,
    cavity: np.ndarray | None = None,
    supine: bool = True,
) -> np.ndarray:
    """Step 6: the rules of :func:`dense_rules` in order; recovered voxels are labelled in place with the nearest lung.

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 (z, y, x) lung labels on the working grid; updated in place.
    hu : numpy.ndarray
        Working-grid CT (HU).
    trunk : numpy.ndarray
        bool (z, y, x) trunk mask.
    spacing : numpy.ndarray
        Working spacing (z, y, x) in mm.
    body_x : numpy.ndarray or None
        Per-slice x centre (index) of the body: 3-D path. ``None``: 2-D path (thin stacks).
    params : LungParameters
        Settings; rules switched off there do not run.
    cavity : numpy.ndarray, optional
        2-D path: bool thoracic cavity per slice (:func:`_thoracic_cavity`), for the ``cage_2d`` filter.
    supine : bool, optional
        The patient lies supine or the position is unknown (``supine_positions``); ``below_dome_2d`` runs only then.
    info : dict
        Receives ``rule_added_ml`` (per rule run, in order: mL on the working grid it added, negative for what a
        filter removed) and ``halo_dropped_ml``.

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) recovered voxels.
    """
    dense_ok = (hu >= params.air_threshold_hu) & (hu <= params.dense_max_hu) & trunk
    empty = np.zeros(labels.shape, dtype=bool)
    context = DenseContext(labels, hu, dense_ok, trunk, spacing, body_x, params, empty, empty, cavity, supine)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    added: dict[str, float] = {}
    for rule in dense_rules("3d" if body_x is not None else "2d"):
        if not params.rule_enabled(rule.name):
            continue
        mask = rule.function(context)
        if rule.removes:
            change = context.recovered & mask
            context.recovered = context.recovered & ~mask
            context.gated = context.gated & ~mask
            added[rule.name] = -float(change.sum()) * voxel_ml
        else:
            change = mask & ~context.recovered
            context.recovered = context.recovered | mask
            if rule.gated:
                context.gated = context.gated | mask
            added[rule.name] = float(change.sum()) * voxel_ml
    info["rule_added_ml"] = added
    info["halo_dropped_ml"] = 0.0 - added.get("halo_gate", 0.0)  # never -0.0
    recovered = context.recovered
    # assign recovered voxels to the nearest lung (in place)
    if recovered.any():
        labels[recovered] = nearest_label(labels, recovered)[recovered]
    return recovered


def _outside_cavity(cavity: np.ndarray | None, spacing: np.ndarray, params: LungParameters) -> np.ndarray:
    """The ``cage_2d`` filter: pixels not at least ``cavity_margin_mm`` inside the thoracic cavity (a negative margin:
    pixels more than its size outside the cavity); all False without a cavity."""
    if cavity is None:
        return np.zeros((1, 1, 1), dtype=bool)
    out = np.zeros(cavity.shape, dtype=bool)
    for z in range(cavity.shape[0]):
        if cavity[z].all():
            continue
        if params.cavity_margin_mm >= 0:
            out[z] = ndimage.distance_transform_edt(cavity[z], sampling=spacing[1:]) <= params.cavity_margin_mm
        else:  # a tolerance: only pixels farther than -margin outside the cavity
            out[z] = ndimage.distance_transform_edt(~cavity[z], sampling=spacing[1:]) > -params.cavity_margin_mm
    return out


def _recover_hull_deficit(
    labels: np.ndarray, dense_ok: np.ndarray, thick_only: bool, *, params: LungParameters = DEFAULT_PARAMETERS
) -> np.ndarray:
    """Step 6a (both paths): soft-tissue components of each slice's convex-hull deficit that are not medial.

    Per slice and lung, the hull deficit (convex hull minus the lung, outside both lungs) is searched for
    ``dense_ok`` components. A component is consolidated lung unless it is larger than ``max_deficit_to_lung`` of the
    lung area of the slice (a crescent of lung around the liver dome or the heart: the hull is not lung) or medial:
    it is accepted when its centroid lies lateral of the lung centroid by more than ``lateral_min`` x lung width, or
    posterior of it by more than ``posterior_min`` x lung height and not within a quarter of the lung width of the
    lung's medial edge (cardiac notch, hilum, mediastinum; consolidation in COVID-19 is peripheral, posterior and
    sub-pleural). ``thick_only`` (3-D path, lungs-1.3): only deficit parts thicker than two pixels
    (:func:`thick_part`: the partial-volume rim of the pleural boundary is neither lung nor consolidation).

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) accepted voxels.
    """
    recovered = np.zeros(labels.shape, dtype=bool)
    for z in range(labels.shape[0]):
        for value in (RIGHT, LEFT):
            lung = labels[z] == value
            if lung.sum() < 20:
                continue
            hull = convex_hull_image(lung)
            deficit = hull & ~lung & (labels[z] == 0) & dense_ok[z]
            if thick_only:  # 3-D path: not the partial-volume rim of the pleural boundary
                deficit = thick_part(deficit)
            if not deficit.any():
                continue
            lab, n = ndimage.label(deficit, structure=np.ones((3, 3)))
            ys, xs = np.nonzero(lung)
            lung_cy, lung_cx = ys.mean(), xs.mean()
            lat_sign = -1.0 if value == RIGHT else 1.0  # lateral direction in x
            medial_edge = xs.max() if value == RIGHT else xs.min()
            lung_width = max(float(xs.max() - xs.min()), 1.0)
            lung_height = max(float(ys.max() - ys.min()), 1.0)
            centres = ndimage.center_of_mass(deficit, lab, np.arange(1, n + 1))
            areas = ndimage.sum_labels(deficit, lab, np.arange(1, n + 1))
            for i, (cy, cx) in enumerate(centres, start=1):
                if areas[i - 1] > params.max_deficit_to_lung * lung.sum():
                    continue  # a crescent of lung around the liver dome / heart: the hull is not lung
                lateral_offset = (cx - lung_cx) * lat_sign / lung_width  # > 0: lateral of the lung centroid
                posterior = (cy - lung_cy) / lung_height > params.posterior_min
                near_medial_edge = abs(cx - medial_edge) < 0.25 * lung_width
                if lateral_offset > params.lateral_min or (posterior and not near_medial_edge):
                    recovered[z] |= lab == i
    return recovered


# --------------------------------------------------------------------------------------------------- resampling


def _grid_phases(factors: np.ndarray, votes: int) -> list[tuple[int, int]]:
    """In-plane offsets (y, x; input pixels) of the working grid for ``phase_votes`` runs: 0 and half the factor
    (fewer than 4 when a factor is 1: no shift on that axis)."""
    half_y, half_x = int(factors[1]) // 2, int(factors[2]) // 2
    if votes == 1 or (half_y == 0 and half_x == 0):
        return [(0, 0)]
    return list(dict.fromkeys([(0, 0), (0, half_x), (half_y, 0), (half_y, half_x)]))


def _segment_on_grid(
    image3d: sitk.Image,
    factors: np.ndarray,
    phase: tuple[int, int],
    thin: bool,
    gas_rule: bool,
    params: LungParameters,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Steps 1-7 with the working grid starting ``phase`` (y, x) input pixels before the image: labels and dense
    mask on the input grid (uint8 arrays, z, y, x) and the run's facts (``info``).

    The image is padded at the top / left by ``phase`` rows / columns repeating its edge (the border keeps touching
    the same structures, so outside air stays outside air) and the result cropped back.
    """
    spacing = np.array(image3d.GetSpacing()[::-1], dtype=float)  # (z, y, x) mm
    pad_y, pad_x = phase
    source = image3d
    if pad_y or pad_x:
        padded = np.pad(sitk.GetArrayViewFromImage(image3d), ((0, 0), (pad_y, 0), (pad_x, 0)), mode="edge")
        source = sitk.GetImageFromArray(padded)
        source.SetSpacing(image3d.GetSpacing())
        source.SetDirection(image3d.GetDirection())
    work = sitk.BinShrink(sitk.Cast(source, sitk.sitkFloat32), [int(f) for f in factors[::-1]])
    hu = sitk.GetArrayFromImage(work)
    work_spacing = spacing * factors
    labels_w, dense_w, info = _segment_array(hu, work_spacing, thin=thin, gas_rule=gas_rule, params=params)

    # single slices: the visible pleural boundary (boundary_max_hu); volumes: the half-air threshold, so that volumes
    # and the density bins of quantify carry no partial-volume rim (docs/ct.md, step 7)
    boundary_hu = params.boundary_max_hu if thin else params.air_threshold_hu
    labels_full, dense_full = _upsample_refined(labels_w, dense_w, factors, source, boundary_hu)
    cavity_w, trunk_w = info.pop("_cavity", None), info.pop("_trunk", None)
    if thin and trunk_w is not None:  # 2-D axial path: pleural line and holes on the input grid (boundary_2d.py)
        shape = labels_full.shape
        labels_full, dense_full, changed_px = refine_boundary_2d(
            labels_full,
            dense_full,
            sitk.GetArrayViewFromImage(source),
            None if cavity_w is None else _block_repeat(cavity_w, factors, shape),
            _block_repeat(trunk_w, factors, shape),
            spacing,
            params=params,
        )
        voxel_ml = float(np.prod(spacing)) / 1000.0
        info["boundary_changed_ml"] = {name: px * voxel_ml for name, px in changed_px.items()}
    if pad_y or pad_x:
        labels_full, dense_full = labels_full[:, pad_y:, pad_x:], dense_full[:, pad_y:, pad_x:]
    return labels_full, dense_full, info


def _vote_phases(runs: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per input pixel vote of the grid-phase runs of :func:`_segment_on_grid` (the first: the unshifted grid).

    Lung where more than half of the runs say lung (3 of 4: a rule that fires on only two grid phases, e.g. the
    air-bronchogram pocket count, does not carry the pixel); the side (right / left) of the majority of the runs that
    say lung, ties to the unshifted run's side (else right); dense-recovered where more than half of the runs say so
    and the pixel is lung. Facts: the numbers (mL, shares) are the mean over the runs, per rule for ``rule_added_ml`` and
    ``boundary_changed_ml``; everything else (airway found, dropped gas components, side from position) is the
    unshifted run's. ``phase_votes`` (runs) and ``phase_agreement`` (share of the voted lung that every run
    says is lung, 0-1) are added.
    """
    n = len(runs)
    right = sum((labels == RIGHT).astype(np.uint8) for labels, _, _ in runs)
    left = sum((labels == LEFT).astype(np.uint8) for labels, _, _ in runs)
    dense = sum((d > 0).astype(np.uint8) for _, d, _ in runs)
    lung = 2 * (right + left) > n
    first = runs[0][0]
    side = np.where(right > left, RIGHT, np.where(left > right, LEFT, np.where(first == LEFT, LEFT, RIGHT)))
    labels = np.where(lung, side, 0).astype(np.uint8)
    dense_full = (lung & (2 * dense > n)).astype(np.uint8)

    info = dict(runs[0][2])
    infos = [run[2] for run in runs]
    for key in ("leak_fraction", "airway_ml", "cage_removed_ml", "halo_dropped_ml"):
        if key in info:
            info[key] = float(np.mean([float(i.get(key, 0.0)) for i in infos]))
    for key in ("rule_added_ml", "boundary_changed_ml"):
        if key in info:
            names = list(dict.fromkeys(name for i in infos for name in i.get(key, {})))
            info[key] = {name: float(np.mean([i.get(key, {}).get(name, 0.0) for i in infos])) for name in names}
    votes = right + left
    info["phase_votes"] = n
    info["phase_agreement"] = float((votes[lung] == n).mean()) if lung.any() else 1.0
    return labels, dense_full, info


def _array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.CopyInformation(reference)
    return img


def _block_repeat(array: np.ndarray, factors: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of a BinShrink grid (integer ``factors``), edge-padded to ``shape``."""
    out = array
    for axis, factor in enumerate(factors):
        if factor > 1:
            out = np.repeat(out, int(factor), axis=axis)
    pad = [(0, max(0, target - size)) for size, target in zip(out.shape, shape, strict=True)]
    if any(p[1] for p in pad):
        out = np.pad(out, pad, mode="edge")
    return out[tuple(slice(0, n) for n in shape)]


def _upsample_refined(
    labels: np.ndarray, dense: np.ndarray, factors: np.ndarray, target: sitk.Image, air_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and dense mask on the input grid; the boundary follows the air threshold at full resolution.

    Interior blocks keep their working-grid label. In the boundary band (working voxels whose 3x3x3
    neighbourhood holds another label) a full-resolution voxel is lung when it is air-like (< ``air_threshold``)
    or lies in a dense-recovered block, and takes the label of its neighbourhood.
    """
    shape = tuple(target.GetSize()[::-1])
    if tuple(labels.shape) == shape:
        return labels.astype(np.uint8), dense.astype(np.uint8)
    band_w = ndimage.maximum_filter(labels, size=3) != ndimage.minimum_filter(labels, size=3)
    neighbour_w = np.where(labels > 0, labels, ndimage.maximum_filter(labels, size=3)).astype(np.uint8)
    out = _block_repeat(labels.astype(np.uint8), factors, shape)
    band = _block_repeat(band_w, factors, shape)
    dense_full = _block_repeat(dense.astype(np.uint8), factors, shape)
    idx = np.nonzero(band)
    hu = sitk.GetArrayViewFromImage(target)
    keep = (hu[idx] < air_threshold) | (dense_full[idx] > 0)
    out[idx] = np.where(keep, _block_repeat(neighbour_w, factors, shape)[idx], 0)
    dense_full[idx] &= out[idx] > 0
    return out, dense_full


# --------------------------------------------------------------------------------------------------- QA


def _leak_fraction(labels: np.ndarray, outside: np.ndarray) -> float:
    lung = labels > 0
    if not lung.any():
        return 0.0
    near_outside = ndimage.binary_dilation(outside, structure=STRUCT_2D, iterations=2)
    return float((lung & near_outside).sum() / lung.sum())


def _low_confidence_reasons(
    flags: list[str], total: float, ratio: float, dense_fraction: float, thin: bool, params: LungParameters
) -> list[str]:
    """Why the mask is likely wrong (empty list: no reason found); see ``qa["low_confidence"]``."""
    reasons = [flag for flag in ("no_lung", "one_lung", "implausible_volume", "leak_outside_thorax") if flag in flags]
    min_ratio = params.low_confidence_lr_ratio_2d if thin else params.low_confidence_lr_ratio_3d
    if total > 0 and "one_lung" not in flags and ratio < min_ratio:
        reasons.append(f"lr_ratio<{min_ratio:g}")
    if dense_fraction > params.low_confidence_dense_fraction:
        reasons.append(f"dense_recovered_fraction>{params.low_confidence_dense_fraction:g}")
    return reasons


def _quality(
    labels: sitk.Image, dense: sitk.Image, info: dict[str, Any], thin: bool, work_spacing, params: LungParameters
) -> dict[str, Any]:
    arr = sitk.GetArrayViewFromImage(labels)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    right = float((arr == RIGHT).sum()) * voxel_ml
    left = float((arr == LEFT).sum()) * voxel_ml
    total = right + left
    dense_ml = float(sitk.GetArrayViewFromImage(dense).sum()) * voxel_ml
    extent_mm = labels.GetSize()[2] * labels.GetSpacing()[2]
    flags: list[str] = []
    if total == 0:
        flags.append("no_lung")
    elif min(right, left) == 0:
        flags.append("one_lung")
    ratio = min(right, left) / max(right, left) if max(right, left) > 0 else 0.0
    if total > 0 and ratio < 0.5 and "one_lung" not in flags:
        flags.append("lr_imbalance")
    if not thin and extent_mm >= 200 and total > 0 and not (1500.0 <= total <= 9500.0):
        flags.append("implausible_volume")
    if info["leak_fraction"] > 0.02:
        flags.append("leak_outside_thorax")
    dense_fraction = dense_ml / total if total > 0 else 0.0
    if dense_fraction > 0.2:
        flags.append("large_dense_recovered")
    if info.get("airway_found") is False:
        flags.append("airway_not_found")
    dropped_gas_ml = sum(d["volume_ml"] for d in info.get("dropped_gas", []))
    if total == 0 and dropped_gas_ml > 0:
        flags.append("no_lung_gas_only")
    if info.get("gas_rule_off"):
        flags.append("gas_rule_off_not_supine")
    if info.get("side_from_position"):
        flags.append("side_from_position")
    reasons = _low_confidence_reasons(flags, total, ratio, dense_fraction, thin, params)
    if reasons:
        flags.append("low_confidence")
    return {
        "right_ml": right,
        "left_ml": left,
        "total_ml": total,
        "lr_ratio": ratio,
        "dense_recovered_ml": dense_ml,
        "dense_recovered_fraction": dense_fraction,
        "leak_fraction": info["leak_fraction"],
        "airway_ml": info.get("airway_ml", 0.0),
        "dropped_gas_ml": dropped_gas_ml,
        "dropped_gas": info.get("dropped_gas", []),
        "patient_position": info.get("patient_position", ""),
        "halo_gate": bool(info.get("halo_gate", False)),
        "halo_dropped_ml": float(info.get("halo_dropped_ml", 0.0)),
        "cage_removed_ml": float(info.get("cage_removed_ml", 0.0)),
        "mode": "2d" if thin else "3d",
        "working_spacing_mm": tuple(float(s) for s in work_spacing[::-1]),
        "algorithm_version": ALGORITHM_VERSION,
        "flags": flags,
        "rule_added_ml": dict(info.get("rule_added_ml", {})),
        "boundary_changed_ml": dict(info.get("boundary_changed_ml", {})),
        "low_confidence": bool(reasons),
        "low_confidence_reasons": reasons,
        "phase_votes": int(info.get("phase_votes", 1)),
        "phase_agreement": float(info.get("phase_agreement", 1.0)),
    }
