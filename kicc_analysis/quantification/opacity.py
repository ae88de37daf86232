"""Opacity segmentation (GGO / consolidation by HU bins) and per-region quantification.

Conventions
-----------
* Regions: ``both``, ``right``, ``left`` and six zones ``right_upper`` ... ``left_lower`` = thirds of each lung's
  cranio-caudal extent (mm, from its lowest to its highest labelled slice). Zones need >= 3 slices per lung; on
  thinner stacks only ``both``, ``right`` and ``left`` are reported.
* Percentages are of the region's lung volume. ``opacity_pct = ggo_pct + consolidation_pct``.
* ``severity_score`` (0-5) of a region from its ``opacity_pct``: 0 none, 1 < 5 %, 2 5-25 %, 3 25-50 %, 4 50-75 %,
  5 > 75 % (the usual CT severity score of Pan et al. 2020 / Chung et al. 2020 applied per zone).
  ``severity_total`` (0-30) = sum of the six zone scores (same value on every row of one series; NaN without
  zones).
* Density statistics use every voxel of the region (including vessels): ``mean_hu``, ``hu_p10`` ... ``hu_p90``,
  ``skewness`` and ``kurtosis`` (excess, Fisher; scipy.stats conventions, bias-corrected = False).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from ..errors import AnalysisError
from ..scores import SEVERITY_EDGES_PCT, severity_score  # noqa: F401 - the 0-5 cut-offs live in kicc_analysis.scores
from .bins import get_bins

# 1.4: local aerated set (2nd pass), consolidation relative to the aerated reference, mask border band out;
# 1.3: lesion edge relative to each region's contrast, small lesions (60-150 mm^2, few vessel pixels) kept;
# 1.2: 2-D tube discount, median split; 1.1: 3-D Frangi vessels
ALGORITHM_VERSION = "quant-1.4"
# last change of the voxel-wise outputs (segment_opacities, quantify): the cohort batch cache is keyed on this, so a
# change of the teaching-slice lesion regions alone (quant-1.2 ... quant-1.4) does not invalidate cached series
VOXELWISE_VERSION = "quant-1.1"
GGO, CONSOLIDATION = 1, 2
PERCENTILES = (10, 25, 50, 75, 90)
ZONE_NAMES = ("upper", "middle", "lower")
HU_LOW, HU_HIGH = -2048, 4095  # histogram range of density statistics (HU, 1-HU bins; values outside are clipped)
N_ZONE_IDS = 9  # 0 background, 1-6 zones, 7/8 right/left without zones
# 3-D vessel removal (Frangi objectness of bright tubes, SimpleITK ObjectnessMeasure on Gaussian-smoothed HU)
VESSEL_SCALES_MM = (1.5, 3.0)  # Gaussian sigma (mm) of the two scales; vessel radius about 1.5-4.5 mm
VESSEL_ALPHA, VESSEL_BETA, VESSEL_GAMMA = 0.5, 0.5, 50.0  # Frangi plate / blob / structureness (HU/mm^2) terms
VESSEL_SEED = 0.25  # voxels with objectness above this are vessel ...
VESSEL_GROW = 0.3  # ... and so are their in-plane neighbours above this fraction of it (vessel walls)
VESSEL_GROW_STEPS = 2  # ... at most this many in-plane steps away (voxels)
VESSEL_WORK_SPACING_MM = 2.0  # objectness runs on a grid block-averaged to about this spacing (speed)
VESSEL_MIN_EXTENT_MM = 20.0  # thinner stacks (and 2-D images) use the in-plane opening instead
PERIPHERY_FRACTION = 1.0 / 3.0  # periphery = outer third of the depth from the thoracic outline (see periphery_mask)
PERIPHERY_WORK_SPACING_MM = 2.0  # ... hull and depth computed on a grid of about this pixel size (speed)


def _arrays(image: sitk.Image, lung_labels: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(image, sitk.Image) or not isinstance(lung_labels, sitk.Image):
        raise AnalysisError("expected SimpleITK images for the CT (HU) and the lung labels")
    if image.GetSize() != lung_labels.GetSize():
        raise AnalysisError(
            f"CT and lung labels must share the grid: CT size {image.GetSize()}, labels {lung_labels.GetSize()}"
        )
    if not np.allclose(image.GetSpacing(), lung_labels.GetSpacing(), rtol=1e-4):
        raise AnalysisError(f"CT spacing {image.GetSpacing()} differs from label spacing {lung_labels.GetSpacing()}")
    hu = sitk.GetArrayViewFromImage(image)
    labels = sitk.GetArrayViewFromImage(lung_labels)
    if hu.dtype.kind == "f":
        bad = int((~np.isfinite(hu[labels > 0])).sum())
        if bad:
            raise AnalysisError(f"the CT has {bad} non-finite (NaN/inf) voxel(s) inside the lung labels; expected HU")
    return hu, labels


def segment_opacities(
    image: sitk.Image,
    lung_labels: sitk.Image,
    *,
    bins: str | Mapping[str, tuple[float, float]] = "default",
    remove_vessels: bool = True,
    vessel_width_mm: float = 0.0,
) -> sitk.Image:
    """Label ground-glass opacity (1) and consolidation (2) inside the lungs by HU bins.

    Parameters
    ----------
    image : SimpleITK.Image
        CT in HU.
    lung_labels : SimpleITK.Image
        Lung labels on the same grid (any non-zero value is lung), e.g. ``segment_lungs(image).labels``.
    bins : str or mapping
        HU bin preset name (see :mod:`kicc_analysis.quantification.bins`) or a custom ``{class: (low, high)}``.
    remove_vessels : bool
        Drop vessels from the consolidation class; removed voxels get label 0. With ``vessel_width_mm = 0`` (default)
        a CT volume uses the 3-D rule: voxels of bright tubes found by a two-scale Frangi objectness with hysteresis
        (:func:`_vessels_3d`); a single slice or thin stack uses the 2-D rule: consolidation is opened in-plane with
        the 3x3 cross and grown back inside the original consolidation voxels, so tubes narrower than about 3
        voxels go while blobs keep their edges.
    vessel_width_mm : float
        When > 0 (and ``remove_vessels``), the 2-D opening is used on volumes too, with a disk of this diameter (mm),
        and GGO + consolidation are filtered together, which also removes the GGO-range partial-volume rims of vessels
        (used for thin-section and teaching images, where vessels span several pixels).

    Returns
    -------
    SimpleITK.Image
        uint8 labels on the same grid: 0 none, 1 GGO, 2 consolidation.
    """
    hu, labels = _arrays(image, lung_labels)
    spacing = np.asarray(image.GetSpacing()[::-1], dtype=float)
    out = np.zeros(hu.shape, dtype=np.uint8)
    box = _bounding_box(labels)
    if box is not None:
        out[box] = _opacity_array(hu[box], labels[box] > 0, get_bins(bins), spacing, remove_vessels, vessel_width_mm)
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(lung_labels)
    return result


def _bounding_box(labels: np.ndarray) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding every non-zero label (None when empty)."""
    lung = labels > 0
    box = []
    for axis in range(lung.ndim):
        others = tuple(i for i in range(lung.ndim) if i != axis)
        present = np.flatnonzero(lung.any(axis=others))
        if present.size == 0:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def _opacity_array(
    hu: np.ndarray,
    lung: np.ndarray,
    table: Mapping[str, tuple[float, float]],
    spacing: np.ndarray,
    remove_vessels: bool,
    vessel_width_mm: float,
) -> np.ndarray:
    """GGO / consolidation labels of one (cropped) array; ``spacing`` in mm in array axis order."""
    spacing_yx = np.asarray(spacing[-2:], dtype=float)
    lo, hi = table["ggo"]
    ggo = lung & (hu >= lo) & (hu < hi)
    lo, hi = table["consolidation"]
    dense = lung & (hu >= lo) & (hu < hi)
    if remove_vessels:
        if vessel_width_mm <= 0 and _is_volume(hu.shape, spacing):
            dense &= ~_vessels_3d(hu, dense, spacing)
        else:
            dense = _without_thin_structures(dense, vessel_width_mm, spacing_yx)
        if vessel_width_mm > 0:
            # vessel walls (partial volume) fall in the GGO range: filter GGO + consolidation together
            ggo = _without_thin_structures(ggo | dense, vessel_width_mm, spacing_yx) & ~dense
    out = np.zeros(hu.shape, dtype=np.uint8)
    out[ggo] = GGO
    out[dense] = CONSOLIDATION
    return out


