"""Nothing below the diaphragm dome on single axial lung-base slices (step 6 filter ``below_dome_2d``, 2-D path).

On an axial slice through the lung bases the diaphragm dome fills the thoracic cavity: its top lies anteriorly and
centrally, the lung reaches furthest down in the posterior costophrenic recesses. The aerated lung of such a slice
is therefore a crescent in the **posterior** part of the cavity, wrapped around the dome, and what lies in front of
(in the concavity of) that crescent is below the dome: the liver, the spleen, the kidneys and adrenals, the crura
and the retrocrural / perirenal fat (fat is about -100 HU, inside the -400..+150 HU soft-tissue range and below the
smoothed -70 HU limit of ``posterior_2d``, so the step-6 rules reached from the crescent take it in).

Dependent (posterior) consolidation has the opposite geometry: gravity puts it **behind** the aerated lung, between
the lung and the posterior chest wall, and it leaves the anterior (non-dependent) lung aerated -- dependent disease
can only raise the share of aerated lung in the anterior half of the cavity. So on a slice whose aerated lung lies
(almost) only in the posterior half of the cavity (share in front of the cavity's anterior-posterior midpoint below
``dome_max_anterior_share``), a recovered component with aerated lung *behind* it (posterior, in the same column,
inside the cavity) in at least ``dome_min_lung_behind_share`` of its columns is tissue under the dome and is taken
back. Slices at carina-to-heart level keep their aerated lung anteriorly as well (share 0.39-0.83 on the six
outlined COVID-19 slices; 0.00-0.15 on the lung-base slices of the TotalSegmentator example CT), so the filter does
not run there. It runs only when the patient lies supine or the position is unknown (``supine_positions``, as the
abdominal-gas rule): in a prone patient dependent consolidation lies anteriorly, in front of the aerated lung, and
the posterior lung can be the only aerated lung at any level. The column test alone (without the base-slice condition) also removes consolidation lying between two
aerated pieces at heart level (tried: A002304 Dice 0.952 -> 0.946, docs/ct_development_log.md, planes11).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .parameters import DEFAULT_PARAMETERS, LungParameters


def anterior_lung_share(aerated: np.ndarray, cavity: np.ndarray) -> float | None:
    """Share (0-1) of the aerated-lung pixels of one axial slice in front of the cavity's anterior-posterior midpoint.

    Parameters
    ----------
    aerated : numpy.ndarray
        bool (y, x) aerated lung (rows anterior -> posterior).
    cavity : numpy.ndarray
        bool (y, x) thoracic cavity of the slice (all True where none was found).

    Returns
    -------
    float or None
        ``None`` when the slice has no cavity or no aerated lung.

    Examples
    --------
    >>> cavity = np.zeros((10, 6), dtype=bool); cavity[1:9, 1:5] = True
    >>> lung = np.zeros((10, 6), dtype=bool); lung[6:8, 1:5] = True
    >>> anterior_lung_share(lung, cavity)
    0.0
    """
    if cavity.all() or not cavity.any() or not aerated.any():
        return None
    rows = np.nonzero(cavity)[0]
    middle = 0.5 * (rows.min() + rows.max())
    return float(np.mean(np.nonzero(aerated)[0] < middle))


def below_dome_2d(
    labels: np.ndarray,
    recovered: np.ndarray,
    cavity: np.ndarray | None,
    *,
    params: LungParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Recovered tissue under the diaphragm dome on lung-base slices (filter ``below_dome_2d``; module docstring).

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 (z, y, x) aerated lung labels on the working grid (rows anterior -> posterior).
    recovered : numpy.ndarray
        bool (z, y, x) tissue recovered by the earlier step-6 rules.
    cavity : numpy.ndarray or None
        bool (z, y, x) thoracic cavity per slice (all True where no cage was found); ``None``: nothing is removed.
    params : LungParameters
        ``dome_max_anterior_share``, ``dome_min_lung_behind_share``.

    Returns
    -------
    numpy.ndarray
        bool (z, y, x) recovered pixels to take back.
    """
    out = np.zeros(labels.shape, dtype=bool)
    if cavity is None:
        return out
    for z in range(labels.shape[0]):
        aerated = labels[z] > 0
        if not recovered[z].any():
            continue
        share = anterior_lung_share(aerated, cavity[z])
        if share is None or share >= params.dome_max_anterior_share:
            continue
        # deepest aerated row per column (inside the cavity); -1 where the column has none
        lung_rows = np.where(aerated & cavity[z], np.arange(aerated.shape[0])[:, None], -1)
        deepest_lung = lung_rows.max(axis=0)
        comp, n = ndimage.label(recovered[z], structure=np.ones((3, 3)))
        for index in range(1, n + 1):
            part = comp == index
            columns = np.nonzero(part.any(axis=0))[0]
            rows = np.where(part, np.arange(part.shape[0])[:, None], -1).max(axis=0)[columns]
            behind = np.mean(deepest_lung[columns] > rows)
            if behind >= params.dome_min_lung_behind_share:
                out[z] |= part
    return out
