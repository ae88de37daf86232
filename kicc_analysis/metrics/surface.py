"""Surface-distance metrics of two binary masks on the same grid (distances in mm).

Conventions (see ``docs/agreement.md``)
---------------------------------------
* ``weighting="voxel"`` (default): the surface is the set of **surface voxels**, foreground voxels with at least one
  face neighbour (connectivity 1: 6 in 3-D, 4 in 2-D) in the background, i.e. ``mask XOR binary_erosion(mask)``; the
  array border counts as background (MedPy's and MONAI's definition; ``connectivity=ndim`` for the full
  neighbourhood). Each surface voxel counts once in averages, percentiles and surface Dice.
* ``weighting="surfel"``: the surface is made of **surfels**, the marching-cubes (3-D) or marching-squares (2-D)
  pieces of the iso-surface at 0.5 that fall in each 2×2(×2) block of voxels; the point of a block is its centre (a
  voxel corner) and its weight is the area in mm² (length in mm in 2-D) of the surface in it, computed for the given
  anisotropic spacing. This is the convention of DeepMind's ``surface-distance`` library (Nikolov et al. 2021):
  averages and surface Dice are area-weighted; the robust Hausdorff percentile is the smallest distance whose
  cumulative area share reaches the percentile.
* Distances are Euclidean in mm from each surface point of one mask to the nearest surface point of the other
  (exact nearest-neighbour search with a k-d tree; identical to reading a Euclidean distance transform of the other
  surface).
* **Directed** values: ``a_to_b`` averages the distances from A's surface to B's, ``b_to_a`` the reverse; the
  symmetric values combine both directions (``"pooled"``: all distances of both directions together, MONAI and
  MedPy ``assd``; ``"mean_of_means"``: the average of the two directed means).
* **Hausdorff** = max of the two directed maxima. **HD95** ``mode="directed"`` (default): the larger of the two
  directed 95th percentiles (MONAI, DeepMind); ``"pooled"``: 95th percentile of both directions pooled (MedPy).
* **Empty masks**: both empty -> distances 0 and surface Dice 1; exactly one empty -> distances NaN and surface
  Dice 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from kicc_analysis.errors import AnalysisError

from .overlap import as_mask

__all__ = [
    "SurfaceDistances",
    "average_surface_distance",
    "compute_surface_distances",
    "hausdorff_distance",
    "hd95",
    "percentile_hausdorff",
    "surface_dice",
    "surface_distances",
    "surface_voxels",
]

_WEIGHTINGS = ("voxel", "surfel")
_DIRECTIONS = ("a_to_b", "b_to_a")


def surface_voxels(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Foreground voxels with a background neighbour (``mask XOR erosion``; the array border is background).

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(surface_voxels(m).sum())
    8
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _crop_box(mask_a: np.ndarray, mask_b: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the union with one voxel of margin (exact: nearest surface points lie inside it)."""
    idx = np.nonzero(mask_a | mask_b)
    lo = [max(int(i.min()) - 1, 0) for i in idx]
    hi = [min(int(i.max()) + 2, s) for i, s in zip(idx, mask_a.shape, strict=True)]
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


@functools.cache
def _surfel_area_vectors(ndim: int) -> tuple[np.ndarray, ...]:
    """Per neighbour code of a 2×2(×2) block: the area vectors (3-D) or segment vectors (2-D) of its surfels.

    Derived here from scikit-image's marching cubes / marching squares at level 0.5 on each of the 2**(2**ndim)
    block configurations, in unit-spacing coordinates; :func:`_surfel_weights` scales them to mm.
    """
    from skimage import measure

    corners = np.array(np.unravel_index(np.arange(2**ndim), (2,) * ndim)).T
    table: list[np.ndarray] = []
    for code in range(2 ** (2**ndim)):
        block = np.zeros((2,) * ndim)
        for bit, corner in enumerate(corners):
            if code >> bit & 1:
                block[tuple(corner)] = 1.0
        if code in (0, 2 ** (2**ndim) - 1):
            table.append(np.zeros((0, ndim)))
        elif ndim == 2:
            segments = [np.diff(c, axis=0) for c in measure.find_contours(block, 0.5)]
            table.append(np.concatenate(segments))
        else:
            verts, faces, _, _ = measure.marching_cubes(block, 0.5, method="lorensen")
            tri = verts[faces]
            table.append(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) / 2.0)
    return tuple(table)