REGION_SMOOTH_MM = 2.0  # lesion regions: Gaussian sigma (mm) of the local lung density (normalised in the lung)
REGION_GGO_ABOVE_AIR_HU = 100.0  # ... lesion = local density at least this much above the aerated-lung mode
REGION_CONSOLIDATION_HU = -400.0  # ... consolidation = lesion at least this dense (HU; quant-1.1: -300; quant-1.2/1.3)
REGION_CONSOLIDATION_ABOVE_AIR_HU = 450.0  # ... quant-1.4: instead, at least this much (HU) above the aerated reference
REGION_CONSOLIDATION_WINDOW_MM = 5.0  # ... judged on the median HU of a square window this wide (mm; 0: local mean)
REGION_CLOSE_MM = 3.0  # ... closing radius (mm) before hole filling
REGION_EDGE_FRACTION = 0.2  # ... lesion edge: region pixels whose excess over the reference is below this fraction ...
REGION_EDGE_PERCENTILE = 90.0  # ... of this percentile (%) of their region's excess are dropped (0: off), re-closed
REGION_MIN_AREA_MM2 = 150.0  # ... smaller lesion components are dropped (per slice, mm^2) unless ...
REGION_SMALL_MIN_AREA_MM2 = 60.0  # ... they are at least this large (mm^2; a 9 mm nodule) and ...
REGION_SMALL_MAX_TUBE_FRACTION = 0.3  # ... at most this fraction of their pixels are vessel (tube) pixels (GGO only)
REGION_BACKGROUND_MM = 60.0  # ... aerated reference = Gaussian (this sigma, mm) mean of the aerated pixels (0: mode)
REGION_REFERENCE_PASSES = 2  # ... passes; from the 2nd on the reference leaves out the previous pass's lesion (1: off)
REGION_LOCAL_AERATED = True  # ... from the 2nd pass on, aerated = below the previous pass's LOCAL reference + offset
REGION_BORDER_PX = 1  # ... lung-mask boundary band (pixels; partial volume): neither evidence nor reference
REGION_VESSEL_MM = 0.0  # ... (legacy, 0 = off) in-plane bright structures narrower than this (mm) count as air
# 2-D vessel (tube) discount of the lesion regions: multi-scale Frangi objectness of bright ridges, scale-normalised
REGION_TUBE_SCALES_MM = (1.0,)  # Gaussian sigma (mm) of the scales (calibrated; (1, 2, 3.5) tied: ridges 2-10 mm)
REGION_TUBE_STRUCTURE_HU = 100.0  # Frangi gamma: scale-normalised Hessian norm (HU) at which a ridge counts as bright
REGION_TUBE_OBJECTNESS = 0.25  # pixels above this objectness (0-1) are vessel ...
REGION_TUBE_RIM_PX = 2  # ... and so are their neighbours up to this many pixels away that are above the lesion level
REGION_TUBE_PROTECT_HU = -500.0  # ... unless their surroundings (non-vessel lung) are this dense: consolidation bands
REGION_TUBE_PROTECT_MM = 4.0  # ... surroundings = Gaussian (this sigma, mm) mean of the non-vessel lung pixels
REGION_TUBE_KEEP_WIDE_MM = 10.0  # ... nor inside dense (>= consolidation level) structures this wide (mm)


