"""Lesion regions on teaching slices (:func:`segment_opacity_regions`), settings in :class:`RegionParameters`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import AnalysisError
from .voxelwise import CONSOLIDATION, GGO, _arrays, _disk, _without_thin_structures

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


@dataclass(frozen=True)
class RegionParameters:
    """Settings of :func:`segment_opacity_regions` (frozen; ``dataclasses.replace`` makes a variant).

    Defaults are the ``REGION_*`` module values (calibrated on half of the MedSeg slices, docs/ct.md); the meaning
    of each field is given in the steps of :func:`segment_opacity_regions`.

    Examples
    --------
    >>> RegionParameters().edge_fraction, RegionParameters(edge_fraction=0.15).edge_fraction
    (0.2, 0.15)
    """

    smooth_mm: float = REGION_SMOOTH_MM
    ggo_above_air_hu: float = REGION_GGO_ABOVE_AIR_HU
    consolidation_hu: float = REGION_CONSOLIDATION_HU
    consolidation_above_air_hu: float | None = REGION_CONSOLIDATION_ABOVE_AIR_HU
    close_mm: float = REGION_CLOSE_MM
    edge_fraction: float = REGION_EDGE_FRACTION
    min_area_mm2: float = REGION_MIN_AREA_MM2
    small_min_area_mm2: float = REGION_SMALL_MIN_AREA_MM2
    small_max_tube_fraction: float = REGION_SMALL_MAX_TUBE_FRACTION
    vessel_width_mm: float = REGION_VESSEL_MM
    background_mm: float = REGION_BACKGROUND_MM
    tube_scales_mm: tuple[float, ...] = REGION_TUBE_SCALES_MM
    tube_structure_hu: float = REGION_TUBE_STRUCTURE_HU
    tube_rim_px: int = REGION_TUBE_RIM_PX
    tube_protect_hu: float = REGION_TUBE_PROTECT_HU
    tube_keep_wide_mm: float = REGION_TUBE_KEEP_WIDE_MM
    consolidation_window_mm: float = REGION_CONSOLIDATION_WINDOW_MM
    reference_passes: int = REGION_REFERENCE_PASSES
    local_aerated: bool = REGION_LOCAL_AERATED
    border_px: int = REGION_BORDER_PX


def _region_parameters(parameters: RegionParameters | None, overrides: dict[str, Any]) -> RegionParameters:
    params = RegionParameters() if parameters is None else parameters
    if not isinstance(params, RegionParameters):
        raise AnalysisError(f"parameters: expected a RegionParameters, got {type(params).__name__}")
    names = {f.name for f in dataclass_fields(RegionParameters)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise AnalysisError(
            f"segment_opacity_regions: unknown setting(s) {unknown}; expected fields of RegionParameters: {sorted(names)}"
        )
    return replace(params, **overrides) if overrides else params


def segment_opacity_regions(
    image: sitk.Image,
    lung_labels: sitk.Image,
    parameters: RegionParameters | None = None,
    **overrides: Any,
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

    Settings: ``parameters`` (:class:`RegionParameters`, default its defaults); keyword arguments named like its
    fields override them (``segment_opacity_regions(image, lungs, edge_fraction=0.15)``).

    Used for teaching images (8-bit display slices converted with :func:`~kicc_analysis.imaging.display_to_hu`);
    parameters were calibrated on half of the MedSeg slices (docs/ct.md, "Lesion regions on teaching slices").

    Returns
    -------
    SimpleITK.Image
        uint8 labels on the grid of ``lung_labels``: 0 none, 1 GGO region, 2 consolidation region.
    """
    p = _region_parameters(parameters, overrides)
    smooth_mm, ggo_above_air_hu, consolidation_hu = p.smooth_mm, p.ggo_above_air_hu, p.consolidation_hu
    consolidation_above_air_hu, close_mm, edge_fraction = p.consolidation_above_air_hu, p.close_mm, p.edge_fraction
    min_area_mm2, small_min_area_mm2, small_max_tube_fraction = (
        p.min_area_mm2,
        p.small_min_area_mm2,
        p.small_max_tube_fraction,
    )
    vessel_width_mm, background_mm, tube_scales_mm = p.vessel_width_mm, p.background_mm, p.tube_scales_mm
    tube_structure_hu, tube_rim_px, tube_protect_hu = p.tube_structure_hu, p.tube_rim_px, p.tube_protect_hu
    tube_keep_wide_mm, consolidation_window_mm = p.tube_keep_wide_mm, p.consolidation_window_mm
    reference_passes, local_aerated, border_px = p.reference_passes, p.local_aerated, p.border_px
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
