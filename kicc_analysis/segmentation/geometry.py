"""Geometry helpers of the classical lung mask, public for rules, tests and notebooks (working-grid arrays (z, y, x)).

- **Labels and connectivity**: :data:`RIGHT` / :data:`LEFT` lung labels; :data:`STRUCT_2D` (8-connected within a
  slice, nothing across slices) and :data:`STRUCT_3D` (6-connected) structuring elements.
- :func:`~kicc_analysis.segmentation.geometry.trunk_mask`: per slice, the patient without table or arms; :func:`nearest_label`: side of recovered voxels
  (per 3-D component: :func:`side_of_components`); :func:`thick_part`: the part of a mask thicker than two pixels;
  :func:`reach_along`: propagation along one axis through allowed pixels; :func:`vertebral_body`: the vertebral
  body of an axial slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .parameters import DEFAULT_PARAMETERS, LungParameters

__all__ = [
    "LEFT",
    "RIGHT",
    "STRUCT_2D",
    "STRUCT_3D",
    "nearest_label",
    "reach_along",
    "side_of_components",
    "thick_part",
    "trunk_mask",
    "vertebral_body",
]

RIGHT, LEFT = 1, 2  # lung labels (LPS: the right lung has the smaller x)

STRUCT_2D = np.zeros((3, 3, 3), dtype=bool)
STRUCT_2D[1] = True  # 8-connectivity within a slice, none across slices
STRUCT_3D = ndimage.generate_binary_structure(3, 1)


def interior_median_hu(component: np.ndarray, hu: np.ndarray) -> float:
    """Median HU of a component's interior: the component eroded by one face-connected step (2-D or 3-D, as the
    arrays are; the whole component when nothing is left), so its partial-volume wall does not count."""
    structure = ndimage.generate_binary_structure(component.ndim, 1)
    core = ndimage.binary_erosion(component, structure=structure)
    return float(np.median(hu[core if core.any() else component]))


def posterior_half(trunk: np.ndarray) -> np.ndarray:
    """bool (z, y, 1): rows behind the midpoint of each axial slice's trunk (its anterior-posterior extent; the whole
    image height on a slice without trunk), i.e. the dependent half of a supine patient."""
    rows = trunk.any(axis=2)  # (z, y)
    has_trunk = rows.any(axis=1)
    ny = trunk.shape[1]
    front = np.where(has_trunk, np.argmax(rows, axis=1), 0)
    back = np.where(has_trunk, ny - 1 - np.argmax(rows[:, ::-1], axis=1), ny - 1)
    middle = (front + back) / 2.0
    return np.arange(ny)[None, :, None] > middle[:, None, None]


def trunk_mask(outside: np.ndarray) -> np.ndarray:
    """Per slice, the largest non-outside component with holes filled (the patient without table or arms)."""
    trunk = np.zeros(outside.shape, dtype=bool)
    for z in range(outside.shape[0]):
        lab, n = ndimage.label(~outside[z])
        if n == 0:
            continue
        largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(lab), lab, np.arange(1, n + 1))))
        trunk[z] = ndimage.binary_fill_holes(lab == largest)
    return trunk


def nearest_label(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
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


def side_of_components(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``labels`` with each 3-D component of ``where`` given the side of the lung voxels touching it most.

    A cheap stand-in for :func:`nearest_label` (one 3-D distance transform of the thorax, ~0.2 s on a 512 x 512 x
    300 scan) for recovered voxels, which nearly all touch one lung; components touching both lungs or neither are
    assigned voxel by voxel to the nearest lung within 5 voxels around them (0 when there is none).
    """
    out = labels.copy()
    if not where.any():
        return out
    box = tuple(slice(max(0, int(idx.min()) - 1), int(idx.max()) + 2) for idx in np.nonzero(where))  # one voxel around
    comp, n = ndimage.label(where[box], structure=STRUCT_3D)
    grown = ndimage.grey_dilation(comp, footprint=STRUCT_3D)  # id of a component next to each voxel
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


def thick_part(mask: np.ndarray) -> np.ndarray:
    """Components (8-connected, 2-D) of ``mask`` that survive a 3 x 3 opening somewhere.

    Drops regions that are at most two pixels thick everywhere: the partial-volume staircase of the pleural
    boundary (neither lung nor consolidation) and thin walls, while a consolidation keeps its thin extensions.
    """
    opened = ndimage.binary_opening(mask, structure=np.ones((3, 3), dtype=bool))
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    keep = np.unique(lab[opened])
    return np.isin(lab, keep[keep > 0])


def reach_along(start: np.ndarray, ok: np.ndarray, axis: int, reverse: bool, max_steps: int) -> np.ndarray:
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


def vertebral_body(
    bone: np.ndarray,
    trunk: np.ndarray,
    spacing: np.ndarray,
    midline_x: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[int, int, int, int, int] | None:
    """Vertebral body of one axial slice: (centre y, centre x, left x, right x, posterior y) indices, or ``None``.

    The vertebral body is the thickest bone of the posterior half of the trunk near the midline (within
    ``gutter_midline_mm``): the maximum of the in-plane distance transform of the hole-filled bone mask (cortical
    ring + cancellous interior), so thin posterior elements (transverse processes, rib heads) do not move it. Its
    left / right / posterior edges are the extent of the filled bone along the centre row / column. ``None`` when
    the thickest bone has an inscribed radius below ``gutter_min_radius_mm`` (no vertebra in the slice).
    """
    ys = np.nonzero(trunk)[0]
    if ys.size == 0 or not bone.any():
        return None
    # posterior half of the trunk (y = posterior), within a vertebral half-width of the allowed centres: the
    # crop also keeps a closed rib ring from filling the whole thorax
    y0 = int(ys.mean())
    half = int(np.ceil((params.gutter_midline_mm + params.gutter_width_mm) / spacing[2]))
    x0, x1 = max(0, int(midline_x) - half), min(bone.shape[1], int(midline_x) + half + 1)
    filled = ndimage.binary_fill_holes(bone[y0:, x0:x1])
    if not filled.any():
        return None
    dist = ndimage.distance_transform_edt(np.pad(filled, 1), sampling=spacing[1:])[1:-1, 1:-1]
    xs = np.arange(x0, x1)[None, :]
    dist[:, np.abs(xs[0] - midline_x) * spacing[2] > params.gutter_midline_mm] = 0.0  # centre near the midline
    cy, cx = (int(i) for i in np.unravel_index(int(np.argmax(dist)), dist.shape))
    if dist[cy, cx] < params.gutter_min_radius_mm:
        return None
    row, col = filled[cy], filled[:, cx]
    left = cx - int(np.argmax(~row[cx::-1])) + 1 if (~row[: cx + 1]).any() else 0
    right = cx + int(np.argmax(~row[cx:])) - 1 if (~row[cx:]).any() else row.size - 1
    back = cy + int(np.argmax(~col[cy:])) - 1 if (~col[cy:]).any() else col.size - 1
    cy, back, cx, left, right = cy + y0, back + y0, cx + x0, left + x0, right + x0
    return cy, cx, left, right, back