def segment_opacity_regions(
    image: sitk.Image,
    lung_labels: sitk.Image,
    *,
    smooth_mm: float = REGION_SMOOTH_MM,
    ggo_above_air_hu: float = REGION_GGO_ABOVE_AIR_HU,
    consolidation_hu: float = REGION_CONSOLIDATION_HU,
    consolidation_above_air_hu: float | None = REGION_CONSOLIDATION_ABOVE_AIR_HU,
    close_mm: float = REGION_CLOSE_MM,
    edge_fraction: float = REGION_EDGE_FRACTION,
    min_area_mm2: float = REGION_MIN_AREA_MM2,
    small_min_area_mm2: float = REGION_SMALL_MIN_AREA_MM2,
    small_max_tube_fraction: float = REGION_SMALL_MAX_TUBE_FRACTION,
    vessel_width_mm: float = REGION_VESSEL_MM,
    background_mm: float = REGION_BACKGROUND_MM,
    tube_scales_mm: tuple[float, ...] = REGION_TUBE_SCALES_MM,
    tube_structure_hu: float = REGION_TUBE_STRUCTURE_HU,
    tube_rim_px: int = REGION_TUBE_RIM_PX,
    tube_protect_hu: float = REGION_TUBE_PROTECT_HU,
    tube_keep_wide_mm: float = REGION_TUBE_KEEP_WIDE_MM,
    consolidation_window_mm: float = REGION_CONSOLIDATION_WINDOW_MM,
    reference_passes: int = REGION_REFERENCE_PASSES,
    local_aerated: bool = REGION_LOCAL_AERATED,
    border_px: int = REGION_BORDER_PX,
) -> sitk.Image:
    """Lesion REGIONS (1 GGO, 2 consolidation) as a radiologist outlines them, slice by slice.

    :func:`segment_opacities` labels voxels by HU; radiologists outline regions (a GGO patch includes its aerated
    specks and the vessels seen through it, a crazy-paving pattern is one region). Here, per axial slice:

    1. Vessels do not count as evidence: bright tubular structures (2-D Frangi objectness of bright ridges at
       ``tube_scales_mm``, scale-normalised, structureness ``tube_structure_hu``; see :func:`_tubes_2d`) plus a rim
       of ``tube_rim_px`` pixels are left out of the local average, unless their non-vessel surroundings are at
       least ``tube_protect_hu`` dense (bands inside a consolidation stay). ``vessel_width_mm`` > 0 also replaces
       bright (>= ``consolidation_hu``) structures narrower than it by the aerated mode (the quant-1.1 rule).
    2. Local lung density = Gaussian (``smooth_mm``) average of the remaining lung pixels (normalised convolution:
       chest wall and vessels never leak in; a vessel pixel takes the density of the parenchyma around it). The
       outer ``border_px`` pixels of the lung mask (partial volume with chest wall, mediastinum, airway walls) are
       left out of this average and of the aerated reference of step 3 too (quant-1.4); they can still be lesion.
    3. Lesion = local density at least ``ggo_above_air_hu`` above the local aerated-lung reference (the image's own
       reference, robust to window and calibration errors): a wide Gaussian (``background_mm``) mean of the
       aerated pixels (those below the mode + ``ggo_above_air_hu``), which follows the anterior-posterior gravity
       gradient of lung density (0 = the slice's aerated mode everywhere). In the second pass (``reference_passes``)
       the previous pass's lesion is left out and, with ``local_aerated``, the aerated pixels are those below the
       previous pass's local reference + ``ggo_above_air_hu`` rather than the slice's mode + ``ggo_above_air_hu``:
       where the lung is diffusely diseased the mildly raised pixels between the two are not taken as aerated
       (they biased the reference up and hid faint GGO). The result is closed (``close_mm``), holes filled,
       restricted to the lung. Edge relative to contrast: in each connected region, pixels whose excess (local
       density minus reference, HU) is below ``edge_fraction`` x the region's 90th-percentile excess are dropped
       (the blurred halo of dense lesions and vessel clusters; the cut-off is never below ``ggo_above_air_hu``),
       then closed and filled again. Components < ``min_area_mm2`` dropped, except small lesions (nodular GGO): components
       of at least ``small_min_area_mm2`` of which at most ``small_max_tube_fraction`` of the pixels are vessel
       (tube) pixels of step 1 are kept, as GGO (never consolidation; only with the tube discount on). Short vessel
       segments and their partial-volume rims are mostly tube pixels.
    4. Consolidation = lesion pixels whose median HU in a ``consolidation_window_mm`` square window (lung pixels;
       outside the lung counts as air) is >= the local aerated reference of step 3 + ``consolidation_above_air_hu``
       (quant-1.4: relative to the slice's own aerated lung, like the lesion itself, so an error of the estimated
       display window shifts both; ``None``: the absolute ``consolidation_hu``, quant-1.2/1.3); with
       ``consolidation_window_mm`` 0 the local density of step 2 is compared instead (quant-1.1).

    Used for teaching images (8-bit display slices converted with :func:`~kicc_analysis.imaging.display_to_hu`);
    parameters were calibrated on half of the MedSeg slices (docs/ct.md, "Lesion regions on teaching slices").

    Returns
    -------
    SimpleITK.Image
        uint8 labels on the grid of ``lung_labels``: 0 none, 1 GGO region, 2 consolidation region.
    """
    hu, labels = _arrays(image, lung_labels)
    spacing_yx = np.asarray(image.GetSpacing()[:2][::-1], dtype=float)
    hu3 = hu.reshape((-1,) + hu.shape[-2:]).astype(np.float32)
    lab3 = labels.reshape((-1,) + labels.shape[-2:]) > 0
    out = np.zeros(hu3.shape, dtype=np.uint8)
    sigma = smooth_mm / spacing_yx
    close = _disk(close_mm, spacing_yx)
    min_pixels = min_area_mm2 / float(np.prod(spacing_yx))
    small_pixels = small_min_area_mm2 / float(np.prod(spacing_yx))
    for z in range(hu3.shape[0]):
        lung = lab3[z]
        if lung.sum() < 20:
            continue
        values = hu3[z]
        inside = values[lung]
        air_values = inside[inside < -500.0]
        air_mode = _mode_hu(air_values) if air_values.size > 20 else -850.0
        evidence = np.where(lung, values, 0.0).astype(np.float32)
        if vessel_width_mm > 0:
            bright = lung & (values >= consolidation_hu)  # vessel cores are soft-tissue dense, GGO is not
            thin = bright & ~_without_thin_structures(bright, vessel_width_mm, spacing_yx)
            thin = ndimage.binary_dilation(thin) & lung & (values >= air_mode + ggo_above_air_hu)  # + their rims
            evidence[thin] = air_mode
        counted = lung
        tubes = None
        if tube_scales_mm:
            tubes = _region_vessels(
                values, lung, air_mode, air_mode + ggo_above_air_hu, spacing_yx,
                tube_scales_mm, tube_structure_hu, tube_rim_px, tube_protect_hu,
            )  # fmt: skip
            if tube_keep_wide_mm > 0:  # dense structures at least this wide are lesion (or hilum), never vessel
                dense = lung & (values >= consolidation_hu)
                tubes &= ~_without_thin_structures(dense, tube_keep_wide_mm, spacing_yx)
            counted = lung & ~tubes
            evidence[tubes] = 0.0
        inner = ndimage.binary_erosion(lung, iterations=border_px) if border_px > 0 else lung
        if border_px > 0 and inner.sum() >= 20:  # the mask's boundary band is partial volume: no evidence
            counted = counted & inner
            evidence = np.where(counted, evidence, 0.0).astype(np.float32)
        else:
            inner = lung
        weight = ndimage.gaussian_filter(counted.astype(np.float32), sigma)
        local = ndimage.gaussian_filter(evidence, sigma) / np.maximum(weight, 1e-3)
        lesion = np.zeros_like(lung)
        reference = air_mode
        for _ in range(max(1, reference_passes) if background_mm > 0 else 1):
            aerated_below = (reference if local_aerated else air_mode) + ggo_above_air_hu  # HU, scalar or per pixel
            reference = air_mode
            if background_mm > 0:  # aerated pixels outside the previous pass's lesion (its specks are no reference)
                aerated = inner & (values < aerated_below) & ~lesion
                w_air = _wide_gaussian(aerated.astype(np.float32), background_mm, spacing_yx)
                s_air = _wide_gaussian(np.where(aerated, values, 0.0).astype(np.float32), background_mm, spacing_yx)
                reference = np.where(w_air > 0.05, s_air / np.maximum(w_air, 1e-3), air_mode)
            lesion = lung & (local >= reference + ggo_above_air_hu)
        lesion = ndimage.binary_fill_holes(ndimage.binary_closing(lesion, structure=close)) & lung
        if edge_fraction > 0 and lesion.any():
            excess = local - reference
            lesion = excess >= _component_edge_cut(excess, lesion, edge_fraction, ggo_above_air_hu)
            lesion = ndimage.binary_fill_holes(ndimage.binary_closing(lesion, structure=close)) & lung
        lesion, small = _kept_components(lesion, tubes, min_pixels, small_pixels, small_max_tube_fraction)
        out[z][lesion] = GGO
        # consolidation cut-off (HU; per pixel when relative to the aerated reference)
        dense_hu = consolidation_hu if consolidation_above_air_hu is None else reference + consolidation_above_air_hu
        if consolidation_window_mm > 0:  # consolidation is homogeneous: most pixels around it are dense
            # median of the window >= cut-off  <=>  more than half of its pixels are (odd window, box filter)
            size = np.maximum(3, 2 * np.round(consolidation_window_mm / spacing_yx / 2.0).astype(int) + 1)
            share = ndimage.uniform_filter((lung & (values >= dense_hu)).astype(np.float32), size=tuple(size))
            dense = share > 0.5
        else:
            dense = local >= dense_hu
        out[z][lesion & dense & ~small] = CONSOLIDATION
    result = sitk.GetImageFromArray(out.reshape(labels.shape))
    result.CopyInformation(lung_labels)
    return result


