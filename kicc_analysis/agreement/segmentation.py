"""Agreement between segmentations drawn by several readers: overlap, surface distances (mm), STAPLE consensus.

The metrics themselves live in :mod:`kicc_analysis.metrics` (one implementation shared with segmentation QA); the
conventions are described there and in ``docs/agreement.md``. In short: surface voxels (``mask XOR erosion``) or
DeepMind-style surfels (``weighting="surfel"``), Euclidean nearest-surface distances in mm, HD95 as the larger of
the two directed 95th percentiles (``percentile_mode="pooled"`` for MedPy), ASSD pooled over both directions
(``assd_mode="mean_of_means"`` for older MedPy), directed ASD and surface Dice in both directions; both masks empty ->
Dice = Jaccard = surface Dice = 1 and distances 0; exactly one empty -> 0 and NaN, flagged in ``empty``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError
from kicc_analysis.metrics import as_mask, compute_surface_distances, surface_distances

__all__ = ["SegmentationAgreement", "StapleResult", "segmentation_agreement", "staple", "surface_distances"]


@dataclass(frozen=True)
class SegmentationAgreement:
    """Overlap and surface-distance agreement of two masks (distances in mm, volumes in mL)."""

    dice: float
    jaccard: float
    volume_a_ml: float
    volume_b_ml: float
    volume_difference_ml: float
    relative_volume_difference: float
    hausdorff_mm: float
    hd95_mm: float
    assd_mm: float
    asd_a_to_b_mm: float
    asd_b_to_a_mm: float
    surface_dice: float
    tolerance_mm: float
    empty: str
    convention: str
    surface_dice_a_to_b: float = float("nan")
    surface_dice_b_to_a: float = float("nan")
    weighting: str = "voxel"

    def as_dict(self) -> dict[str, Any]:
        """Flat dict of every field."""
        return dict(self.__dict__)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame."""
        return pd.DataFrame([self.as_dict()])

    def summary(self, digits: int = 3) -> str:
        """Readable summary of the overlap, volume and surface-distance values (mm, mL) and the convention."""
        f = f".{digits}f"
        return (
            f"Dice {self.dice:{f}}, Jaccard {self.jaccard:{f}}; volumes {self.volume_a_ml:{f}} and "
            f"{self.volume_b_ml:{f}} mL (A - B {self.volume_difference_ml:{f}} mL)\n"
            f"  Hausdorff {self.hausdorff_mm:{f}} mm, HD95 {self.hd95_mm:{f}} mm, ASSD {self.assd_mm:{f}} mm "
            f"(A->B {self.asd_a_to_b_mm:{f}}, B->A {self.asd_b_to_a_mm:{f}})\n"
            f"  surface Dice at {self.tolerance_mm:g} mm {self.surface_dice:{f}} (A->B {self.surface_dice_a_to_b:{f}}, "
            f"B->A {self.surface_dice_b_to_a:{f}}); empty: {self.empty}\n"
            f"  convention: {self.convention}"
        )

    def __str__(self) -> str:
        return self.summary()


