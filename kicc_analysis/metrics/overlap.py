"""Overlap and volume metrics of two binary masks on the same grid (Dice, Jaccard, volumes in mL).

Empty masks: both empty -> Dice = Jaccard = 1 (the masks agree that there is nothing); exactly one empty -> 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kicc_analysis.errors import AnalysisError

__all__ = ["as_mask", "dice", "jaccard", "relative_volume_difference", "volume_difference_ml", "volume_ml"]


def as_mask(mask: Any, spacing: Sequence[float] | float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean array and voxel spacing (mm) in array-axis order.

    Parameters
    ----------
    mask : array or SimpleITK image
        Non-zero = foreground. A SimpleITK image brings its own spacing (reversed to array order z, y, x).
    spacing : float or sequence of float, optional
        Voxel size in mm per array axis; one value is used for every axis; 1 mm when absent.

    Returns
    -------
    (mask, spacing_mm) : (ndarray of bool, ndarray of float)

    Examples
    --------
    >>> arr, sp = as_mask([[0, 2], [1, 0]], spacing=0.5)
    >>> arr.tolist(), sp.tolist()
    ([[False, True], [True, False]], [0.5, 0.5])
    """
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


def _pair(mask_a: Any, mask_b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, _ = as_mask(mask_a)
    b, _ = as_mask(mask_b)
    if a.shape != b.shape:
        raise AnalysisError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def dice(mask_a: Any, mask_b: Any) -> float:
    """Dice similarity coefficient 2|A∩B| / (|A| + |B|) (1 when both masks are empty).

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> dice(a, np.roll(a, 1, axis=0))
    0.75
    """
    a, b = _pair(mask_a, mask_b)
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na + nb == 0:
        return 1.0
    return 2 * int(np.count_nonzero(a & b)) / (na + nb)


def jaccard(mask_a: Any, mask_b: Any) -> float:
    """Jaccard index |A∩B| / |A∪B| (1 when both masks are empty).

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> jaccard(a, np.roll(a, 1, axis=0))
    0.6
    """
    a, b = _pair(mask_a, mask_b)
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def volume_ml(mask: Any, spacing: Sequence[float] | float | None = None) -> float:
    """Foreground volume in mL (voxel count × voxel volume in mm³ / 1000).

    Examples
    --------
    >>> volume_ml(np.ones((10, 10, 10)), spacing=(1.0, 1.0, 1.0))
    1.0
    """
    arr, sp = as_mask(mask, spacing)
    return int(np.count_nonzero(arr)) * float(np.prod(sp)) / 1000.0


def volume_difference_ml(mask_a: Any, mask_b: Any, spacing: Sequence[float] | float | None = None) -> float:
    """Signed volume difference A − B in mL.

    Examples
    --------
    >>> a = np.ones((10, 10, 10)); b = a.copy(); b[:5] = 0
    >>> volume_difference_ml(a, b)
    0.5
    """
    a, b = _pair(mask_a, mask_b)
    return volume_ml(a, spacing) - volume_ml(b, spacing)


def relative_volume_difference(mask_a: Any, mask_b: Any) -> float:
    """(|A| − |B|) / |B|: 0 when both are empty, NaN when only B is empty.

    Examples
    --------
    >>> a = np.ones((10, 10, 10)); b = a.copy(); b[:5] = 0
    >>> relative_volume_difference(a, b)
    1.0
    """
    a, b = _pair(mask_a, mask_b)
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if nb == 0:
        return 0.0 if na == 0 else float("nan")
    return (na - nb) / nb
