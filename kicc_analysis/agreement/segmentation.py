"""Agreement between segmentations drawn by several readers: overlap, surface distances (mm), STAPLE consensus.

Conventions (see ``docs/agreement.md``)
---------------------------------------
* **Surface voxels**: foreground voxels with at least one face neighbour (connectivity 1: 6 in 3-D, 4 in 2-D) in the
  background, i.e. ``mask XOR binary_erosion(mask)``; the array border counts as background. This is MedPy's and
  MONAI's definition; ``connectivity=ndim`` (full, 26-neighbourhood) is available.
* **Distances** are Euclidean in mm (``spacing`` per array axis) from each surface voxel of one mask to the nearest
  surface voxel of the other (exact nearest-neighbour search on surface voxel centres with a k-d tree; identical to
  reading :func:`scipy.ndimage.distance_transform_edt` of the other surface, and much faster on CT-sized masks).
* **Hausdorff** = max of the two directed maxima. **HD95** default ``percentile_mode="directed"``: the larger of the
  two directed 95th percentiles (MONAI, DeepMind surface-distance); ``"pooled"``: 95th percentile of both directions'
  distances pooled (MedPy ``hd95``).
* **ASSD** default ``assd_mode="pooled"``: mean of all distances of both directions (MONAI, MedPy ``assd``);
  ``"mean_of_means"``: average of the two directed means (older MedPy, many papers).
* **Surface Dice** at ``tolerance`` mm (Nikolov et al. 2021) counts surface *voxels* within tolerance (not surfel
  areas as DeepMind's implementation).
* **Empty masks**: both empty -> Dice = Jaccard = surface Dice = 1, distances 0, volume difference 0 (the readers
  agree that there is nothing); exactly one empty -> Dice = Jaccard = surface Dice = 0 and every distance NaN
  (undefined), flagged in ``empty``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from kicc_analysis.errors import AnalysisError


def _as_array(mask: Any, spacing: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean array and spacing (mm) in array-axis order; SimpleITK images bring their own spacing."""
    try:
        import SimpleITK as sitk

        if isinstance(mask, sitk.Image):
            arr = sitk.GetArrayFromImage(mask) != 0
            sp = np.asarray(mask.GetSpacing()[::-1], dtype=float) if spacing is None else np.asarray(spacing, float)
            return arr, sp
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        pass
    arr = np.asarray(mask)
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise AnalysisError(f"a mask must be numeric or boolean, got dtype {arr.dtype}")
        arr = arr != 0
    sp = np.ones(arr.ndim) if spacing is None else np.asarray(spacing, dtype=float).ravel()
    if sp.size == 1 and arr.ndim > 1:
        sp = np.repeat(sp, arr.ndim)
    if sp.size != arr.ndim:
        raise AnalysisError(f"spacing has {sp.size} values for a {arr.ndim}-D mask (one per array axis, in mm)")
    if np.any(sp <= 0) or not np.all(np.isfinite(sp)):
        raise AnalysisError(f"spacing must be positive finite mm values, got {sp.tolist()}")
    return arr, sp