def segmentation_agreement(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | None = None,
    *,
    tolerance: float = 1.0,
    percentile: float = 95.0,
    percentile_mode: str = "directed",
    assd_mode: str = "pooled",
    connectivity: int = 1,
    weighting: str = "voxel",
) -> SegmentationAgreement:
    """Compare two binary masks of the same grid.

    Parameters
    ----------
    mask_a, mask_b : array or SimpleITK image
        Masks (non-zero = foreground) of identical shape.
    spacing : sequence of float, optional
        Voxel size in mm per *array axis* (z, y, x for a NumPy volume from SimpleITK); taken from the image when a
        SimpleITK image is given; 1 mm otherwise.
    tolerance : float
        Surface-Dice tolerance in mm.
    percentile : float
        Robust Hausdorff percentile (95 -> HD95).
    percentile_mode : {"directed", "pooled"}
        See the module conventions.
    assd_mode : {"pooled", "mean_of_means"}
        See the module conventions.
    connectivity : int
        Neighbourhood defining surface voxels (1 = faces).
    weighting : {"voxel", "surfel"}
        Each surface voxel counts once (default) or surfels weighted by their area (DeepMind ``surface-distance``).

    Returns
    -------
    SegmentationAgreement
        ``asd_a_to_b_mm``/``asd_b_to_a_mm`` and ``surface_dice_a_to_b``/``surface_dice_b_to_a`` are the directed
        values (share of A's surface within ``tolerance`` of B's, and the reverse).

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> round(segmentation_agreement(a, np.roll(a, 1, axis=0)).dice, 3)
    0.75
    """
    if percentile_mode not in ("directed", "pooled"):
        raise AnalysisError(f"percentile_mode must be 'directed' or 'pooled', got {percentile_mode!r}")
    if assd_mode not in ("pooled", "mean_of_means"):
        raise AnalysisError(f"assd_mode must be 'pooled' or 'mean_of_means', got {assd_mode!r}")
    a, sp = as_mask(mask_a, spacing)
    b, _ = as_mask(mask_b, spacing)
    sd = compute_surface_distances(mask_a, mask_b, spacing, connectivity=connectivity, weighting=weighting)
    voxel_ml = float(np.prod(sp)) / 1000.0
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    inter = int(np.count_nonzero(a & b))
    vol_a, vol_b = na * voxel_ml, nb * voxel_ml
    surface = (
        f"surface = mask XOR erosion (connectivity {connectivity})"
        if weighting == "voxel"
        else ("surface = marching-cubes surfels, area-weighted (DeepMind surface-distance)")
    )
    convention = (
        f"{surface}; HD{percentile:g} {percentile_mode}; ASSD {assd_mode}; "
        f"surface Dice by {'voxel counts' if weighting == 'voxel' else 'surfel areas'} at {tolerance} mm"
    )
    if na + nb == 0:
        dice, jaccard = 1.0, 1.0
    else:
        dice, jaccard = 2 * inter / (na + nb), inter / (na + nb - inter)
    return SegmentationAgreement(
        dice=dice,
        jaccard=jaccard,
        volume_a_ml=vol_a,
        volume_b_ml=vol_b,
        volume_difference_ml=vol_a - vol_b,
        relative_volume_difference=(vol_a - vol_b) / vol_b if vol_b > 0 else (0.0 if vol_a == 0 else np.nan),
        hausdorff_mm=sd.hausdorff(),
        hd95_mm=sd.percentile_hausdorff(percentile, percentile_mode),
        assd_mm=sd.average(assd_mode),
        asd_a_to_b_mm=sd.average("a_to_b"),
        asd_b_to_a_mm=sd.average("b_to_a"),
        surface_dice=sd.surface_dice(tolerance),
        surface_dice_a_to_b=sd.surface_dice(tolerance, "a_to_b"),
        surface_dice_b_to_a=sd.surface_dice(tolerance, "b_to_a"),
        tolerance_mm=tolerance,
        empty=sd.empty,
        convention=convention,
        weighting=weighting,
    )


@dataclass(frozen=True)
class StapleResult:
    """STAPLE consensus: probability map, binary consensus (p >= threshold) and per-reader performance."""

    probability: np.ndarray
    consensus: np.ndarray
    readers: pd.DataFrame
    threshold: float


def staple(
    masks: Sequence[Any], *, threshold: float = 0.5, foreground: int = 1, readers: Sequence[str] | None = None
) -> StapleResult:
    """Consensus of several readers' binary masks with SimpleITK's STAPLE (Warfield et al. 2004).

    Parameters
    ----------
    masks : sequence of arrays or SimpleITK images
        One binary mask per reader, same shape (non-zero = foreground, converted to ``foreground``).
    threshold : float
        Probability above which a voxel belongs to the consensus.
    readers : sequence of str, optional
        Reader names for the performance table.

    Returns
    -------
    StapleResult
        ``readers`` has one row per reader with STAPLE's ``sensitivity`` and ``specificity`` estimates.
    """
    import SimpleITK as sitk

    if len(masks) < 2:
        raise AnalysisError(f"STAPLE needs at least 2 readers' masks, got {len(masks)}")
    arrays = [as_mask(m, None)[0] for m in masks]
    shapes = {arr.shape for arr in arrays}
    if len(shapes) != 1:
        raise AnalysisError(f"all masks must have the same shape, got {sorted(shapes)}")
    images = [sitk.GetImageFromArray(arr.astype(np.uint8) * foreground) for arr in arrays]
    filt = sitk.STAPLEImageFilter()
    filt.SetForegroundValue(float(foreground))
    prob = sitk.GetArrayFromImage(filt.Execute(images))
    names = list(readers) if readers is not None else [f"reader_{i + 1}" for i in range(len(masks))]
    if len(names) != len(masks):
        raise AnalysisError(f"{len(names)} reader names for {len(masks)} masks")
    table = pd.DataFrame(
        {"reader": names, "sensitivity": list(filt.GetSensitivity()), "specificity": list(filt.GetSpecificity())}
    )
    table.attrs["iterations"] = filt.GetElapsedIterations()
    return StapleResult(probability=prob, consensus=prob >= threshold, readers=table, threshold=threshold)