def _component_edge_cut(excess: np.ndarray, lesion: np.ndarray, fraction: float, floor_hu: float) -> np.ndarray:
    """Per-pixel lesion cut-off (HU of excess over the aerated reference) relative to each region's contrast.

    For every connected region of ``lesion``: max(``floor_hu``, ``fraction`` x the ``REGION_EDGE_PERCENTILE``
    percentile (nearest rank) of ``excess`` over the region); outside the regions +inf (nothing is added).
    """
    comp, n = ndimage.label(lesion)
    cut = np.full(lesion.shape, np.inf, dtype=np.float32)
    if not n:
        return cut
    labels = comp[lesion]
    values = excess[lesion]
    order = np.lexsort((values, labels))
    counts = np.bincount(labels, minlength=n + 1)[1:]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = starts + np.round((REGION_EDGE_PERCENTILE / 100.0) * (counts - 1)).astype(int)
    high = values[order][rank]
    per_region = np.concatenate(([np.inf], np.maximum(floor_hu, fraction * high)))
    return per_region[comp].astype(np.float32)


def _kept_components(
    lesion: np.ndarray,
    tubes: np.ndarray | None,
    min_pixels: float,
    small_pixels: float,
    small_max_tube_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Lesion components that are kept (boolean slice) and the subset kept by the small-lesion rule.

    Components of at least ``min_pixels`` pixels are kept. Smaller ones of at least ``small_pixels`` pixels are kept
    too when at most ``small_max_tube_fraction`` (0-1) of their pixels are in ``tubes`` (the vessel pixels left out
    of the evidence; ``None`` = no tube discount: the small-lesion rule is off): a nodular GGO patch is hazy
    parenchyma, a leftover around a vessel segment is mostly the vessel itself.
    """
    comp, n = ndimage.label(lesion)
    small = np.zeros(lesion.shape, dtype=bool)
    if not n:
        return lesion, small
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(lesion, comp, index)
    kept = sizes >= min_pixels
    if tubes is not None and small_pixels < min_pixels:
        tube_fraction = ndimage.mean(tubes, comp, index)
        is_small = ~kept & (sizes >= small_pixels) & (tube_fraction <= small_max_tube_fraction)
        small = np.isin(comp, 1 + np.flatnonzero(is_small))
        kept |= is_small
    return np.isin(comp, 1 + np.flatnonzero(kept)), small


def _wide_gaussian(values: np.ndarray, sigma_mm: float, spacing_yx: np.ndarray) -> np.ndarray:
    """Gaussian smoothing (sigma in mm) of a 2-D array by the recursive (IIR) filter: cost independent of sigma."""
    image = sitk.GetImageFromArray(values.astype(np.float32, copy=False))
    image.SetSpacing(tuple(float(x) for x in spacing_yx[::-1]))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, float(sigma_mm)))


def _region_vessels(
    values: np.ndarray,
    lung: np.ndarray,
    air_mode: float,
    lesion_hu: float,
    spacing_yx: np.ndarray,
    scales_mm: tuple[float, ...],
    structure_hu: float,
    rim_px: int,
    protect_hu: float,
) -> np.ndarray:
    """Vessel pixels of one slice that must not count as lesion evidence (boolean, inside ``lung``).

    Pixels at least ``lesion_hu`` (HU) with a bright-tube objectness (:func:`_tubes_2d`, outside the lung set to
    ``air_mode`` so that the lung border is no ridge) above ``REGION_TUBE_OBJECTNESS``, grown by ``rim_px`` pixels
    over pixels >= ``lesion_hu`` (partial-volume walls), minus those whose surroundings (Gaussian
    ``REGION_TUBE_PROTECT_MM`` mean of the non-vessel lung, HU) are >= ``protect_hu`` (bands in consolidation).
    """
    above = lung & (values >= lesion_hu)
    if not above.any():
        return above
    objectness = _tubes_2d(np.where(lung, values, air_mode), spacing_yx, scales_mm, structure_hu)
    tubes = above & (objectness > REGION_TUBE_OBJECTNESS)
    if rim_px > 0 and tubes.any():
        tubes = ndimage.binary_dilation(tubes, iterations=rim_px, mask=above)
    if tubes.any():
        rest = lung & ~tubes
        sigma = REGION_TUBE_PROTECT_MM / spacing_yx
        surround = ndimage.gaussian_filter(np.where(rest, values, 0.0).astype(np.float32), sigma) / np.maximum(
            ndimage.gaussian_filter(rest.astype(np.float32), sigma), 1e-3
        )
        tubes &= surround < protect_hu
    return tubes


def _tubes_2d(
    values: np.ndarray, spacing_yx: np.ndarray, scales_mm: tuple[float, ...], structure_hu: float
) -> np.ndarray:
    """Bright-ridge objectness (0-1) of a 2-D HU image: maximum over scales of the Frangi measure.

    SimpleITK ``ObjectnessMeasure`` (object dimension 1 = ridge, bright object, alpha = beta = 0.5, not scaled) on
    the image smoothed by a Gaussian of each sigma in ``scales_mm`` (mm). The Hessian is scale-normalised (x sigma^2,
    done by dividing gamma), so ``structure_hu`` (HU) is the ridge contrast at which objectness saturates at every
    scale: round blobs and wide GGO patches score low, vessels and bronchovascular bundles high.
    """
    image = sitk.GetImageFromArray(values.astype(np.float32, copy=False))
    image.SetSpacing(tuple(float(x) for x in spacing_yx[::-1]))
    best = np.zeros(values.shape, dtype=np.float32)
    for sigma in scales_mm:
        smooth = sitk.SmoothingRecursiveGaussian(image, float(sigma))
        measure = sitk.ObjectnessMeasure(
            smooth,
            alpha=0.5,
            beta=0.5,
            gamma=float(structure_hu) / float(sigma) ** 2,
            scaleObjectnessMeasure=False,
            objectDimension=1,
            brightObject=True,
        )
        best = np.maximum(best, sitk.GetArrayFromImage(measure))
    return best


def _mode_hu(values: np.ndarray) -> float:
    """Mode (HU) of a sample: peak of its 10-HU histogram smoothed by a Gaussian of 2 bins."""
    low = float(np.floor(values.min() / 10.0) * 10.0)
    counts = np.bincount(((values - low) // 10.0).astype(int)).astype(float)
    counts = ndimage.gaussian_filter1d(counts, 2.0)
    return low + 10.0 * float(np.argmax(counts)) + 5.0


def _is_volume(shape: tuple[int, ...], spacing: np.ndarray) -> bool:
    """True for a 3-D stack tall enough for 3-D vessel filtering (>= 5 slices and >= ``VESSEL_MIN_EXTENT_MM``)."""
    return len(shape) == 3 and shape[0] >= 5 and shape[0] * float(spacing[0]) >= VESSEL_MIN_EXTENT_MM


def _vessels_3d(hu: np.ndarray, dense: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Voxels of ``dense`` that belong to bright tubes (vessels), by a two-scale Frangi objectness with hysteresis.

    Vessels and consolidation share the HU range; only shape separates them. The Frangi measure (SimpleITK
    ``ObjectnessMeasure``, object dimension 1, bright object, on the HU image smoothed at each of
    ``VESSEL_SCALES_MM``; maximum over scales) is high on tubes and low on blobs and sheets. Voxels above
    ``VESSEL_SEED`` are vessel; their in-plane 8-neighbours in ``dense`` above ``VESSEL_GROW * VESSEL_SEED`` are
    too (partial-volume walls). For speed the measure is computed on a grid block-averaged by integer factors to
    about ``VESSEL_WORK_SPACING_MM`` (0.5 x 0.5 x 1 mm CT: 4 x 4 x 2 blocks) and repeated back.
    """
    if not dense.any():
        return np.zeros(dense.shape, dtype=bool)
    factors = np.maximum(1, np.round(VESSEL_WORK_SPACING_MM / spacing)).astype(int)
    image = sitk.GetImageFromArray(hu.astype(np.float32, copy=False))
    image.SetSpacing(tuple(float(x) for x in spacing[::-1]))
    if (factors > 1).any():
        image = sitk.BinShrink(image, [int(f) for f in factors[::-1]])
    objectness = None
    for sigma in VESSEL_SCALES_MM:
        smooth = sitk.SmoothingRecursiveGaussian(image, float(sigma))
        measure = sitk.ObjectnessMeasure(
            smooth,
            alpha=VESSEL_ALPHA,
            beta=VESSEL_BETA,
            gamma=VESSEL_GAMMA,
            scaleObjectnessMeasure=False,
            objectDimension=1,
            brightObject=True,
        )
        values = sitk.GetArrayFromImage(measure)
        objectness = values if objectness is None else np.maximum(objectness, values)
    if (factors > 1).any():
        for axis, factor in enumerate(factors):
            if factor > 1:
                objectness = np.repeat(objectness, int(factor), axis=axis)
        pad = [(0, max(0, n - m)) for n, m in zip(dense.shape, objectness.shape, strict=True)]
        objectness = np.pad(objectness, pad, mode="edge")[tuple(slice(0, n) for n in dense.shape)]
    strong = dense & (objectness > VESSEL_SEED)
    weak = dense & (objectness > VESSEL_GROW * VESSEL_SEED)
    return ndimage.binary_dilation(
        strong, structure=np.ones((1, 3, 3), dtype=bool), iterations=VESSEL_GROW_STEPS, mask=weak
    )


def _disk(radius_mm: float, spacing_yx: np.ndarray) -> np.ndarray:
    """In-plane structuring element of the given radius (mm); at least the 3x3 cross."""
    ry, rx = (max(1, int(round(radius_mm / s))) for s in spacing_yx)
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    return (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


def _without_thin_structures(mask: np.ndarray, width_mm: float, spacing_yx: np.ndarray) -> np.ndarray:
    """Remove in-plane structures narrower than ``width_mm`` (opening), keeping blob edges (geodesic regrowth)."""
    if not mask.any():
        return mask
    disk = _disk(width_mm / 2.0, spacing_yx)
    if mask.ndim == 3:
        disk = disk[None]
    opened = ndimage.binary_opening(mask, structure=disk)
    return ndimage.binary_dilation(opened, structure=disk) & mask


def zone_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the six zones (thirds of each lung's cranio-caudal extent; array z = inferior->superior)."""
    zones: dict[str, np.ndarray] = {}
    if labels.ndim < 3:
        return zones
    for side, value in (("right", 1), ("left", 2)):
        lung = labels == value
        slices = np.nonzero(lung.any(axis=tuple(range(1, lung.ndim))))[0]
        if len(slices) < 3:
            continue
        z0, z1 = slices.min(), slices.max() + 1
        edges = z0 + (z1 - z0) * np.array([1 / 3, 2 / 3])
        z_index = np.arange(lung.shape[0])
        bands = {
            "lower": z_index < edges[0],
            "middle": (z_index >= edges[0]) & (z_index < edges[1]),
            "upper": z_index >= edges[1],
        }
        for name in ZONE_NAMES:
            zones[f"{side}_{name}"] = lung & bands[name][:, None, None]
    return zones


def periphery_mask(
    labels: np.ndarray, spacing_mm: tuple[float, ...] | np.ndarray, fraction: float = PERIPHERY_FRACTION
) -> np.ndarray:
    """Peripheral (sub-pleural) lung: the outer ``fraction`` of the depth from the thoracic outline, per axial slice.

    On each axial slice the thoracic outline is the convex hull of both lungs (it follows the inner chest wall and
    bridges the mediastinum, so the hila are deep, i.e. core). The depth of a pixel is its in-plane Euclidean
    distance (mm) to the outside of that hull; a lung pixel is peripheral when its depth is below ``fraction`` x the
    largest depth on the slice (the hull's inradius). With the default 1/3 this is the "outer third of the lung"
    used to call a COVID-19 pattern peripheral; the rest of the lung is the core. Hull and depth are computed on an
    in-plane grid of about ``PERIPHERY_WORK_SPACING_MM`` (block majority), so the core/periphery border is exact to
    about that distance.

    Parameters
    ----------
    labels : numpy.ndarray
        Lung labels (> 0 lung), (z, y, x) or (y, x).
    spacing_mm : sequence of float
        Voxel spacing (mm) in the array's axis order; only the last two (y, x) are used.
    fraction : float
        Share (0-1, exclusive) of the slice's largest depth that counts as periphery.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True on peripheral lung voxels (core = ``labels > 0`` and not periphery).

    Examples
    --------
    >>> import numpy as np
    >>> disk = (np.hypot(*np.mgrid[-50:51, -50:51]) <= 45).astype(np.uint8)
    >>> periphery = periphery_mask(disk, (1.0, 1.0))
    >>> bool(periphery[50, 8]), bool(periphery[50, 50])  # near the edge / at the centre
    (True, False)
    """
    if not 0.0 < fraction < 1.0:
        raise AnalysisError(f"periphery fraction must lie in (0, 1), got {fraction!r}")
    lung = np.asarray(labels) > 0
    spacing_yx = np.asarray(spacing_mm, dtype=float)[-2:]
    factors = np.maximum(1, np.floor(PERIPHERY_WORK_SPACING_MM / spacing_yx + 1e-6)).astype(int)
    stack = lung.reshape((-1,) + lung.shape[-2:])
    out = np.zeros(stack.shape, dtype=bool)
    for z in np.nonzero(stack.any(axis=(1, 2)))[0]:
        box = _bounding_box(stack[z])
        crop = stack[z][box]
        coarse = _block_majority(crop, factors)
        hull = _filled_hull(np.pad(coarse, 1))  # padded: the outside of the hull always exists
        # EDT gives the distance from a pixel centre to the nearest outside pixel centre: half a pixel more than
        # the distance to the hull edge, so half a (coarse) pixel is subtracted
        coarse_mm = spacing_yx * factors
        depth = ndimage.distance_transform_edt(hull, sampling=coarse_mm)[1:-1, 1:-1] - 0.5 * float(coarse_mm.min())
        ys, xs = np.nonzero(crop)  # depth is interpolated at the lung pixels only (fine centres, coarse units)
        coords = [(ys - (factors[0] - 1) / 2.0) / factors[0], (xs - (factors[1] - 1) / 2.0) / factors[1]]
        depth_lung = ndimage.map_coordinates(depth, coords, order=1, mode="nearest")
        keep = depth_lung < fraction * depth.max()
        out[z][box][ys[keep], xs[keep]] = True  # basic slicing: a view into out
    return out.reshape(lung.shape)


def _filled_hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull of a 2-D mask, filled: pixel centres inside the SciPy ``ConvexHull`` of the pixel corners.

    Computed row by row from the hull's half-planes (a convex region cuts each row in one interval) instead of a
    point-in-polygon test of every pixel: 1.5x faster :func:`periphery_mask` than ``skimage.morphology.
    convex_hull_image``, and exact (scikit-image leaves out some pixel centres strictly inside the hull near its
    vertices; never the other way round in 300 random masks). Centres on the hull boundary are outside.
    """
    points = np.argwhere(mask & ~ndimage.binary_erosion(mask)).astype(float)
    if len(points) < 3:
        return mask.copy()
    corners = (points[:, None, :] + np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])).reshape(-1, 2)
    try:
        equations = ConvexHull(corners).equations  # rows (n_y, n_x, offset): inside when n . (y, x) + offset <= 0
    except QhullError:  # collinear pixels: the mask is its own hull
        return mask.copy()
    rows = np.arange(mask.shape[0], dtype=float)[:, None]
    n_y, n_x, offset = equations[:, 0][None], equations[:, 1][None], equations[:, 2][None]
    bound = -(n_y * rows + offset)  # n_x * x <= bound, per row and edge
    eps = 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = bound / n_x
    x_high = np.min(np.where(n_x > eps, limit, np.inf), axis=1)
    x_low = np.max(np.where(n_x < -eps, limit, -np.inf), axis=1)
    row_ok = np.all(np.where(np.abs(n_x) <= eps, bound > eps, True), axis=1)
    cols = np.arange(mask.shape[1], dtype=float)[None, :]
    hull = (cols > x_low[:, None] + eps) & (cols < x_high[:, None] - eps) & row_ok[:, None]  # open set, as skimage
    return hull | mask


def _block_majority(mask: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """2-D block reduction by integer ``factors``: a block is True when at least half its pixels are (zero-padded)."""
    fy, fx = (int(f) for f in factors)
    if fy == fx == 1:
        return mask
    ny, nx = -(-mask.shape[0] // fy), -(-mask.shape[1] // fx)
    padded = np.zeros((ny * fy, nx * fx), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(ny, fy, nx, fx).mean(axis=(1, 3)) >= 0.5


def quantify(
    image: sitk.Image,
    lung_labels: sitk.Image,
    *,
    bins: str | Mapping[str, tuple[float, float]] = "default",
    opacity_labels: sitk.Image | None = None,
    remove_vessels: bool = True,
    core_periphery: bool = False,
    periphery_fraction: float = PERIPHERY_FRACTION,
    lobe_labels: sitk.Image | None = None,
) -> pd.DataFrame:
    """Quantify lung volume, GGO and consolidation per region.

    Parameters
    ----------
    image : SimpleITK.Image
        CT in HU.
    lung_labels : SimpleITK.Image
        1 right lung, 2 left lung (same grid).
    bins : str or mapping
        HU bin preset or custom table (see :mod:`kicc_analysis.quantification.bins`).
    opacity_labels : SimpleITK.Image, optional
        Pre-computed opacity labels (1 GGO, 2 consolidation); default ``segment_opacities(image, lung_labels, bins)``.
    remove_vessels : bool
        Passed to :func:`segment_opacities` (thin dense vessels are not counted as consolidation).
    core_periphery : bool
        Also report ``both_core``, ``both_periphery``, ``right_core`` ... ``left_periphery`` (``zone`` = ``core`` /
        ``periphery``; see :func:`periphery_mask`). They do not enter ``severity_total``.
    periphery_fraction : float
        Outer share of the depth from the thoracic outline that is periphery (default 1/3).
    lobe_labels : SimpleITK.Image, optional
        1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL (same grid, e.g. ``load_lung_mask(...).lobes``): adds one row per lobe
        (``zone`` = ``"lobe"``) with ``lobe_score`` (0-5) and ``lobe_score_total`` (0-25), see
        :mod:`kicc_analysis.quantification.lobes`; their ``severity_score`` (a zone score) is NaN.

    Returns
    -------
    pandas.DataFrame
        One row per region (``region`` = both, right, left, right_upper, ..., left_lower) with ``side``, ``zone``,
        ``n_voxels``, ``volume_ml``, ``ggo_ml``, ``ggo_pct``, ``consolidation_ml``, ``consolidation_pct``,
        ``opacity_ml``, ``opacity_pct``, one ``<class>_pct`` for each other bin class (e.g. ``emphysema_pct``),
        ``mean_hu``, ``hu_p10`` ... ``hu_p90``, ``skewness``, ``kurtosis``, ``severity_score`` and
        ``severity_total``. ``attrs`` holds ``bins`` (the table used).
    """
    hu, labels = _arrays(image, lung_labels)
    table = get_bins(bins)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    spacing = np.asarray(image.GetSpacing()[::-1], dtype=float)
    box = _bounding_box(labels) or tuple(slice(0, 0) for _ in range(labels.ndim))
    hu_c, lab_c = hu[box], labels[box]
    if opacity_labels is None:
        opac_c = _opacity_array(hu_c, lab_c > 0, table, spacing, remove_vessels, 0.0)
    else:
        opac_c = sitk.GetArrayFromImage(opacity_labels)[box]
    zone_id, has_zones = _zone_ids(lab_c)
    lung = zone_id > 0
    z = zone_id[lung].astype(np.int64)
    hu_bin = np.clip(np.rint(hu_c[lung]), HU_LOW, HU_HIGH).astype(np.int64) - HU_LOW
    n_hu = HU_HIGH - HU_LOW + 1
    hist = np.bincount(z * n_hu + hu_bin, minlength=N_ZONE_IDS * n_hu).reshape(N_ZONE_IDS, n_hu)
    opac_counts = np.bincount(z * 3 + opac_c[lung].astype(np.int64), minlength=N_ZONE_IDS * 3).reshape(N_ZONE_IDS, 3)
    regions = {"both": list(range(1, N_ZONE_IDS)), "right": [1, 2, 3, 7], "left": [4, 5, 6, 8]}
    if has_zones:
        for side, first in (("right", 1), ("left", 4)):
            for k, name in enumerate(ZONE_NAMES):
                regions[f"{side}_{name}"] = [first + k]
    if core_periphery:
        # second set of ids: 2 right core, 3 right periphery, 4 left core, 5 left periphery
        periphery = periphery_mask(lab_c, spacing, periphery_fraction)[lung]
        group = 2 * lab_c[lung].astype(np.int64) + periphery
        hist = np.concatenate([hist, np.bincount(group * n_hu + hu_bin, minlength=6 * n_hu).reshape(6, n_hu)[2:]])
        counts_cp = np.bincount(group * 3 + opac_c[lung].astype(np.int64), minlength=18).reshape(6, 3)[2:]
        opac_counts = np.concatenate([opac_counts, counts_cp])
        first = N_ZONE_IDS  # rows N_ZONE_IDS.. of hist / opac_counts hold the four core/periphery groups
        for part, offset in (("core", 0), ("periphery", 1)):
            regions[f"both_{part}"] = [first + offset, first + 2 + offset]
            regions[f"right_{part}"] = [first + offset]
            regions[f"left_{part}"] = [first + 2 + offset]
    hu_values = np.arange(HU_LOW, HU_HIGH + 1, dtype=np.float64)
    extra_classes = [c for c in table if c not in ("ggo", "consolidation")]
    rows = []
    for name, ids in regions.items():
        h = hist[ids].sum(axis=0)
        counts = opac_counts[ids].sum(axis=0)
        n = int(h.sum())
        volume = n * voxel_ml
        ggo, cons = counts[GGO] * voxel_ml, counts[CONSOLIDATION] * voxel_ml
        side, _, zone = name.partition("_")

        def pct(ml: float, volume: float = volume) -> float:
            return 100.0 * ml / volume if volume > 0 else np.nan

        row = {
            "region": name,
            "side": side,
            "zone": zone or "all",
            "n_voxels": n,
            "volume_ml": volume,
            "ggo_ml": ggo,
            "ggo_pct": pct(ggo),
            "consolidation_ml": cons,
            "consolidation_pct": pct(cons),
            "opacity_ml": ggo + cons,
            "opacity_pct": pct(ggo + cons),
        }
        for cls in extra_classes:
            lo, hi = table[cls]
            row[f"{cls}_pct"] = pct(float(h[(hu_values >= lo) & (hu_values < hi)].sum()) * voxel_ml)
        row.update(_histogram_stats(h, hu_values))
        row["severity_score"] = severity_score(row["opacity_pct"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    zone_rows = frame["zone"].isin(ZONE_NAMES)
    frame["severity_total"] = float(frame.loc[zone_rows, "severity_score"].sum()) if zone_rows.any() else np.nan
    if lobe_labels is not None:  # issue 15: one row per lobe, the same opacity labels
        from .lobes import append_lobe_rows

        frame = append_lobe_rows(frame, image, hu_c, lobe_labels, box, opac_c, table, voxel_ml)
    frame.attrs["bins"] = table
    return frame


def _zone_ids(labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per-voxel zone id: right upper/middle/lower 1/2/3, left 4/5/6; 7/8 = right/left when zones are undefined."""
    zone_id = np.zeros(labels.shape, dtype=np.uint8)
    zones = zone_masks(labels)
    has_zones = len(zones) == 6
    if has_zones:
        for side, first in (("right", 1), ("left", 4)):
            for k, name in enumerate(ZONE_NAMES):
                zone_id[zones[f"{side}_{name}"]] = first + k
    else:
        zone_id[labels == 1] = 7
        zone_id[labels == 2] = 8
    return zone_id, has_zones


def _histogram_stats(h: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean, percentiles (numpy 'linear' method), skewness and excess kurtosis (scipy, biased) from a histogram.

    Exact for integer HU (the histogram has one bin per HU); images with fractional HU are rounded to 1 HU.
    """
    n = h.sum()
    out: dict[str, float] = {}
    if n == 0:
        out["mean_hu"] = np.nan
        out.update({f"hu_p{q}": np.nan for q in PERCENTILES})
        out["skewness"] = out["kurtosis"] = np.nan
        return out
    mean = float(h @ values / n)
    centred = values - mean
    m2 = float(h @ centred**2 / n)
    m3 = float(h @ centred**3 / n)
    m4 = float(h @ centred**4 / n)
    out["mean_hu"] = mean
    cum = np.cumsum(h)
    for q in PERCENTILES:
        position = q / 100.0 * (n - 1)
        low = int(np.floor(position))
        frac = position - low
        v_low = values[np.searchsorted(cum, low, side="right")]
        v_high = values[np.searchsorted(cum, min(low + 1, n - 1), side="right")]
        out[f"hu_p{q}"] = float(v_low + frac * (v_high - v_low))
    out["skewness"] = m3 / m2**1.5 if m2 > 0 and n > 2 else np.nan
    out["kurtosis"] = m4 / m2**2 - 3.0 if m2 > 0 and n > 3 else np.nan
    return out