def _surface(mask: np.ndarray, connectivity: int) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(
    mask_a: np.ndarray, mask_b: np.ndarray, spacing: np.ndarray, connectivity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm): from every surface voxel of A to B's surface, and from B to A.

    Both masks must be non-empty. Work is confined to the bounding box of the two masks (exact: the nearest
    surface voxel always lies inside it).
    """
    both = mask_a | mask_b
    idx = np.nonzero(both)
    lo = [max(int(i.min()) - 1, 0) for i in idx]
    hi = [min(int(i.max()) + 2, s) for i, s in zip(idx, both.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    # Pad the crop with background so that erosion sees the same neighbourhood as in the full array.
    a = _surface(np.pad(mask_a[box], 1), connectivity)
    b = _surface(np.pad(mask_b[box], 1), connectivity)
    # Exact Euclidean nearest-surface-voxel distances with a k-d tree on the surface voxel centres (mm): the same
    # values as a distance transform of the other surface read at these voxels, but ~20x faster on large masks
    # because only surface voxels are touched.
    points_a = np.argwhere(a) * spacing
    points_b = np.argwhere(b) * spacing
    dist_to_b = cKDTree(points_b).query(points_a, workers=2)[0]
    dist_to_a = cKDTree(points_a).query(points_b, workers=2)[0]
    return dist_to_b, dist_to_a


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

    def as_dict(self) -> dict[str, Any]:
        """Flat dict of every field."""
        return dict(self.__dict__)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame."""
        return pd.DataFrame([self.as_dict()])


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

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> round(segmentation_agreement(a, np.roll(a, 1, axis=0)).dice, 3)
    0.75
    """
    a, sp = _as_array(mask_a, spacing)
    b, sp_b = _as_array(mask_b, spacing)
    if a.shape != b.shape:
        raise AnalysisError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    if spacing is None and not np.allclose(sp, sp_b):
        raise AnalysisError(f"the two images have different spacings {sp.tolist()} and {sp_b.tolist()} mm")
    if percentile_mode not in ("directed", "pooled"):
        raise AnalysisError(f"percentile_mode must be 'directed' or 'pooled', got {percentile_mode!r}")
    if assd_mode not in ("pooled", "mean_of_means"):
        raise AnalysisError(f"assd_mode must be 'pooled' or 'mean_of_means', got {assd_mode!r}")
    voxel_ml = float(np.prod(sp)) / 1000.0
    na, nb = int(a.sum()), int(b.sum())
    inter = int(np.count_nonzero(a & b))
    vol_a, vol_b = na * voxel_ml, nb * voxel_ml
    convention = (
        f"surface = mask XOR erosion (connectivity {connectivity}); HD{percentile:g} {percentile_mode}; "
        f"ASSD {assd_mode}; surface Dice by voxel counts at {tolerance} mm"
    )
    common = {
        "volume_a_ml": vol_a,
        "volume_b_ml": vol_b,
        "volume_difference_ml": vol_a - vol_b,
        "relative_volume_difference": (vol_a - vol_b) / vol_b if vol_b > 0 else (0.0 if vol_a == 0 else np.nan),
        "tolerance_mm": tolerance,
        "convention": convention,
    }
    if na == 0 and nb == 0:
        return SegmentationAgreement(
            dice=1.0,
            jaccard=1.0,
            hausdorff_mm=0.0,
            hd95_mm=0.0,
            assd_mm=0.0,
            asd_a_to_b_mm=0.0,
            asd_b_to_a_mm=0.0,
            surface_dice=1.0,
            empty="both",
            **common,
        )
    if na == 0 or nb == 0:
        nan = float("nan")
        return SegmentationAgreement(
            dice=0.0,
            jaccard=0.0,
            hausdorff_mm=nan,
            hd95_mm=nan,
            assd_mm=nan,
            asd_a_to_b_mm=nan,
            asd_b_to_a_mm=nan,
            surface_dice=0.0,
            empty="a" if na == 0 else "b",
            **common,
        )
    d_ab, d_ba = surface_distances(a, b, sp, connectivity)
    if percentile_mode == "directed":
        hd_p = max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile))
    else:
        hd_p = np.percentile(np.concatenate([d_ab, d_ba]), percentile)
    if assd_mode == "pooled":
        assd = np.concatenate([d_ab, d_ba]).mean()
    else:
        assd = (d_ab.mean() + d_ba.mean()) / 2
    surface_dice = (np.count_nonzero(d_ab <= tolerance) + np.count_nonzero(d_ba <= tolerance)) / (d_ab.size + d_ba.size)
    return SegmentationAgreement(
        dice=2 * inter / (na + nb),
        jaccard=inter / (na + nb - inter),
        hausdorff_mm=float(max(d_ab.max(), d_ba.max())),
        hd95_mm=float(hd_p),
        assd_mm=float(assd),
        asd_a_to_b_mm=float(d_ab.mean()),
        asd_b_to_a_mm=float(d_ba.mean()),
        surface_dice=float(surface_dice),
        empty="none",
        **common,
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
    arrays = [_as_array(m, None)[0] for m in masks]
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
