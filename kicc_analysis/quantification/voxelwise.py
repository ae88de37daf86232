"""Voxel-wise opacity labels: GGO / consolidation by HU bins inside the lung, vessels removed (:func:`segment_opacities`).

Also the input checks and small helpers the other opacity modules share (:func:`_arrays`, :func:`_bounding_box`,
:func:`_disk`, :func:`_without_thin_structures`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import AnalysisError
from .bins import get_bins

GGO, CONSOLIDATION = 1, 2
# last change of the voxel-wise outputs (segment_opacities, quantify): the cohort batch cache is keyed on this, so a
# change of the teaching-slice lesion regions alone does not invalidate cached series
VOXELWISE_VERSION = "quant-1.5"
# 3-D vessel removal (Frangi objectness of bright tubes, SimpleITK ObjectnessMeasure on Gaussian-smoothed HU)
VESSEL_SCALES_MM = (1.5, 3.0)  # Gaussian sigma (mm) of the two scales; vessel radius about 1.5-4.5 mm
VESSEL_ALPHA, VESSEL_BETA, VESSEL_GAMMA = 0.5, 0.5, 50.0  # Frangi plate / blob / structureness (HU/mm^2) terms
VESSEL_SEED = 0.25  # voxels with objectness above this are vessel ...
VESSEL_GROW = 0.3  # ... and so are their in-plane neighbours above this fraction of it (vessel walls)
VESSEL_GROW_STEPS = 2  # ... at most this many in-plane steps away (voxels)
VESSEL_WORK_SPACING_MM = 2.0  # objectness runs on a grid block-averaged to about this spacing (speed)
VESSEL_MIN_EXTENT_MM = 20.0  # thinner stacks (and 2-D images) use the in-plane opening instead
# ... of this width (mm), on GGO + consolidation together (quant-1.5): in a single slice a normal vessel and its
# partial-volume rim fall in the GGO range (5 mm slices: most small vessels); the MedSeg baseline used 3 mm too
SLICE_VESSEL_WIDTH_MM = 3.0


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
        Drop vessels; removed voxels get label 0. With ``vessel_width_mm = 0`` (default) a CT volume uses the 3-D
        rule: voxels of bright tubes found by a two-scale Frangi objectness with hysteresis (:func:`_vessels_3d`),
        removed from consolidation; a single slice or thin stack (a single coronal or sagittal slice in its own
        plane) uses the 2-D rule with ``SLICE_VESSEL_WIDTH_MM`` (3 mm): GGO + consolidation are opened in-plane with
        a disk of that diameter and grown back inside the original voxels, so vessels and the GGO-range
        partial-volume rims around them go while opacities wider than the disk keep their edges.
    vessel_width_mm : float
        When > 0 (and ``remove_vessels``), the 2-D opening with a disk of this diameter (mm) on GGO + consolidation
        together, on volumes too (thin-section and teaching images, where vessels span several pixels).

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
    """GGO / consolidation labels of one (cropped) array; ``spacing`` in mm in array axis order.

    A single coronal or sagittal slice (3-D array with one voxel across y or x) is processed as a 2-D slice in its
    own plane (the vessel rule then is the in-plane opening)."""
    axis = next((a for a in (1, 2) if hu.ndim == 3 and hu.shape[a] == 1 and hu.shape[0] > 1), None)
    if axis is not None:
        spacing = np.asarray(spacing, dtype=float)
        out = _opacity_array(
            np.moveaxis(hu, axis, 0),
            np.moveaxis(lung, axis, 0),
            table,
            np.concatenate([spacing[[axis]], np.delete(spacing, axis)]),
            remove_vessels,
            vessel_width_mm,
        )
        return np.ascontiguousarray(np.moveaxis(out, 0, axis))
    spacing_yx = np.asarray(spacing[-2:], dtype=float)
    lo, hi = table["ggo"]
    ggo = lung & (hu >= lo) & (hu < hi)
    lo, hi = table["consolidation"]
    dense = lung & (hu >= lo) & (hu < hi)
    if remove_vessels:
        if vessel_width_mm <= 0 and _is_volume(hu.shape, spacing):
            dense &= ~_vessels_3d(hu, dense, spacing)
        else:
            if vessel_width_mm <= 0:  # single slice / thin stack: no 3-D shape, vessels by in-plane width
                vessel_width_mm = SLICE_VESSEL_WIDTH_MM
            dense = _without_thin_structures(dense, vessel_width_mm, spacing_yx)
        if vessel_width_mm > 0:
            # vessel walls (partial volume) fall in the GGO range: filter GGO + consolidation together
            ggo = _without_thin_structures(ggo | dense, vessel_width_mm, spacing_yx) & ~dense
    out = np.zeros(hu.shape, dtype=np.uint8)
    out[ggo] = GGO
    out[dense] = CONSOLIDATION
    return out


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
