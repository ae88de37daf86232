"""Rules of :func:`~kicc_analysis.segmentation.segment_lungs` for single slices: gas below the diaphragm on axial
slices, and the airway, gas and severity checks of single coronal / sagittal slices.

Used by :mod:`kicc_analysis.segmentation.lungs` (steps 2-4 of the 2-D path and :func:`_segment_plane_array`); every
threshold is a field of :class:`~kicc_analysis.segmentation.parameters.LungParameters` and every rule can be
switched off by its name in ``disabled_rules`` (:data:`~kicc_analysis.segmentation.parameters.SLICE_RULE_NAMES`).

- **Bowel and stomach gas on a single axial slice** (``abdominal_gas_2d``, :func:`drop_abdominal_gas_2d`): the
  single-slice form of the 3-D abdominal-gas rule. In the supine abdomen gas rises to the anterior (non-dependent)
  side; every lung, also a lung base, reaches the posterior ribs beside the spine, and its interior is parenchyma
  (-900..-700 HU, vessels and partial volume), not pure air.
- **Airway tube on a coronal / sagittal slice** (``airway_tube_plane``, :func:`airway_tube_plane`): the trachea and
  main bronchi are a narrow midline tube of pure air (lumen < ``airway_lumen_hu``, darker than parenchyma).
- **Pure gas is not lung on a coronal / sagittal slice** (``gas_plane``, :func:`~kicc_analysis.segmentation.geometry.interior_median_hu`): stomach and
  bowel gas (interior median < ``gas_max_hu``) smaller than ``plane_gas_min_lung_mm2`` never becomes the lung of
  the slice; a larger pure-air region is an emphysematous lung section (HU alone cannot tell them apart).
- **Severity flag of a coronal / sagittal slice** (:func:`abnormal_share`): the plane mask is air-based (the dense
  rules are axial), so when most of it is itself abnormal (ground glass), consolidated lung beyond it is likely
  missed: ``low_confidence``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import interior_median_hu, posterior_half
from .parameters import DEFAULT_PARAMETERS, LungParameters


def drop_abdominal_gas_2d(
    lungs: np.ndarray,
    hu: np.ndarray,
    trunk: np.ndarray,
    voxel_ml: float,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Drop bowel and stomach gas from the lung candidate of single axial slices (2-D path, supine or unknown).

    Per slice, each 8-connected component is **anterior-only** when less than ``gas_max_posterior_share`` of its
    pixels lie in the posterior half of the trunk (midpoint of the trunk's anterior-posterior extent in the slice).
    An anterior-only component is gas when its interior median HU (:func:`interior_median_hu`) is

    * below ``gas_max_hu`` (-940 HU, pure air: the 3-D rule's limit), or
    * below ``gas_slice_max_hu`` (-900 HU, darker than aerated parenchyma) on a slice where **no** component reaches
      the posterior half: the slice lies below the lung bases (the posterior costophrenic recesses are the lowest
      part of each lung), so anterior air there is bowel whose thin loops average gas with wall and content
      (measured -924..-959 HU on the covid_ny_sbu abdominal slices of A058062).

    Aerated lung that is anterior-only in a slice (the dependent lung consolidated, the middle lobe or lingula cut
    apart in front of the heart) has an interior of -900..-600 HU and is kept; the emphysematous COPDGene lung
    (-930 HU) is kept on slices that also hold posterior lung.

    Parameters
    ----------
    lungs : numpy.ndarray
        bool (z, y, x) lung candidate of the 2-D path (working grid, airways and outside-cavity air removed).
    hu : numpy.ndarray
        Working-grid CT (HU).
    trunk : numpy.ndarray
        bool (z, y, x) trunk mask (:func:`~kicc_analysis.segmentation.geometry.trunk_mask`).
    voxel_ml : float
        Working voxel volume (mL).
    params : LungParameters
        ``gas_max_posterior_share``, ``gas_max_hu``, ``gas_slice_max_hu``.

    Returns
    -------
    tuple
        The candidate without gas and, per dropped component, a dict with ``volume_ml``, ``interior_median_hu``,
        ``posterior_share`` and ``z_slices`` (as the 3-D rule reports them).
    """
    out = lungs.copy()
    dropped: list[dict[str, Any]] = []
    behind = posterior_half(trunk)
    for z in range(lungs.shape[0]):
        if not trunk[z].any() or not lungs[z].any():
            continue
        posterior = behind[z]
        comp, n = ndimage.label(lungs[z], structure=np.ones((3, 3)))
        index = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(lungs[z], comp, index)
        shares = ndimage.sum_labels(np.broadcast_to(posterior, comp.shape), comp, index) / sizes
        anterior = shares < params.gas_max_posterior_share
        if not anterior.any():
            continue
        limit = params.gas_max_hu if (~anterior).any() else params.gas_slice_max_hu
        for i in index[anterior]:
            component = comp == i
            median_hu = interior_median_hu(component, hu[z])
            if median_hu >= limit:
                continue
            out[z][component] = False
            dropped.append(
                {
                    "volume_ml": float(sizes[i - 1]) * voxel_ml,
                    "interior_median_hu": median_hu,
                    "posterior_share": float(shares[i - 1]),
                    "z_slices": (z, z),
                }
            )
    return out, dropped


