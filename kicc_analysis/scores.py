"""CT severity score of COVID-19: the 0-5 cut-offs by percentage of a region involved (one source of truth).

Pan F, Ye T, Sun P, et al. Time course of lung changes at chest CT during recovery from coronavirus disease 2019
(COVID-19). Radiology 2020;295:715-721, https://doi.org/10.1148/radiol.2020200370: "Each of the five lung lobes was
visually scored from 0 to 5 as: 0, no involvement; 1, < 5 % involvement; 2, 5 %-25 % involvement; 3, 26 %-49 %
involvement; 4, 50 %-75 % involvement; 5, > 75 % involvement. The total CT score was the sum of the individual lobar
scores and ranged from 0 (no involvement) to 25 (maximum involvement)." (Chung et al., Radiology 2020;295:202-207,
scored lobes 0-4 by 25 % steps; that scheme is not implemented.)

On a continuous percentage the published classes leave gaps (25-26 %, 49-50 %); here each upper bound is closed:
0 for 0 %, 1 for 0 < p < 5, 2 for 5 <= p <= 25, 3 for 25 < p <= 50, 4 for 50 < p <= 75, 5 for p > 75 (%).

Used by :mod:`kicc_analysis.quantification` (per lobe and per zone) and by the demo's simulated readers. This module
imports numpy only, so every layer may use it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOBE_SCORE_MAX", "SEVERITY_EDGES_PCT", "severity_score", "severity_scores"]

#: class bounds (% of the region involved) between scores 1|2, 2|3, 3|4 and 4|5 (see the module docstring)
SEVERITY_EDGES_PCT: tuple[float, ...] = (5.0, 25.0, 50.0, 75.0)
LOBE_SCORE_MAX = 5


def severity_scores(percent: float | np.ndarray) -> np.ndarray:
    """Score 0-5 of each percentage involved (%); NaN and values <= 0 score 0.

    Examples
    --------
    >>> severity_scores([0, 0.1, 4.99, 5, 25, 25.01, 50, 75, 75.01, 100]).tolist()
    [0, 1, 1, 2, 2, 3, 3, 4, 5, 5]
    """
    p = np.asarray(percent, dtype=float)
    p = np.where(np.isfinite(p), p, 0.0)
    above_first = p >= SEVERITY_EDGES_PCT[0]
    upper = 2 + np.searchsorted(np.asarray(SEVERITY_EDGES_PCT[1:]), p, side="left")
    return np.where(p <= 0, 0, np.where(above_first, upper, 1)).astype(int)


def severity_score(percent: float) -> int:
    """Score 0-5 of one percentage involved (%): see :func:`severity_scores`.

    Examples
    --------
    >>> severity_score(12.0), severity_score(float("nan"))
    (2, 0)
    """
    return int(severity_scores(percent))