def _surfel_weights(spacing: np.ndarray) -> np.ndarray:
    """Surfel area (mm², or contour length in mm in 2-D) of each neighbour code at this voxel spacing."""
    ndim = spacing.size
    if ndim == 2:
        scale = spacing
    else:  # an area vector scales with the cofactors of diag(spacing)
        scale = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]])
    return np.array([np.linalg.norm(v * scale, axis=1).sum() for v in _surfel_area_vectors(ndim)])


def _surfels(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block-centre points (mm, in the padded crop's voxel frame) and surfel weights of a padded mask."""
    ndim = mask.ndim
    if ndim not in (2, 3):
        raise AnalysisError(f"surfel weighting needs a 2-D or 3-D mask, got {ndim}-D")
    m = mask.astype(np.uint16)
    code = np.zeros(tuple(s - 1 for s in mask.shape), dtype=np.uint16)
    corners = np.array(np.unravel_index(np.arange(2**ndim), (2,) * ndim)).T
    for bit, corner in enumerate(corners):
        sl = tuple(slice(c, c + s) for c, s in zip(corner, code.shape, strict=True))
        code |= m[sl] << bit
    weights = _surfel_weights(spacing)[code]
    border = weights > 0
    points = (np.argwhere(border) + 0.5) * spacing
    return points, weights[border]


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances of two masks with the weight of each surface point.

    Attributes
    ----------
    a_to_b, b_to_a : ndarray
        Distance (mm) from each surface point of A to B's surface, and from B to A.
    weights_a, weights_b : ndarray
        Weight of each point: 1 per surface voxel (``"voxel"``) or surfel area in mm² (``"surfel"``).
    weighting : str
        ``"voxel"`` or ``"surfel"``.
    empty : str
        ``"none"``, ``"both"``, ``"a"`` or ``"b"``: which masks are empty.
    """

    a_to_b: np.ndarray
    b_to_a: np.ndarray
    weights_a: np.ndarray
    weights_b: np.ndarray
    weighting: str
    empty: str

    def _directed(self, direction: str) -> tuple[np.ndarray, np.ndarray]:
        if direction not in _DIRECTIONS:
            raise AnalysisError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        return (self.a_to_b, self.weights_a) if direction == "a_to_b" else (self.b_to_a, self.weights_b)

    def _undefined(self, both_empty: float) -> float | None:
        if self.empty == "both":
            return both_empty
        if self.empty != "none":
            return float("nan")
        return None

    def _percentile(self, distances: np.ndarray, weights: np.ndarray, percentile: float) -> float:
        if self.weighting == "voxel":
            return float(np.percentile(distances, percentile))
        order = np.argsort(distances)
        share = np.cumsum(weights[order]) / weights.sum()
        k = min(int(np.searchsorted(share, percentile / 100.0)), distances.size - 1)
        return float(distances[order][k])

    def hausdorff(self) -> float:
        """Symmetric Hausdorff distance (mm)."""
        special = self._undefined(0.0)
        if special is not None:
            return special
        return float(max(self.a_to_b.max(), self.b_to_a.max()))

    def percentile_hausdorff(self, percentile: float = 95.0, mode: str = "directed") -> float:
        """Robust Hausdorff distance (mm): ``mode`` ``"directed"`` (max of the two directed percentiles),
        ``"pooled"`` (percentile of both directions together), ``"a_to_b"`` or ``"b_to_a"``."""
        special = self._undefined(0.0)
        if special is not None:
            return special
        if mode == "directed":
            return max(self._percentile(*self._directed(d), percentile) for d in _DIRECTIONS)
        if mode == "pooled":
            return self._percentile(
                np.concatenate([self.a_to_b, self.b_to_a]),
                np.concatenate([self.weights_a, self.weights_b]),
                percentile,
            )
        if mode in _DIRECTIONS:
            return self._percentile(*self._directed(mode), percentile)
        raise AnalysisError(f"mode must be 'directed', 'pooled', 'a_to_b' or 'b_to_a', got {mode!r}")

    def average(self, mode: str = "pooled") -> float:
        """Average surface distance (mm): ``mode`` ``"pooled"``, ``"mean_of_means"``, ``"a_to_b"`` or
        ``"b_to_a"`` (weighted by the point weights)."""
        special = self._undefined(0.0)
        if special is not None:
            return special
        if mode in _DIRECTIONS:
            d, w = self._directed(mode)
            return float(np.average(d, weights=w))
        if mode == "mean_of_means":
            return (self.average("a_to_b") + self.average("b_to_a")) / 2
        if mode == "pooled":
            return float(
                np.average(
                    np.concatenate([self.a_to_b, self.b_to_a]), weights=np.concatenate([self.weights_a, self.weights_b])
                )
            )
        raise AnalysisError(f"mode must be 'pooled', 'mean_of_means', 'a_to_b' or 'b_to_a', got {mode!r}")

    def surface_dice(self, tolerance: float = 1.0, direction: str = "both") -> float:
        """Share of surface (weight) within ``tolerance`` mm of the other surface: ``direction`` ``"both"``
        (Nikolov et al. 2021), ``"a_to_b"`` (share of A's surface near B) or ``"b_to_a"``."""
        if self.empty == "both":
            return 1.0
        if self.empty != "none":
            return 0.0
        if direction in _DIRECTIONS:
            d, w = self._directed(direction)
            return float(w[d <= tolerance].sum() / w.sum())
        if direction != "both":
            raise AnalysisError(f"direction must be 'both', 'a_to_b' or 'b_to_a', got {direction!r}")
        near = self.weights_a[self.a_to_b <= tolerance].sum() + self.weights_b[self.b_to_a <= tolerance].sum()
        return float(near / (self.weights_a.sum() + self.weights_b.sum()))


def compute_surface_distances(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    connectivity: int = 1,
    weighting: str = "voxel",
) -> SurfaceDistances:
    """Directed surface distances (mm) and point weights of two masks of the same grid.

    Parameters
    ----------
    mask_a, mask_b : array or SimpleITK image
        Masks (non-zero = foreground) of identical shape.
    spacing : float or sequence of float, optional
        Voxel size in mm per array axis (from the image for SimpleITK input; 1 mm otherwise).
    connectivity : int
        Neighbourhood defining surface voxels (``weighting="voxel"`` only; 1 = faces).
    weighting : {"voxel", "surfel"}
        See the module conventions.

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> sd = compute_surface_distances(a, np.roll(a, 1, axis=0))
    >>> sd.hausdorff(), sd.average("a_to_b")
    (1.0, 0.5)
    """
    if weighting not in _WEIGHTINGS:
        raise AnalysisError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    a, sp = as_mask(mask_a, spacing)
    b, sp_b = as_mask(mask_b, spacing)
    if a.shape != b.shape:
        raise AnalysisError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    if spacing is None and not np.allclose(sp, sp_b):
        raise AnalysisError(f"the two images have different spacings {sp.tolist()} and {sp_b.tolist()} mm")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not (has_a and has_b):
        empty = "both" if not (has_a or has_b) else ("a" if not has_a else "b")
        none = np.zeros(0)
        return SurfaceDistances(none, none, none, none, weighting, empty)
    box = _crop_box(a, b)
    # Pad the crop with background so that erosion (or the blocks) see the same neighbourhood as in the full array.
    pa, pb = np.pad(a[box], 1), np.pad(b[box], 1)
    if weighting == "voxel":
        points_a = np.argwhere(surface_voxels(pa, connectivity)) * sp
        points_b = np.argwhere(surface_voxels(pb, connectivity)) * sp
        weights_a, weights_b = np.ones(len(points_a)), np.ones(len(points_b))
    else:
        points_a, weights_a = _surfels(pa, sp)
        points_b, weights_b = _surfels(pb, sp)
    a_to_b = cKDTree(points_b).query(points_a, workers=2)[0]
    b_to_a = cKDTree(points_a).query(points_b, workers=2)[0]
    return SurfaceDistances(a_to_b, b_to_a, weights_a, weights_b, weighting, "none")


def surface_distances(
    mask_a: Any, mask_b: Any, spacing: Sequence[float] | float | None = None, connectivity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface-voxel distances (mm): from every surface voxel of A to B's surface, and from B to A.

    Both masks must be non-empty (see :func:`compute_surface_distances` for weights and empty masks).

    Examples
    --------
    >>> a = np.zeros((6, 6), bool); a[1:3, 1:3] = True
    >>> d_ab, d_ba = surface_distances(a, np.roll(a, 1, axis=1), spacing=(1.0, 2.0))
    >>> d_ab.tolist()
    [2.0, 0.0, 2.0, 0.0]
    """
    sd = compute_surface_distances(mask_a, mask_b, spacing, connectivity=connectivity)
    if sd.empty != "none":
        raise AnalysisError(f"surface distances need two non-empty masks; empty: {sd.empty}")
    return sd.a_to_b, sd.b_to_a


def hausdorff_distance(
    mask_a: Any, mask_b: Any, spacing: Sequence[float] | float | None = None, *, weighting: str = "voxel"
) -> float:
    """Symmetric Hausdorff distance (mm); NaN when exactly one mask is empty.

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> hausdorff_distance(a, np.roll(a, 2, axis=1), spacing=0.5)
    1.0
    """
    return compute_surface_distances(mask_a, mask_b, spacing, weighting=weighting).hausdorff()


def percentile_hausdorff(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    percentile: float = 95.0,
    mode: str = "directed",
    weighting: str = "voxel",
) -> float:
    """Robust Hausdorff distance (mm), HD95 by default; see :meth:`SurfaceDistances.percentile_hausdorff`.

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> percentile_hausdorff(a, np.roll(a, 1, axis=0))
    1.0
    """
    sd = compute_surface_distances(mask_a, mask_b, spacing, weighting=weighting)
    return sd.percentile_hausdorff(percentile, mode)


def hd95(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    mode: str = "directed",
    weighting: str = "voxel",
) -> float:
    """95th-percentile Hausdorff distance (mm): :func:`percentile_hausdorff` at 95.

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> hd95(a, np.roll(a, 1, axis=0), spacing=2.0)
    2.0
    """
    return percentile_hausdorff(mask_a, mask_b, spacing, percentile=95.0, mode=mode, weighting=weighting)


def average_surface_distance(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    mode: str = "pooled",
    weighting: str = "voxel",
) -> float:
    """Average surface distance (mm): symmetric (``"pooled"``, ``"mean_of_means"``) or directed
    (``"a_to_b"``, ``"b_to_a"``).

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> b = np.zeros((10, 10), bool); b[1:7, 1:7] = True
    >>> average_surface_distance(a, b, mode="a_to_b"), round(average_surface_distance(a, b, mode="b_to_a"), 4)
    (1.0, 1.0828)
    """
    return compute_surface_distances(mask_a, mask_b, spacing, weighting=weighting).average(mode)


def surface_dice(
    mask_a: Any,
    mask_b: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    tolerance: float = 1.0,
    direction: str = "both",
    weighting: str = "voxel",
) -> float:
    """Surface Dice at ``tolerance`` mm (Nikolov et al. 2021), symmetric or directed.

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
    >>> round(surface_dice(a, np.roll(a, 2, axis=0), tolerance=1.0), 4)
    0.6667
    """
    sd = compute_surface_distances(mask_a, mask_b, spacing, weighting=weighting)
    return sd.surface_dice(tolerance, direction)