def airway_tube_plane(
    candidate: np.ndarray,
    hu: np.ndarray,
    spacing: np.ndarray,
    *,
    midline_column: float | None,
    max_row: float | None = None,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Trachea and main bronchi on a canonical coronal / sagittal slice (1, rows superior -> inferior, columns).

    A component is airway when its interior is pure air (:func:`interior_median_hu` below ``airway_lumen_hu``,
    -900 HU: the lumen is darker than parenchyma, about -850 HU), it is narrow (75th percentile of its per-row
    width at most ``plane_airway_max_width_mm``, 30 mm: the tracheal diameter is at most about 25 mm, each main
    bronchus less; a lung section is wider on most of its rows) and it lies on the midline: coronal, centroid within
    ``plane_airway_midline_mm`` of ``midline_column``; sagittal (``midline_column`` ``None``), the caller runs the
    rule only on slices within ``plane_airway_midline_mm`` of the scanner's x = 0 (the patient lies about centred);
    and in the thorax: centroid row at most ``max_row`` (the caller passes the upper ``plane_max_row_share`` of the
    body's height, as for the lung; bowel and rectal gas below is left to the gas rule).

    Parameters
    ----------
    candidate : numpy.ndarray
        bool (1, rows, columns) lung candidate on the working grid.
    hu : numpy.ndarray
        Working-grid HU of the same shape.
    spacing : numpy.ndarray
        Working spacing (1, row, column) in mm.
    midline_column : float or None
        Coronal: column (index) of the patient's midline (body centre). ``None``: no position test (sagittal).
    max_row : float, optional
        Lowest centroid row (index) of an airway; ``None``: no limit.

    Returns
    -------
    numpy.ndarray
        bool (1, rows, columns) airway pixels.
    """
    airway = np.zeros(candidate.shape, dtype=bool)
    if not candidate.any():
        return airway
    comp, n = ndimage.label(candidate[0], structure=np.ones((3, 3)))
    for i in range(1, n + 1):
        component = comp == i
        if max_row is not None and float(np.nonzero(component)[0].mean()) > max_row:
            continue
        widths = component.sum(axis=1)
        width_mm = float(np.percentile(widths[widths > 0], 75)) * float(spacing[2])
        if width_mm > params.plane_airway_max_width_mm:
            continue
        if midline_column is not None:
            offset_mm = abs(float(np.nonzero(component)[1].mean()) - midline_column) * float(spacing[2])
            if offset_mm > params.plane_airway_midline_mm:
                continue
        if interior_median_hu(component, hu[0]) < params.airway_lumen_hu:
            airway[0] |= component
    return airway


def abnormal_share(labels: np.ndarray, hu: np.ndarray, params: LungParameters = DEFAULT_PARAMETERS) -> float:
    """Share (0-1) of the mask pixels denser than ``halo_abnormal_hu`` (-700 HU, the ground-glass lower edge).

    On a single coronal / sagittal slice the mask is air-based (no dense recovery), so a share above
    ``plane_low_confidence_abnormal_share`` means the aerated lung left is itself mostly diseased and consolidated
    lung beyond it (> -400 HU) is likely missed: the mask covers less of the lung than there is and its opacity share
    is biased. 0.0 for an empty mask.
    """
    mask = labels > 0
    if not mask.any():
        return 0.0
    return float((hu[mask] > params.halo_abnormal_hu).mean())
