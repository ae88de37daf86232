"""Weight-free lung segmentation that keeps consolidation inside the lung.

Algorithm (all steps on a coarse working grid of about ``working_spacing_mm``; labels are brought back to the
input grid at the end):

1. **Air** = HU < ``air_threshold_hu`` (-400). **Outside air** = air connected, within each axial slice, to the
   image border. Air inside the body that is not outside air is the lung candidate.
2. Candidate components (3-D; per slice for thin stacks) that are too small or that are pure gas
   (mean HU < -960, e.g. stomach or bowel gas) are dropped. 3-D path (lungs-1.4), after the airways are removed:
   components with almost no voxel in the posterior half of the trunk and a pure-air interior are abdominal gas
   (stomach, colon: gas rises anteriorly, lungs lie against the posterior ribs) and dropped, see
   :func:`_drop_abdominal_gas`; ``qa["dropped_gas_ml"]`` and the flag ``no_lung_gas_only`` report them.
3. **Airways**: the trachea is found in the most cranial slices as a small, round, midline air region and tracked
   slice by slice caudally (and cranially) through the candidate; a branch stops when its next cross-section is
   much larger than the airway (= it has entered the lung). Thin stacks (< 30 mm) use a per-slice rule instead:
   small, very dark (< -900 HU) components near the midline are airway.
4. **Left/right split**: 3-D connected components; when the lungs touch (anterior/posterior junction) they are
   separated by repeated erosion until two large components appear, then grown back within the mask
   (nearest marker). Side is taken from the component centroid relative to the body centre (LPS: the right lung
   has the smaller x).
5. **Filling**: holes of each lung, per axial slice (vessels, intrapulmonary airways, nodules and consolidation
   enclosed by aerated lung) are filled.
6. **Dense recovery** (what classical tools miss): per slice and lung, the convex-hull deficit (hull minus lung) is
   searched for non-air soft-tissue (-400..+150 HU) components. A component is accepted as consolidated lung
   unless it is medial (cardiac notch, hilum, mediastinum: its centroid lies closer to the body midline than the
   lung's own medial third) or larger than half the lung area of the slice (a crescent of lung around the liver
   dome) -- consolidation in COVID-19 is peripheral, posterior and sub-pleural. Then a radial rule recovers
   sub-pleural bands: along rays from the trunk centre, dense pixels between the outermost lung pixel and the
   inner surface of the rib cage (first bone outside the lung, minus 6 mm of pleura and intercostal tissue) are
   lung. Finally, 3-D outline interpolation: dense voxels with lung of the same side both above and below in
   their (y, x) column (within ``INTERP_WINDOW_MM``) lie inside the lung outline and are added (interpolation only:
   the liver under the diaphragm dome has lung above but not below). Accepted voxels are reported as
   ``dense_recovered``.
   3-D path only (lungs-1.3; thin stacks unchanged): hull-deficit components must have a part thicker than two
   pixels (the partial-volume rim of the pleural boundary is neither lung nor consolidation); the rib cage of a
   ray passing between two ribs is interpolated from the slices above and below (``CAGE_Z_REACH_MM``; not in the
   anterior sector where the heart lies against the sternum, nor in the upper third of the lungs where the ribs
   run obliquely), with a 4 mm margin and 5 mm bands there; and a **lung-base rule** models the diaphragm: per
   lung, a quadratic dome is fitted to the lower envelope of the lowest lung voxel of every (y, x) column, and dense voxels between the dome and the base of
   posterior columns raised above it (consolidation lying on the diaphragm has no aerated lung below it) are
   lung, away from the midline (vertebral body, aorta) and only when the whole lung is in the scan.
   Pleural effusion lying on the diaphragm is included by this rule like consolidation (HU cannot tell them apart).
   lungs-1.4 (3-D path only): a **paravertebral-gutter rule** -- per slice the vertebral body is found (thickest
   bone near the midline in the posterior half of the trunk) and a dense pocket lateral of it, between its centre
   and its posterior edge, is lung when it is enclosed by that lung laterally (reached row by row) and by the rib
   head / vertebra behind it (reached column by column), is more than 4 mm from bone and is thicker than two pixels.
   lungs-1.5 (3-D path only), a lung base consolidated over its whole depth, see :func:`_recover_consolidated_base`:
   a **costophrenic-recess rule** -- below a lung's largest cross-section, a gap of at most ``RECESS_MAX_GAP_DEG``
   (outside the anterior sector) between rays of one slice that meet the lung gets the lung's radial extent
   interpolated between the two rays bounding it (outer edge out to the rib cage when within
   ``RECESS_CAGE_REACH_MM``); dense voxels there under the lung of the slice above (a base only narrows caudally),
   at least ``BASE_MIDLINE_MM`` from the midline, > 4 mm from bone, thicker than two pixels and touching the lung
   are lung. No HU step between organ and consolidation is used (see docs/ct.md, lungs-1.5 trial
   log, for the rejected base-layer rule).
   lungs-1.5 (2-D thin stacks only; teaching slices have no neighbouring slices): two single-slice rules.
   **Dependent rule** (:func:`_recover_dependent_2d`): per lung and column, from the deepest (most posterior) lung
   pixel down to the posterior rib cage (first bone behind it, rolling minimum over 20 mm; bone = within 40 HU of
   the image maximum when that is below ``BONE_HU``, as display-converted images clip bone at the window top),
   minus 6 mm of pleura, in posterior-half columns away from the vertebral body / aorta and from the lung's medial
   and lateral edges; columns leaving the crop have no cage and are skipped. **Air-bronchogram rule**
   (:func:`_recover_bronchograms_2d`): a slice with at least five small air pockets enclosed in dense tissue
   (aerated bronchi inside consolidation), outside the paravertebral / aortic band and the mediastinum, takes the
   dense tissue within 25 mm of them (more than 6 mm from bone) as lung. **Mediastinum filter**
   (:func:`_mediastinum_2d`, same session): on single slices the hull-deficit and sub-pleural cage rules keep
   nothing between the two aerated lungs' medial edges (row window +- 10 mm, at most 60 mm either side of the
   trunk midline): a cage ray through the mediastinum meets the sternum or spine, not a rib, and took in the
   oesophagus, prevascular fat and hilar tissue.
7. Labels go back to the input grid block by block; in the boundary band each full-resolution voxel is lung when
   it is air-like or lies in a recovered dense block (edges follow the true boundary).

Why hand-written: no maintained Python library provides a weight-free lung segmentation that keeps dense lung
(lungmask and TotalSegmentator need downloaded model weights); every heavy step (resampling, labelling, distance
transforms, hulls) is SimpleITK, SciPy or scikit-image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ..errors import SegmentationError
from ..imaging import get_load_report

# 1.5: 2-D thin stacks: dependent-consolidation + air-bronchogram rules and the mediastinum filter; 3-D:
# costophrenic-recess rule for a consolidated lung base, abdominal-gas rule only for supine (or unknown) scans; 1.4: abdominal-gas rule + paravertebral-gutter rule
# (3-D); 1.3: cage between slices, lung-base dome (3-D)
ALGORITHM_VERSION = "lungs-1.5"
RIGHT, LEFT = 1, 2
TIGHT_CROP_BORDER_AIR = 0.5  # slices whose border is < 50 % air are crops through the body
TIGHT_CROP_OUTSIDE_MAX_HU = -980.0  # ... where only pure air (~-1000 HU) touching the border is outside air
AIRWAY_LUMEN_HU = -900.0  # airway tracking: lumen darker than lung parenchyma (~-850 HU)
LATERAL_MIN = 0.05  # hull-deficit rule: component centroid lateral of the lung centroid (x lung width)
POSTERIOR_MIN = 0.15  # ... or posterior of it (x lung height) and away from the medial edge
MAX_DEFICIT_TO_LUNG = 0.5  # ... and at most half the lung area of the slice
N_RAYS = 180  # sub-pleural (rib-cage) rule: rays per slice
MIN_BAND_MM = 8.0  # ... a band thinner than this is not recovered
BONE_HU = 200.0  # ... rib cage = first pixel at least this dense outside the lung
CAGE_MARGIN_MM = 6.0  # ... pleura + intercostal soft tissue inside the ribs, never lung
INTERP_WINDOW_MM = 25.0  # outline interpolation: lung above and below within this distance (mm)
CAGE_MAX_GAP_DEG = 12.0  # ... rays farther than this from a rib hit get no cage
CAGE_Z_REACH_MM = 15.0  # ... 3-D path: a ray between ribs takes the cage from slices within this distance (mm)
CAGE_Z_ANTERIOR_DEG = 60.0  # ... but not within this angle (degrees) of anterior (heart against the sternum)
CAGE_MARGIN_3D_MM = 4.0  # ... 3-D path, outside that anterior sector: pleura + intercostal margin (mm)
MIN_BAND_3D_MM = 5.0  # ... 3-D path, outside that anterior sector: thinnest recovered band (mm)
CAGE_APEX_FRACTION = 1.0 / 3.0  # ... 3-D path: upper share of the lung height treated as in 2-D (oblique ribs)
BASE_FIT_DEGREE = 2  # lung-base rule (3-D): polynomial degree of the dome model (2: quadratic; 3, 4 tried: worse)
BASE_FIT_ITERATIONS = 12  # ... iterations of the asymmetric (lower-envelope) dome fit
BASE_FIT_ASYMMETRY = 0.05  # ... weight of columns whose base lies above the fitted dome (1 - this below it)
BASE_RAISED_MM = 5.0  # ... a column whose base is at least this far (mm) above the dome is raised by dense lung
BASE_MAX_RAISE_MM = 40.0  # ... and at most this far (mm): higher bases are apex / mediastinal overhang, not base
BASE_MIDLINE_MM = 20.0  # ... columns closer than this (mm) to the body midline (spine, aorta) are never filled
BASE_MIN_LUNG_HEIGHT_MM = 120.0  # ... lungs shorter than this (mm) in the scan are not modelled (bases only)
GAS_MAX_POSTERIOR_SHARE = 0.1  # abdominal-gas rule (3-D): a component with less than this share of its voxels in the
# posterior half of the trunk (per slice) is non-dependent (gas rises anteriorly in the supine abdomen; every lung
# reaches the posterior ribs beside the spine: measured lung shares 0.49-0.90, stomach/bowel gas 0.00)
SUPINE_POSITIONS = ("HFS", "FFS")  # DICOM PatientPosition values for which the abdominal-gas rule holds (gas anterior)
GAS_MAX_HU = -940.0  # ... and whose interior (1-voxel eroded) median HU is below this is pure gas (stomach/bowel
# gas -955..-980 HU; aerated lung -900..-750 HU, the emphysematous COPDGene ct64 lung -930 HU -- HU alone is not
# trusted, see the docstring of _drop_abdominal_gas)
GUTTER_MIDLINE_MM = 20.0  # paravertebral-gutter rule (3-D): vertebral body centre within this distance (mm) of midline
GUTTER_MIN_RADIUS_MM = 8.0  # ... thickest inscribed radius (mm) of a vertebral body (thinner bone: rib, sternum)
GUTTER_WIDTH_MM = 25.0  # ... gutter = up to this far (mm) lateral of the vertebral body's lateral edge
GUTTER_DEPTH_MM = 25.0  # ... dense voxels at most this far (mm) anterior of the rib / vertebra behind them
DEPENDENT_BONE_BELOW_TOP_HU = 40.0  # 2-D dependent rule: bone = within this (HU) of the image maximum when that
# maximum is below BONE_HU (display-converted teaching images clip bone at the window top, level + width / 2)
DEPENDENT_MIN_BONE_PX = 3  # ... smaller bone specks (working-grid pixels) are image noise, not rib
DEPENDENT_MIN_TOP_HU = 120.0  # ... image maximum below this (HU): soft tissue saturates too, no cage is modelled
DEPENDENT_MARGIN_MM = 6.0  # ... pleura + intercostal soft tissue in front of the posterior cage (mm), never lung
DEPENDENT_MIN_BAND_MM = 8.0  # ... a column band thinner than this (mm) is not recovered
DEPENDENT_MAX_DEPTH_MM = 80.0  # ... at most this far (mm) behind the deepest lung pixel of the column
DEPENDENT_CAGE_WINDOW_MM = 20.0  # ... posterior cage = rolling minimum depth of the first bone over this width (mm)
DEPENDENT_MEDIAL_MM = 10.0  # ... columns closer than this (mm) to the vertebral body's edge are never filled
DEPENDENT_AORTA_MM = 30.0  # ... on the left (descending aorta beside the vertebral body) this (mm)
DEPENDENT_LUNG_MEDIAL = 0.35  # ... columns in the medial share (x lung width) of each lung are never filled
DEPENDENT_LUNG_LATERAL = 0.1  # ... nor the lateral share (x lung width): the column runs along the chest wall there
DEPENDENT_MIN_COLUMNS = 3  # ... bands narrower than this many working-grid columns are dropped (opening)
DEPENDENT_MAX_HU = 150.0  # ... walked tissue up to this (HU); brighter = bone / contrast, stops the walk
BRONCHOGRAM_MAX_AREA_MM2 = 400.0  # air-bronchogram rule (2-D): enclosed air pockets up to this area (mm^2)
BRONCHOGRAM_RING_DENSE = 0.9  # ... whose one-pixel surrounding ring is at least this share dense (-400..+150 HU)
BRONCHOGRAM_MIN_COUNT = 5  # ... the rule fires only on slices with at least this many such pockets (consolidation)
BRONCHOGRAM_POSTERIOR = -0.3  # ... pocket centre posterior of trunk centre + this x trunk half-height
BRONCHOGRAM_ROWS_MM = 10.0  # ... mediastinum = between the two lungs' medial edges within +- this (mm) of the row
BRONCHOGRAM_MIDLINE_MM = 60.0  # ... but at most this far (mm) from the body midline on each side
BRONCHOGRAM_RADIUS_MM = 25.0  # ... dense tissue within this distance (mm) of an accepted pocket is lung
RECESS_MAX_GAP_DEG = 90.0  # costophrenic-recess rule (3-D): widest angular gap (degrees) bridged between lung rays
RECESS_CAGE_REACH_MM = 10.0  # ... the gap's outer edge moves out to the rib cage when it lies within this (mm)

_STRUCT_2D = np.zeros((3, 3, 3), dtype=bool)
_STRUCT_2D[1] = True  # 8-connectivity within a slice, none across slices
_STRUCT_3D = ndimage.generate_binary_structure(3, 1)


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
        ``gas_rule_off_not_supine`` (prone or decubitus scan: the abdominal-gas rule was not applied).
        ``patient_position`` (the DICOM PatientPosition used, ``""`` when unknown).
        ``dropped_gas_ml`` (mL) and ``dropped_gas`` (one dict per component dropped as abdominal gas: ``volume_ml``,
        ``interior_median_hu``, ``posterior_share``, ``z_slices``).
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
    working_spacing_mm: float = 2.5,
    air_threshold_hu: float = -400.0,
    recover_dense: bool = True,
    dense_max_hu: float = 150.0,
    patient_position: str | None = None,
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

    Returns
    -------
    LungSegmentation
        ``.labels`` (1 right, 2 left), ``.qa`` (volumes, flags), ``.dense_recovered``; unpacks as ``labels, qa``.

    Raises
    ------
    SegmentationError
        When the image is not a scalar 2-D/3-D image.
    """
    image3d, was_2d = _as_3d(image)
    position = _patient_position(image, patient_position)
    spacing = np.array(image3d.GetSpacing()[::-1], dtype=float)  # (z, y, x) mm
    factors = np.maximum(1, np.floor(working_spacing_mm / spacing + 1e-6)).astype(int)
    factors = np.minimum(factors, np.array(image3d.GetSize()[::-1]))  # never shrink an axis below one voxel
    work = sitk.BinShrink(sitk.Cast(image3d, sitk.sitkFloat32), [int(f) for f in factors[::-1]])
    hu = sitk.GetArrayFromImage(work)
    work_spacing = spacing * factors
    thin = hu.shape[0] * work_spacing[0] < 30.0

    labels_w, dense_w, info = _segment_array(
        hu,
        work_spacing,
        thin=thin,
        air_threshold=air_threshold_hu,
        recover_dense=recover_dense,
        dense_max=dense_max_hu,
        gas_rule=position in SUPINE_POSITIONS or not position,
    )
    info["patient_position"] = position

    labels_full, dense_full = _upsample_refined(labels_w, dense_w, factors, image3d, air_threshold_hu)
    labels_img = _array_to_image(labels_full, image3d)
    dense_img = _array_to_image(dense_full, image3d)
    qa = _quality(labels_img, dense_img, info, thin, work_spacing)
    if was_2d:
        labels_img, dense_img = labels_img[:, :, 0], dense_img[:, :, 0]
    return LungSegmentation(labels=labels_img, qa=qa, dense_recovered=dense_img)


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
    air_threshold: float,
    recover_dense: bool,
    dense_max: float,
    gas_rule: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Steps 1-6 on the working-grid array (z, y, x). Returns labels, dense-recovered mask, info."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    pixel_mm2 = float(spacing[1] * spacing[2])
    info: dict[str, Any] = {"airway_found": None}

    air = hu < air_threshold
    lab2d, _ = ndimage.label(air, structure=_STRUCT_2D)
    outside_labels = []
    for z in range(hu.shape[0]):
        edge = np.concatenate([lab2d[z, 0, :], lab2d[z, -1, :], lab2d[z, :, 0], lab2d[z, :, -1]])
        border = np.unique(edge[edge > 0])
        if border.size and (edge > 0).mean() < TIGHT_CROP_BORDER_AIR:
            # tight crop through the body (teaching images): border air is outside air only if it is pure air
            # (or a small corner piece: < 10 % of the largest air region of the slice)
            means = np.asarray(ndimage.mean(hu[z], lab2d[z], border))
            sizes = np.bincount(lab2d[z].ravel())
            small = sizes[border] < 0.1 * sizes[1:].max()
            border = border[(means < TIGHT_CROP_OUTSIDE_MAX_HU) | small]
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
        airway = _airway_3d(candidate, hu, body_x, pixel_mm2)
        info["airway_found"] = bool(airway.any())
    info["airway_ml"] = float(airway.sum()) * voxel_ml
    lungs = candidate & ~airway
    lungs = _drop_small_and_gas(lungs, hu, voxel_ml, pixel_mm2, thin)
    trunk = _trunk(outside)
    info["dropped_gas"] = []
    info["gas_rule_off"] = not thin and not gas_rule
    if not thin and gas_rule:
        lungs, info["dropped_gas"] = _drop_abdominal_gas(lungs, hu, trunk, voxel_ml)

    labels = _split_left_right(lungs, body_x, thin)
    labels = _fill_slices(labels, airway)
    dense = np.zeros_like(lungs)
    if recover_dense and labels.any():
        dense = _recover_dense(labels, hu, air_threshold, dense_max, trunk, spacing, None if thin else body_x)
        labels = _fill_slices(labels, airway)
    info["leak_fraction"] = _leak_fraction(labels, outside)
    return labels, dense & (labels > 0), info


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
    structure = _STRUCT_2D if thin else _STRUCT_3D
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
    lungs: np.ndarray, hu: np.ndarray, trunk: np.ndarray, voxel_ml: float
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Drop stomach and bowel gas (3-D path): air components that are anterior-only and pure air.

    Abdominal CTs (or PET/CTs) that contain only the lung bases -- or no lung at all -- have stomach and colon gas
    inside the body, which the air rule (step 1) takes as lung candidate. Anatomy separates them: in the supine
    abdomen gas rises to the non-dependent (anterior) side, whereas every lung, also a lung base, an emphysematous
    or a single lung, lies against the posterior ribs beside the spine. A component is gas when both hold:

    * less than ``GAS_MAX_POSTERIOR_SHARE`` of its voxels lie in the posterior half of the trunk (per slice,
      midpoint of the trunk's anterior-posterior extent), and
    * the median HU of its interior (component eroded by one voxel, to skip the partial-volume wall) is below
      ``GAS_MAX_HU`` -- pure air, so the aerated anterior lung left when the dependent lung is consolidated
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
        bool (z, y, x) trunk mask (see :func:`_trunk`).
    voxel_ml : float
        Working voxel volume (mL).

    Returns
    -------
    tuple
        The candidate without gas components and, per dropped component, a dict with ``volume_ml``,
        ``interior_median_hu``, ``posterior_share`` and ``z_slices`` (first, last working-grid slice).
    """
    lab, n = ndimage.label(lungs, structure=_STRUCT_3D)
    if n == 0:
        return lungs, []
    rows = trunk.any(axis=2)  # (z, y)
    has_trunk = rows.any(axis=1)
    ny = lungs.shape[1]
    front = np.where(has_trunk, np.argmax(rows, axis=1), 0)
    back = np.where(has_trunk, ny - 1 - np.argmax(rows[:, ::-1], axis=1), ny - 1)
    middle = (front + back) / 2.0  # per slice, y index of the trunk's anterior-posterior midpoint
    posterior = np.arange(ny)[None, :, None] > middle[:, None, None]  # (z, y, 1)
    posterior = np.broadcast_to(posterior, lungs.shape)
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(lungs, lab, index)
    posterior_share = ndimage.sum_labels(posterior, lab, index) / sizes
    boxes = ndimage.find_objects(lab)
    dropped: list[dict[str, float]] = []
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    for i, share, box in zip(index, posterior_share, boxes, strict=True):
        if share >= GAS_MAX_POSTERIOR_SHARE:
            continue
        component = lab[box] == i
        core = ndimage.binary_erosion(component, structure=_STRUCT_3D)  # skip the partial-volume wall
        median_hu = float(np.median(hu[box][core if core.any() else component]))
        if median_hu >= GAS_MAX_HU:
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


def _airway_3d(candidate: np.ndarray, hu: np.ndarray, body_x: np.ndarray, pixel_mm2: float) -> np.ndarray:
    """Find the trachea in cranial slices and track trachea + main bronchi slice by slice.

    Tracking runs on the airway lumen (< ``AIRWAY_LUMEN_HU``, darker than parenchyma) so the trachea stays apart
    from touching lung; the partial-volume ring around the tracked lumen is then removed too.
    """
    nz = candidate.shape[0]
    lumen = candidate & (hu < AIRWAY_LUMEN_HU)
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
    ring = ndimage.binary_dilation(airway, structure=_STRUCT_2D) & candidate & ~lumen
    return airway | ring


def _split_left_right(lungs: np.ndarray, body_x: np.ndarray, thin: bool) -> np.ndarray:
    """Label 1 (right, smaller x) and 2 (left) by components, eroding to separate touching lungs."""
    labels = np.zeros(lungs.shape, dtype=np.uint8)
    if not lungs.any():
        return labels
    if thin:
        for z in range(lungs.shape[0]):
            labels[z] = _split_block(lungs[z : z + 1], body_x[z : z + 1], _STRUCT_2D)[0]
        return labels
    return _split_block(lungs, body_x, _STRUCT_3D)


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
    nearest = _nearest_label(markers, mask)
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


def _fill_slices(labels: np.ndarray, airway: np.ndarray) -> np.ndarray:
    """Fill holes of each lung in each axial slice (vessels, bronchi, enclosed opacities)."""
    out = labels.copy()
    for z in np.nonzero(labels.any(axis=(1, 2)))[0]:
        for value in (RIGHT, LEFT):
            mask = labels[z] == value
            if mask.any():
                filled = ndimage.binary_fill_holes(mask) & (out[z] == 0)
                out[z][filled] = value
    return out


def _recover_dense(
    labels: np.ndarray,
    hu: np.ndarray,
    air_threshold: float,
    dense_max: float,
    body: np.ndarray,
    spacing: np.ndarray,
    body_x: np.ndarray | None = None,
) -> np.ndarray:
    """Step 6: hull-deficit rule (non-medial soft-tissue components) plus the sub-pleural radial rule."""
    recovered = np.zeros(labels.shape, dtype=bool)
    dense_ok = (hu >= air_threshold) & (hu <= dense_max) & body
    for z in range(labels.shape[0]):
        for value in (RIGHT, LEFT):
            lung = labels[z] == value
            if lung.sum() < 20:
                continue
            hull = convex_hull_image(lung)
            deficit = hull & ~lung & (labels[z] == 0) & dense_ok[z]
            if body_x is not None:  # 3-D path: not the partial-volume rim of the pleural boundary
                deficit = _thick_part(deficit)
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
                if areas[i - 1] > MAX_DEFICIT_TO_LUNG * lung.sum():
                    continue  # a crescent of lung around the liver dome / heart: the hull is not lung
                lateral_offset = (cx - lung_cx) * lat_sign / lung_width  # > 0: lateral of the lung centroid
                posterior = (cy - lung_cy) / lung_height > POSTERIOR_MIN
                near_medial_edge = abs(cx - medial_edge) < 0.25 * lung_width
                if lateral_offset > LATERAL_MIN or (posterior and not near_medial_edge):
                    recovered[z] |= lab == i
    # 3-D path: the cage is interpolated between slices
    cage = _recover_rib_cage(labels, hu, dense_ok, body, spacing, between_slices=body_x is not None)
    if body_x is None:  # 2-D path: nothing between the lungs (a mediastinal ray meets the sternum / spine, no rib)
        mediastinum = _mediastinum_2d(labels, body, spacing)
        cage &= ~mediastinum
        recovered &= ~mediastinum
    recovered |= cage
    recovered |= _recover_between_slices(labels, dense_ok & ~recovered, spacing)
    if body_x is None:  # 2-D path only: dependent consolidation between the lung and the posterior cage
        recovered |= _recover_dependent_2d(labels, hu, dense_ok & ~recovered, body, spacing, recovered)
        recovered |= _recover_bronchograms_2d(
            labels, hu, air_threshold, dense_ok & ~recovered, body, spacing, recovered
        )
    if body_x is not None:  # 3-D path only (lung base rule, paravertebral gutter)
        recovered |= _recover_lung_base(labels, dense_ok & ~recovered, spacing, body_x)
        recovered |= _recover_gutter(labels, hu, dense_ok & ~recovered, body, spacing, body_x)
        recovered |= _recover_consolidated_base(labels, hu, dense_ok & ~recovered, body, spacing, recovered)
    # assign recovered voxels to the nearest lung (in place)
    if recovered.any():
        labels[recovered] = _nearest_label(labels, recovered)[recovered]
    return recovered


def _recover_bronchograms_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    air_threshold: float,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
) -> np.ndarray:
    """Consolidated lung around air bronchograms (2-D thin stacks only).

    An air bronchogram is an aerated bronchus inside consolidated lung: on a single slice, a small air pocket
    (< ``air_threshold``, at most ``BRONCHOGRAM_MAX_AREA_MM2``, not touching the image border, not lung) whose
    one-pixel ring is almost all dense tissue (``BRONCHOGRAM_RING_DENSE``). Pockets near the vertebral body and
    descending aorta (the dependent rule's medial band), anterior of ``BRONCHOGRAM_POSTERIOR`` or between the two
    lungs (:func:`_between_lungs`: oesophagus, main bronchi in the mediastinum) are not counted. When a slice holds
    at least ``BRONCHOGRAM_MIN_COUNT`` pockets before the mediastinum test (several bronchograms = a consolidated
    lobe; an isolated pocket is as often a hilar bronchus or the oesophagus), dense tissue within
    ``BRONCHOGRAM_RADIUS_MM`` of the accepted pockets, more than ``DEPENDENT_MARGIN_MM`` from bone, is lung.

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
        bone = _cage_bone_2d(hu[z], trunk[z])
        midline = float(np.nonzero(trunk[z])[1].mean())
        band_lo, band_hi = _paravertebral_band(bone, trunk[z], spacing, midline)
        tys = np.nonzero(trunk[z])[0]
        posterior_y = 0.5 * (tys.min() + tys.max()) + BRONCHOGRAM_POSTERIOR * 0.5 * (tys.max() - tys.min())
        air = (hu[z] < air_threshold) & trunk[z] & ~lung
        comp, n = ndimage.label(air, structure=np.ones((3, 3)))
        if n < BRONCHOGRAM_MIN_COUNT:
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
        pockets = (area <= BRONCHOGRAM_MAX_AREA_MM2) & ~np.isin(index, border) & (dense_share >= BRONCHOGRAM_RING_DENSE)
        pockets &= ~medial & (centres[:, 0] >= posterior_y)
        if pockets.sum() < BRONCHOGRAM_MIN_COUNT:
            continue
        pockets &= ~_between_lungs(labels[z], recovered[z], centres, midline, spacing)
        seeds = np.isin(comp, index[pockets])
        near = ndimage.distance_transform_edt(~seeds, sampling=spacing[1:]) <= BRONCHOGRAM_RADIUS_MM
        region = (near & dense_ok[z]) | seeds
        if bone is not None:
            region &= ndimage.distance_transform_edt(~bone, sampling=spacing[1:]) > DEPENDENT_MARGIN_MM
        out[z] = region & ~lung
    return out


def _between_lungs(
    labels: np.ndarray, recovered: np.ndarray, points: np.ndarray, midline: float, spacing: np.ndarray
) -> np.ndarray:
    """For (y, x) points of one slice: True when the point lies between the two lungs (mediastinum) in its rows.

    Per row window (+- ``BRONCHOGRAM_ROWS_MM``), the mediastinum spans from the right lung's most medial pixel to
    the left lung's; a side without lung in the window is replaced by the midline +- ``BRONCHOGRAM_MIDLINE_MM``.
    """
    r_edge, l_edge = _mediastinum_edges(labels, recovered, midline, spacing)
    rows = np.clip(np.round(points[:, 0]).astype(int), 0, labels.shape[0] - 1)
    return (points[:, 1] > r_edge[rows]) & (points[:, 1] < l_edge[rows])


def _mediastinum_edges(
    labels: np.ndarray, recovered: np.ndarray, midline: float, spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of one slice: x of the right lung's most medial pixel and of the left lung's (see _between_lungs)."""
    ny, nx = labels.shape
    xs = np.arange(nx)[None, :]
    sides = _with_recovered(labels, recovered)
    right, left = sides == RIGHT, sides == LEFT
    r_edge = np.where(right.any(axis=1), np.where(right, xs, -1).max(axis=1), -1).astype(float)
    l_edge = np.where(left.any(axis=1), np.where(left, xs, nx).min(axis=1), nx).astype(float)
    size = 2 * max(1, int(round(BRONCHOGRAM_ROWS_MM / spacing[1]))) + 1
    r_edge = ndimage.maximum_filter1d(r_edge, size, mode="nearest")
    l_edge = ndimage.minimum_filter1d(l_edge, size, mode="nearest")
    half = BRONCHOGRAM_MIDLINE_MM / spacing[2]
    r_edge = np.maximum(r_edge, midline - half)  # the mediastinum is never assumed wider than +- half
    l_edge = np.minimum(l_edge, midline + half)
    return r_edge, l_edge


def _with_recovered(labels: np.ndarray, recovered: np.ndarray) -> np.ndarray:
    """Lung labels of one slice with the ``recovered`` pixels (outside ``labels``) given the nearest lung's label."""
    if not recovered.any():
        return labels
    nearest = _nearest_label(labels[None], recovered[None])[0]
    return np.where(recovered, nearest, labels)


def _mediastinum_2d(labels: np.ndarray, trunk: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """bool (z, y, x): per slice, the pixels between the two lungs' medial edges in their rows (mediastinum).

    Same geometry as :func:`_between_lungs` (row window +- ``BRONCHOGRAM_ROWS_MM``, at most
    ``BRONCHOGRAM_MIDLINE_MM`` either side of the trunk's mean x), from the aerated lung labels only. 2-D path: no
    recovered dense tissue lies there (oesophagus, prevascular fat, hilar vessels, sternum / spine side of a ray).
    """
    out = np.zeros(labels.shape, dtype=bool)
    xs = np.arange(labels.shape[2])[None, :]
    for z in range(labels.shape[0]):
        if not labels[z].any() or not trunk[z].any():
            continue
        midline = float(np.nonzero(trunk[z])[1].mean())
        r_edge, l_edge = _mediastinum_edges(labels[z], np.zeros(labels.shape[1:], dtype=bool), midline, spacing)
        out[z] = (xs > r_edge[:, None]) & (xs < l_edge[:, None])
    return out


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
    reach = _reach_along(lung, ok, axis=0, reverse=False, max_steps=depth)
    return reach & columns[None, :] & (index < inner[None, :])


def _no_new_holes(lung: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Components of ``band`` (2-D) whose addition to ``lung`` encloses no new hole (a ring around the heart)."""
    if not band.any():
        return band
    before = ndimage.binary_fill_holes(lung)
    comp, n = ndimage.label(band, structure=np.ones((3, 3)))
    keep = np.zeros(n + 1, dtype=bool)
    for i in range(1, n + 1):
        part = comp == i
        keep[i] = not (ndimage.binary_fill_holes(lung | part) & ~before & ~part).any()
    return keep[comp]


def _paravertebral_band(
    bone: np.ndarray | None, trunk: np.ndarray, spacing: np.ndarray, midline: float
) -> tuple[float, float]:
    """Column range (x, working-grid pixels) of the vertebral body and descending aorta in one slice (2-D rules).

    From ``DEPENDENT_MEDIAL_MM`` beyond the vertebral body's smaller-x (patient-right) edge to ``DEPENDENT_AORTA_MM``
    beyond its larger-x (patient-left) edge, where the descending aorta lies beside the spine. Without bone or a
    vertebral body (:func:`_vertebral_body`) the trunk ``midline`` (x index) stands in for the body.
    """
    vb = _vertebral_body(bone, trunk, spacing, midline) if bone is not None else None
    right_edge, left_edge = (vb[2], vb[3]) if vb is not None else (int(round(midline)), int(round(midline)))
    return right_edge - DEPENDENT_MEDIAL_MM / spacing[2], left_edge + DEPENDENT_AORTA_MM / spacing[2]


def _cage_bone_2d(hu: np.ndarray, trunk: np.ndarray) -> np.ndarray | None:
    """Bone of one slice for the 2-D cage: >= ``BONE_HU``, or near the saturated top of a display-converted image.

    Returns ``None`` when the image maximum is below ``DEPENDENT_MIN_TOP_HU`` (a window so low that muscle
    saturates like bone).
    """
    if not trunk.any():
        return None
    top = float(hu[trunk].max())
    if top < DEPENDENT_MIN_TOP_HU:
        return None
    bone = (hu >= min(BONE_HU, top - DEPENDENT_BONE_BELOW_TOP_HU)) & trunk
    lab, n = ndimage.label(bone, structure=np.ones((3, 3)))
    if n == 0:
        return bone
    sizes = ndimage.sum_labels(bone, lab, np.arange(1, n + 1))
    return np.isin(lab, 1 + np.nonzero(sizes >= DEPENDENT_MIN_BONE_PX)[0])


def _recover_dependent_2d(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
) -> np.ndarray:
    """Dependent (posterior) consolidation of single slices: dense tissue between the lung and the posterior cage.

    Per column (x) of each slice and lung, the deepest lung pixel (largest y = most posterior) is found and the
    column is walked posteriorly, through non-bone tissue up to ``DEPENDENT_MAX_HU``, towards the posterior cage:
    the first bone pixel behind it (:func:`_cage_bone_2d`), as the rolling minimum depth over
    ``DEPENDENT_CAGE_WINDOW_MM`` (a column between two ribs takes the neighbouring ribs). Tissue more than
    ``DEPENDENT_MARGIN_MM`` in front of the cage, at most ``DEPENDENT_MAX_DEPTH_MM`` behind the lung, in bands of
    at least ``DEPENDENT_MIN_BAND_MM`` and ``DEPENDENT_MIN_COLUMNS`` columns wide, is lung. Only columns whose
    deepest lung pixel lies in the posterior half of the trunk (dependent lung) are walked, never columns near the
    vertebral body (``DEPENDENT_MEDIAL_MM``; ``DEPENDENT_AORTA_MM`` on the left, descending aorta), in the medial
    ``DEPENDENT_LUNG_MEDIAL`` or lateral ``DEPENDENT_LUNG_LATERAL`` share of the lung's width (mediastinum; chest
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
    half = max(1, int(round(DEPENDENT_CAGE_WINDOW_MM / spacing[2] / 2)))
    margin = DEPENDENT_MARGIN_MM / spacing[1]
    min_band = max(2.0, DEPENDENT_MIN_BAND_MM / spacing[1])
    depth = max(1, int(round(DEPENDENT_MAX_DEPTH_MM / spacing[1])))
    for z in range(labels.shape[0]):
        bone = _cage_bone_2d(hu[z], trunk[z])
        if bone is None or not labels[z].any() or not dense_ok[z].any():
            continue
        midline = float(np.nonzero(trunk[z])[1].mean())
        band_lo, band_hi = _paravertebral_band(bone, trunk[z], spacing, midline)
        medial = (xs >= band_lo) & (xs <= band_hi)
        tys = np.nonzero(trunk[z])[0]
        centre_y = 0.5 * (tys.min() + tys.max())
        ok = trunk[z] & ~bone & (hu[z] <= DEPENDENT_MAX_HU)
        sides = _with_recovered(labels[z], recovered[z])
        any_lung = sides > 0
        for value in (RIGHT, LEFT):
            lung = sides == value
            if lung.sum() < 20:
                continue
            lxs = np.nonzero(lung)[1]
            width = float(lxs.max() - lxs.min() + 1)
            inner_side = xs > lxs.max() - DEPENDENT_LUNG_MEDIAL * width  # right lung: medial = larger x
            outer_side = xs < lxs.min() + DEPENDENT_LUNG_LATERAL * width
            if value == LEFT:
                inner_side = xs < lxs.min() + DEPENDENT_LUNG_MEDIAL * width
                outer_side = xs > lxs.max() - DEPENDENT_LUNG_LATERAL * width
            deepest = np.where(lung.any(axis=0), ny - 1 - np.argmax(lung[::-1], axis=0), -1)
            allowed = ~medial & ~inner_side & ~outer_side & (deepest >= centre_y)
            band = _band_to_cage(lung, bone, ok, allowed, half, margin, min_band, depth) & ~any_lung
            band = ndimage.binary_opening(band, structure=np.ones((1, DEPENDENT_MIN_COLUMNS), dtype=bool))
            out[z] |= _no_new_holes(any_lung, band)
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


def _recover_between_slices(labels: np.ndarray, dense_ok: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Dense voxels with lung of the same side above AND below in their (y, x) column (3-D outline interpolation).

    A consolidated region that slices above and below show as aerated lung lies inside the lung outline: for each
    voxel the nearest lung voxel of each side is looked up cranially and caudally in the same column, within
    ``INTERP_WINDOW_MM``. Only interpolation, never extrapolation: the liver and spleen below the diaphragm dome
    have lung above them but none below. Accepted regions must touch the lung (3-D components).
    """
    nz = labels.shape[0]
    recovered = np.zeros(labels.shape, dtype=bool)
    if nz < 3:
        return recovered
    reach = max(1, int(round(INTERP_WINDOW_MM / spacing[0])))
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


def _dome_design(ys_mm: np.ndarray, xs_mm: np.ndarray) -> np.ndarray:
    """Design matrix of the dome model: all monomials y^i x^j, i + j <= ``BASE_FIT_DEGREE`` (y, x centred, dm)."""
    yc = (ys_mm - float(np.mean(ys_mm))) / 100.0  # decimetres: keeps the least-squares system well conditioned
    xc = (xs_mm - float(np.mean(xs_mm))) / 100.0
    terms = [yc**i * xc**j for i in range(BASE_FIT_DEGREE + 1) for j in range(BASE_FIT_DEGREE + 1 - i)]
    return np.stack(terms, axis=-1)


def _fit_dome(base_mm: np.ndarray, ys_mm: np.ndarray, xs_mm: np.ndarray) -> np.ndarray:
    """Lower-envelope fit of the lung base height (mm) over the lung footprint; returns the dome height (mm).

    Asymmetric iteratively reweighted least squares: columns whose base lies above the current surface (raised by
    consolidation lying on the diaphragm, or by the heart) get weight ``BASE_FIT_ASYMMETRY``, columns below it
    ``1 - BASE_FIT_ASYMMETRY``, so the surface follows the part of the dome that carries aerated lung.
    """
    design = _dome_design(ys_mm, xs_mm)
    weights = np.ones_like(base_mm)
    for _ in range(BASE_FIT_ITERATIONS):
        sw = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], base_mm * sw, rcond=None)
        dome = design @ coef
        weights = np.where(base_mm > dome, BASE_FIT_ASYMMETRY, 1.0 - BASE_FIT_ASYMMETRY)
    return dome


def _raised_columns(footprint: np.ndarray, raise_mm: np.ndarray, spacing: np.ndarray, midline_x: float) -> np.ndarray:
    """(y, x) columns of one lung whose base is raised above the dome by a dependent, sub-pleural dense layer.

    Raised by ``BASE_RAISED_MM`` ... ``BASE_MAX_RAISE_MM`` (higher: apex or mediastinal overhang), posterior half of
    the footprint (the heart sits on the anterior diaphragm), at least ``BASE_MIDLINE_MM`` from the midline
    (vertebral body, aorta), at least three columns wide (a rim column clips the curved lung wall high) and
    reaching the rim of the footprint (sub-pleural: against the chest wall).
    """
    ny, nx = footprint.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ys = np.nonzero(footprint)[0]
    columns = footprint & (raise_mm >= BASE_RAISED_MM) & (raise_mm <= BASE_MAX_RAISE_MM)
    columns &= yy >= ys.mean()
    columns &= np.abs(xx - midline_x) * spacing[2] >= BASE_MIDLINE_MM
    columns = ndimage.binary_opening(columns, structure=np.ones((3, 3), dtype=bool))
    rim = footprint & ~ndimage.binary_erosion(footprint, iterations=2)
    comp, _ = ndimage.label(columns)
    keep = np.unique(comp[rim & (comp > 0)])
    return np.isin(comp, keep[keep > 0])


def _recover_lung_base(labels: np.ndarray, dense_ok: np.ndarray, spacing: np.ndarray, body_x: np.ndarray) -> np.ndarray:
    """Dense lung lying on the diaphragm: raised columns are filled down to the modelled dome (3-D path only).

    Per lung, the lowest lung voxel of every (y, x) column gives the base height; a smooth dome (:func:`_fit_dome`)
    models the diaphragm under aerated lung. In the columns whose base lies clearly above the dome
    (:func:`_raised_columns`; consolidation on the diaphragm has no aerated lung below it), dense voxels between
    the dome and the base, in 3-D components touching the lung, are lung. Skipped when the first or last slice
    holds more than 10 % of the largest lung cross-section (lung cut by the scan range: base or apex missing) or
    the lung is shorter than ``BASE_MIN_LUNG_HEIGHT_MM`` (lung bases of an abdominal CT: no dome to model).
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
        if max(area[0], area[-1]) > 0.1 * area.max() or height_mm < BASE_MIN_LUNG_HEIGHT_MM:
            continue
        base = np.argmax(lung, axis=0)  # lowest lung slice of each column
        ys, xs = np.nonzero(footprint)
        dome = np.full(footprint.shape, np.inf)
        dome[ys, xs] = _fit_dome(base[ys, xs] * spacing[0], ys * spacing[1], xs * spacing[2])
        base_mm = np.where(footprint, base * spacing[0], -np.inf)
        columns = _raised_columns(footprint, base_mm - dome, spacing, float(np.median(body_x)))
        if not columns.any():
            continue
        candidate = (z_mm >= dome[None]) & (z_mm < base_mm[None]) & columns[None] & dense_ok & (labels == 0)
        comp, _ = ndimage.label(candidate, structure=_STRUCT_3D)
        touching = np.unique(comp[ndimage.binary_dilation(lung, structure=_STRUCT_3D) & (comp > 0)])
        recovered |= np.isin(comp, touching[touching > 0])
    return recovered


def _vertebral_body(
    bone: np.ndarray, trunk: np.ndarray, spacing: np.ndarray, midline_x: float
) -> tuple[int, int, int, int, int] | None:
    """Vertebral body of one axial slice: (centre y, centre x, left x, right x, posterior y) indices, or ``None``.

    The vertebral body is the thickest bone of the posterior half of the trunk near the midline (within
    ``GUTTER_MIDLINE_MM``): the maximum of the in-plane distance transform of the hole-filled bone mask (cortical
    ring + cancellous interior), so thin posterior elements (transverse processes, rib heads) do not move it. Its
    left / right / posterior edges are the extent of the filled bone along the centre row / column. ``None`` when
    the thickest bone has an inscribed radius below ``GUTTER_MIN_RADIUS_MM`` (no vertebra in the slice).
    """
    ys = np.nonzero(trunk)[0]
    if ys.size == 0 or not bone.any():
        return None
    # posterior half of the trunk (y = posterior), within a vertebral half-width of the allowed centres: the
    # crop also keeps a closed rib ring from filling the whole thorax
    y0 = int(ys.mean())
    half = int(np.ceil((GUTTER_MIDLINE_MM + GUTTER_WIDTH_MM) / spacing[2]))
    x0, x1 = max(0, int(midline_x) - half), min(bone.shape[1], int(midline_x) + half + 1)
    filled = ndimage.binary_fill_holes(bone[y0:, x0:x1])
    if not filled.any():
        return None
    dist = ndimage.distance_transform_edt(np.pad(filled, 1), sampling=spacing[1:])[1:-1, 1:-1]
    xs = np.arange(x0, x1)[None, :]
    dist[:, np.abs(xs[0] - midline_x) * spacing[2] > GUTTER_MIDLINE_MM] = 0.0  # centre near the midline
    cy, cx = (int(i) for i in np.unravel_index(int(np.argmax(dist)), dist.shape))
    if dist[cy, cx] < GUTTER_MIN_RADIUS_MM:
        return None
    row, col = filled[cy], filled[:, cx]
    left = cx - int(np.argmax(~row[cx::-1])) + 1 if (~row[: cx + 1]).any() else 0
    right = cx + int(np.argmax(~row[cx:])) - 1 if (~row[cx:]).any() else row.size - 1
    back = cy + int(np.argmax(~col[cy:])) - 1 if (~col[cy:]).any() else col.size - 1
    cy, back, cx, left, right = cy + y0, back + y0, cx + x0, left + x0, right + x0
    return cy, cx, left, right, back


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


def _recover_gutter(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    body_x: np.ndarray,
) -> np.ndarray:
    """Dense lung filling the paravertebral gutter (posterior costovertebral recess), 3-D path only.

    Per slice the vertebral body is located (:func:`_vertebral_body`). The gutter of each lung is the band up to
    ``GUTTER_WIDTH_MM`` lateral of the body's lateral edge, between the body's centre and its posterior edge (the
    descending aorta and the azygos vein lie antero-lateral, in front of the centre; the paravertebral muscles lie
    behind the rib heads and transverse processes). A dense pocket there is lung when it is enclosed: reached
    medially, row by row, from that lung lying lateral of it, and anteriorly, column by column, from the rib head or
    vertebra behind it (at most ``GUTTER_DEPTH_MM``), through dense voxels only. Voxels within
    ``CAGE_MARGIN_3D_MM`` of bone (pleura, periosteum, intercostal vessels) are never lung, and only pockets thicker
    than two pixels are kept (:func:`_thick_part`; the corner triangles left by the partial-volume boundary are
    neither lung nor consolidation).
    """
    nx = labels.shape[2]
    recovered = np.zeros(labels.shape, dtype=bool)
    depth = max(1, int(round(GUTTER_DEPTH_MM / spacing[1])))
    width = max(1, int(round(GUTTER_WIDTH_MM / spacing[2])))
    bone = (hu >= BONE_HU) & trunk
    for z in np.nonzero(labels.any(axis=(1, 2)))[0]:
        vb = _vertebral_body(bone[z], trunk[z], spacing, float(body_x[z]))
        if vb is None:
            continue
        cy, _, left, right, back = vb
        pad = int(np.ceil(CAGE_MARGIN_3D_MM / min(spacing[1], spacing[2]))) + 1
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
            reach = _reach_along(lung, ok, axis=1, reverse=value == LEFT, max_steps=width)
            reach[: cy - ya] = False
            reach[back + 1 - ya :] = False
            if not reach.any():
                continue
            reach &= _reach_along(bone[window], ok, axis=0, reverse=True, max_steps=depth)
            # distance to bone within the window padded by the margin (bone just outside the band counts too)
            pa, pb = max(0, xa - pad), min(nx, xb + pad)
            far = ndimage.distance_transform_edt(~bone[z, ya:yb, pa:pb], sampling=spacing[1:]) > CAGE_MARGIN_3D_MM
            reach = _thick_part(reach & far[:, xa - pa : xb - pa])
            recovered[z, ya:yb, x0:x1] |= reach[:, x0 - xa : x1 - xa]
    return recovered


def _recover_consolidated_base(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    recovered: np.ndarray,
) -> np.ndarray:
    """lungs-1.5 (3-D path only): a lung base consolidated over its whole depth, after the other dense rules.

    The costophrenic recess (:func:`_recover_recess`: angular gaps of a base slice's lung crescent). ``recovered``
    (voxels accepted by the other rules) counts as lung, on the side of the nearest lung; only new voxels are
    returned.
    """
    current = _side_of_components(labels, recovered)
    return _recover_recess(current, hu, dense_ok, trunk, spacing)


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
    current: np.ndarray, hu: np.ndarray, dense_ok: np.ndarray, trunk: np.ndarray, spacing: np.ndarray
) -> np.ndarray:
    """Consolidated costophrenic recess: the crescent of dense lung between two stretches of lung (3-D path only).

    Below its largest cross-section a lung base is a dome sitting in the bowl of the rib cage: in an axial slice the
    lung is a crescent around the liver / spleen dome. When a stretch of that crescent is consolidated over its
    whole depth, the rays from the trunk centre that cross it meet no lung of the slice, so the radial rib-cage rule
    cannot see it. Here, per slice (cranial to caudal) and lung, a gap of at most ``RECESS_MAX_GAP_DEG`` between
    rays that meet the lung, outside the anterior sector (``CAGE_Z_ANTERIOR_DEG``: heart, cardiac notch), gets the
    radial extent of the lung interpolated (linearly in angle) between the two rays bounding it -- the outer edge
    moves out to the first bone on the ray when that lies within ``RECESS_CAGE_REACH_MM`` (the lung fills the cavity
    up to the inner surface of the rib cage) -- and its dense voxels are lung when they lie under the lung of the
    slice above (a lung base only narrows caudally; in-plane tolerance one pixel), at least ``BASE_MIDLINE_MM`` from
    the trunk's midline (vertebral body, aorta, oesophagus), more than ``CAGE_MARGIN_3D_MM`` from bone, form a part
    thicker than two pixels and touch the lung. Slices are processed caudally so a recovered crescent carries on to
    the next slice.
    ``current``: lung labels including the voxels recovered so far; the voxels added here are labelled in place.
    Returns the added voxels.
    """
    nz, ny, nx = current.shape
    out = np.zeros(current.shape, dtype=bool)
    if nz < 3:
        return out
    n_rays = N_RAYS
    rays = np.arange(n_rays)
    angle = (rays + 0.5) / n_rays * 360.0 - 180.0  # image y = posterior; anterior = -90 degrees
    allowed = np.abs(((angle + 90.0) + 180.0) % 360.0 - 180.0) >= CAGE_Z_ANTERIOR_DEG
    max_len = int(round(RECESS_MAX_GAP_DEG / 360.0 * n_rays))
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
                lateral = np.abs(xx - cx) * spacing[2] >= BASE_MIDLINE_MM  # not the spine, aorta, oesophagus
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
            bone = (hu[z] >= BONE_HU) & trunk[z] & (radius > inner[ray])
            r_bone = np.full(n_rays, np.inf)
            np.minimum.at(r_bone, ray[bone], radius[bone])
            reach = np.isfinite(inner) & (r_bone > outer) & (r_bone - outer <= RECESS_CAGE_REACH_MM / pixel_mm)
            outer = np.where(reach, r_bone, outer)
            band = (radius >= inner[ray]) & (radius <= outer[ray]) & lateral
            band &= ndimage.binary_dilation(current[z + 1] == value, structure=one) & dense_ok[z] & (current[z] == 0)
            if not band.any():
                continue
            far = ndimage.distance_transform_edt(hu[z] < BONE_HU, sampling=spacing[1:]) > CAGE_MARGIN_3D_MM
            band = _thick_part(band & far)
            if not band.any():
                continue
            comp, _ = ndimage.label(band, structure=one)
            touching = np.unique(comp[ndimage.binary_dilation(lung, structure=one) & (comp > 0)])
            band = np.isin(comp, touching[touching > 0])
            current[z][band] = value
            out[z] |= band
    return out


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


def _recover_rib_cage(
    labels: np.ndarray,
    hu: np.ndarray,
    dense_ok: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    between_slices: bool = False,
) -> np.ndarray:
    """Dense lung between the aerated lung and the inner surface of the rib cage (radial rule).

    Rays are cast from each slice's trunk centre. On each ray that meets lung, the rib cage is the first bone
    pixel (>= ``BONE_HU``) outside the outermost lung pixel; rays without bone take the cage radius from the
    neighbouring rays (circular interpolation, at most ``CAGE_MAX_GAP_DEG`` away) and the cage radius is smoothed
    by a rolling lower quartile (+-10 degrees) so a scapula behind a gap between ribs does not count. Dense pixels
    (soft-tissue range) farther out than the lung and more than ``CAGE_MARGIN_MM`` inside the cage, in bands at
    least ``MIN_BAND_MM`` deep and touching the lung, are consolidated lung lying against the pleura.

    ``between_slices`` (3-D path): real ribs are discontinuous in axial slices (they slope), so a ray of one slice
    often passes between two ribs. Missing rays are then filled by linear interpolation along z from the nearest
    slices with a rib hit on that ray, at most ``CAGE_Z_REACH_MM`` away (the inner surface of the rib cage between
    ribs), and the margin and band are ``CAGE_MARGIN_3D_MM`` / ``MIN_BAND_3D_MM``. Rays within
    ``CAGE_Z_ANTERIOR_DEG`` of anterior (heart against the sternum and costal cartilage) and slices in the upper
    ``CAGE_APEX_FRACTION`` of the lung height (oblique ribs near the apex) keep the per-slice rule (6 mm, 8 mm).
    """
    nz, ny, nx = labels.shape
    n_rays = N_RAYS
    yy, xx = np.mgrid[0:ny, 0:nx]
    pixel_mm = float(np.sqrt(spacing[1] * spacing[2]))
    max_gap = int(round(CAGE_MAX_GAP_DEG / 360.0 * n_rays))
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
        bone = (hu[z] >= BONE_HU) & trunk[z] & (radius > r_lung[ray])
        r_bone = np.full(n_rays, np.inf)
        np.minimum.at(r_bone, ray[bone], radius[bone])
        r_bone_all[z] = np.where(np.isfinite(r_bone), r_bone, np.nan)
        geometry[z] = (radius, ray, r_lung)
    # pass 2: fill rays between ribs from the slices above and below (linear in z, within the reach)
    reach = CAGE_Z_REACH_MM / spacing[0]
    z_index = np.arange(nz)
    # ray k points at angle (k + 0.5) / n_rays * 360 - 180 degrees (image y = posterior); anterior = -90 degrees
    angle = (rays + 0.5) / n_rays * 360.0 - 180.0
    anterior = np.abs(((angle + 90.0) + 180.0) % 360.0 - 180.0) < CAGE_Z_ANTERIOR_DEG
    if not between_slices:  # per-slice rule: every ray as the anterior sector (no interpolation, 6 mm / 8 mm)
        anterior[:] = True
    # posterior and lateral rays (ossified ribs, dependent lung): thinner margin and bands; anterior as in 2-D
    margin = np.where(anterior, CAGE_MARGIN_MM, CAGE_MARGIN_3D_MM) / pixel_mm
    min_band = np.maximum(2.0, np.where(anterior, MIN_BAND_MM, MIN_BAND_3D_MM) / pixel_mm)
    # upper part of the lungs: the ribs run obliquely near the apex, so no interpolation and the 2-D margins there
    apical = z_index >= slices[0] + (1.0 - CAGE_APEX_FRACTION) * (slices[-1] - slices[0])
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
            inner = cage - CAGE_MARGIN_MM / pixel_mm
            deep = has_lung & np.isfinite(inner) & (inner - r_lung >= max(2.0, MIN_BAND_MM / pixel_mm))
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


def _leak_fraction(labels: np.ndarray, outside: np.ndarray) -> float:
    lung = labels > 0
    if not lung.any():
        return 0.0
    near_outside = ndimage.binary_dilation(outside, structure=_STRUCT_2D, iterations=2)
    return float((lung & near_outside).sum() / lung.sum())


# --------------------------------------------------------------------------------------------------- resampling
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
def _quality(labels: sitk.Image, dense: sitk.Image, info: dict[str, Any], thin: bool, work_spacing) -> dict[str, Any]:
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
        "mode": "2d" if thin else "3d",
        "working_spacing_mm": tuple(float(s) for s in work_spacing[::-1]),
        "algorithm_version": ALGORITHM_VERSION,
        "flags": flags,
    }
