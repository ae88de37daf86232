"""Compare two lung masks of one CT: :func:`compare_lung_masks` (Dice, volumes, and where they differ).

Where two masks differ says which is wrong more often than the Dice does. Each voxel in exactly one of the masks is
put in the first of these places that holds it:

1. ``outside_cage`` -- outside the rib cage: outside the convex hull of the bone (HU >= 150) and the agreed lung of
   its axial slice (chest wall, outside air, a leak);
2. ``below_diaphragm`` -- under the lung both masks agree on, in its own cranio-caudal column (liver dome, stomach or
   bowel gas), or below the lowest slice of that agreed lung;
3. ``dense_in_cage`` -- dense tissue (HU >= -300) inside the cage: consolidation, effusion, atelectasis, or heart,
   vessels and mediastinum;
4. ``other`` -- the rest (aerated lung at the edges, airways).

Overlap metrics come from :mod:`kicc_analysis.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from skimage.morphology import convex_hull_image

from ..errors import SegmentationError
from ..metrics import dice
from .lungs import LEFT, RIGHT, LungSegmentation

__all__ = ["DISAGREEMENT_DICE", "DISAGREEMENT_VOLUME", "compare_lung_masks", "disagreement_flags"]

BONE_HU = 150.0  # bone (ribs, spine, sternum) for the rib-cage hull (150: also the ribs of thick, smoothed slices)
BONE_MIN_PIXELS = 20  # ... a slice needs at least this many bone pixels to have a cage
HULL_PIXEL_MM = 3.0  # ... hull computed on blocks of about this size (mm)
DENSE_HU = -300.0  # dense tissue (consolidation, soft tissue) starts here
LOBES = ("RUL", "RML", "RLL", "LUL", "LLL")
PLACES = ("outside_cage", "below_diaphragm", "dense_in_cage", "other")
#: the batch flags ``mask_disagreement`` when the whole-lung Dice is below this ...
DISAGREEMENT_DICE = 0.90
#: ... or the lung volumes differ by more than this share of the mean volume
DISAGREEMENT_VOLUME = 0.10


def _arrays(mask: Any, ct: sitk.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    labels = mask.labels if isinstance(mask, LungSegmentation) else mask
    lobes = getattr(mask, "lobes", None)
    if not isinstance(labels, sitk.Image):
        raise SegmentationError(f"compare_lung_masks: mask {name} must be a lung segmentation or a label image")
    if labels.GetSize() != ct.GetSize():
        raise SegmentationError(
            f"compare_lung_masks: mask {name} is on grid {labels.GetSize()}, the CT on {ct.GetSize()}; "
            "read it with load_lung_mask(..., ct) first"
        )
    return sitk.GetArrayViewFromImage(labels), (sitk.GetArrayViewFromImage(lobes) if lobes is not None else None)


def compare_lung_masks(a: Any, b: Any, ct: sitk.Image, *, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Dice, volumes and the places of disagreement of two lung masks, per lung and per lobe.

    Parameters
    ----------
    a, b : LungSegmentation, ExternalLungMask or SimpleITK.Image
        Results of :func:`segment_lungs` / :func:`load_lung_mask`, or label images (1 right, 2 left), on the CT grid.
        Lobe rows need lobes in both.
    ct : SimpleITK.Image
        The CT in HU.
    names : (str, str)
        Names of ``a`` and ``b`` for ``attrs`` (e.g. ``("classical", "totalsegmentator")``).

    Returns
    -------
    pandas.DataFrame
        One row per region (``both``, ``right``, ``left``, then ``RUL`` ... ``LLL`` when both have lobes):
        ``dice``, ``volume_a_ml``, ``volume_b_ml``, ``volume_difference_ml`` (a - b), ``relative_difference``
        (a - b over their mean), ``a_only_ml``, ``b_only_ml`` and, for the voxels in exactly one mask, ``<place>_ml``
        for ``outside_cage``, ``below_diaphragm``, ``dense_in_cage``, ``other`` (they add up to a_only + b_only).
        ``attrs["names"]`` holds ``names``.

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk
    >>> ct = sitk.GetImageFromArray(np.full((4, 20, 20), -850, dtype=np.int16))
    >>> a = np.zeros((4, 20, 20), np.uint8); a[:, 5:15, 2:9] = 1; a[:, 5:15, 11:18] = 2
    >>> b = a.copy(); b[:, 15, 2:9] = 1                                 # b has one more row of right lung
    >>> t = compare_lung_masks(sitk.GetImageFromArray(a), sitk.GetImageFromArray(b), ct).set_index("region")
    >>> t.loc[["right", "left"], ["dice", "b_only_ml", "other_ml"]].round(3).to_numpy().tolist()
    [[0.952, 0.028, 0.028], [1.0, 0.0, 0.0]]
    """
    la, lobes_a = _arrays(a, ct, names[0])
    lb, lobes_b = _arrays(b, ct, names[1])
    hu = sitk.GetArrayViewFromImage(ct)
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    places = _places(la > 0, lb > 0, hu, float(min(ct.GetSpacing()[:2])))
    box = _box((la > 0) | (lb > 0))  # the region statistics need only the masks' bounding box
    la, lb, places = la[box], lb[box], places[box]
    lobes_a = lobes_a[box] if lobes_a is not None else None
    lobes_b = lobes_b[box] if lobes_b is not None else None
    regions: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("both", la > 0, lb > 0),
        ("right", la == RIGHT, lb == RIGHT),
        ("left", la == LEFT, lb == LEFT),
    ]
    if lobes_a is not None and lobes_b is not None:
        regions += [(lobe, lobes_a == k, lobes_b == k) for k, lobe in enumerate(LOBES, start=1)]
    rows = []
    for region, ma, mb in regions:
        va, vb = np.count_nonzero(ma) * voxel_ml, np.count_nonzero(mb) * voxel_ml
        differ = ma ^ mb
        row = {
            "region": region,
            "dice": dice(ma, mb),
            "volume_a_ml": va,
            "volume_b_ml": vb,
            "volume_difference_ml": va - vb,
            "relative_difference": (va - vb) / ((va + vb) / 2) if va + vb > 0 else 0.0,
            "a_only_ml": np.count_nonzero(ma & ~mb) * voxel_ml,
            "b_only_ml": np.count_nonzero(mb & ~ma) * voxel_ml,
        }
        counts = np.bincount(places[differ], minlength=len(PLACES) + 1)
        for k, place in enumerate(PLACES, start=1):
            row[f"{place}_ml"] = float(counts[k]) * voxel_ml
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["names"] = names
    return frame


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` (the whole array when it is empty)."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(i for i in range(mask.ndim) if i != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1) if present.size else slice(None))
    return tuple(box)


def _places(a: np.ndarray, b: np.ndarray, hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """uint8 (z, y, x): 1 + the index in :data:`PLACES` of every voxel's place (0 outside both masks)."""
    either = a | b
    out = np.zeros(a.shape, dtype=np.uint8)
    if not either.any():
        return out
    agreed = a & b
    # 2. below the agreed lung in its own column, or below the agreed lung's lowest slice (z = inferior -> superior)
    z = np.arange(a.shape[0])[:, None, None]
    has = agreed.any(axis=0)
    lowest = np.where(has, np.argmax(agreed, axis=0), a.shape[0])
    slices = np.flatnonzero(agreed.any(axis=(1, 2)))
    floor = slices[0] if slices.size else 0
    below = (z < lowest[None]) & (has[None] | (z < floor))
    # 1. outside the rib cage: per axial slice, outside the convex hull of the bone and the agreed lung
    outside = np.zeros(a.shape, dtype=bool)
    step = max(1, int(HULL_PIXEL_MM / pixel_mm))  # the hull on a ~3 mm grid (speed), repeated back
    for k in np.flatnonzero(either.any(axis=(1, 2))):
        bone = hu[k] >= BONE_HU
        if np.count_nonzero(bone) >= BONE_MIN_PIXELS:
            bone |= agreed[k]  # the cage holds the lung both masks agree on
            coarse = _block_any(bone, step)
            hull = np.repeat(np.repeat(convex_hull_image(coarse), step, axis=0), step, axis=1)
            outside[k] = ~hull[: bone.shape[0], : bone.shape[1]]
    out[either] = 4
    out[either & (hu >= DENSE_HU)] = 3
    out[either & below] = 2
    out[either & outside] = 1
    return out


def _block_any(mask: np.ndarray, step: int) -> np.ndarray:
    if step == 1:
        return mask
    ny, nx = -(-mask.shape[0] // step) * step, -(-mask.shape[1] // step) * step
    padded = np.zeros((ny, nx), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(ny // step, step, nx // step, step).any(axis=(1, 3))


def disagreement_flags(table: pd.DataFrame) -> list[str]:
    """``["mask_disagreement"]`` when the whole-lung Dice < :data:`DISAGREEMENT_DICE` or the volumes differ by more
    than :data:`DISAGREEMENT_VOLUME` of their mean, else ``[]`` (``table`` from :func:`compare_lung_masks`)."""
    both = table.set_index("region").loc["both"]
    if both["dice"] < DISAGREEMENT_DICE or abs(both["relative_difference"]) > DISAGREEMENT_VOLUME:
        return ["mask_disagreement"]
    return []
