"""Simulated radiologists reading the baseline CTs of the demo cohort.

Per-lobe visual severity score (0-5) follows the widely used lobar CT severity score (Pan et al., Radiology 2020;
cut-offs in :mod:`kicc_analysis.scores`): 0 none, 1 < 5 %, 2 5-25 %, 3 26-49 %, 4 50-75 %, 5 > 75 % of the lobe.
Each reader perceives the *true* per-lobe involvement (from the phantom truth) with a reader-specific
multiplicative bias and noise on the log scale, misses very small lesions with some probability, and then
categorises. The 5-level categorical suspicion score (1 very low ... 5 very high, CO-RADS-like) comes from the true
pattern (typical bilateral peripheral opacities -> 5, small or consolidation-dominant -> 4 or 3, none -> 1) plus
reader noise.

Readers: R1 (thoracic radiologist, unbiased, low noise), R2 (radiologist, slight over-calling), R3 (less experienced
resident: under-calls, noisier, occasional off-by-one). On the default demo (465 baseline CTs) the pairwise
quadratic-weighted kappa of the lobe scores is 0.79-0.87 (R1-R2), 0.68-0.77 (R1-R3) and 0.62-0.75 (R2-R3) over the
five lobes, linear-weighted 0.45-0.79, in the range reported for the lobar score between radiologists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..scores import severity_scores

__all__ = ["LOBES", "READERS", "ReaderProfile", "lobe_score", "simulate_readings", "true_suspicion"]

LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")


@dataclass(frozen=True)
class ReaderProfile:
    """How one simulated reader perceives lesions.

    Attributes
    ----------
    name : reader code (``R1``...).
    log_bias : multiplicative bias on perceived involvement (log scale; > 0 over-calls).
    log_sd : perception noise (log scale).
    miss_below : involvement fraction under which a lesion may be missed ...
    miss_prob : ... with this probability (score 0 instead of 1).
    slip_prob : probability of an off-by-one error on the final category.
    suspicion_sd : noise (category units) of the suspicion score.
    """

    name: str
    log_bias: float
    log_sd: float
    miss_below: float
    miss_prob: float
    slip_prob: float
    suspicion_sd: float


READERS: tuple[ReaderProfile, ...] = (
    ReaderProfile("R1", 0.0, 0.25, 0.01, 0.10, 0.02, 0.35),
    ReaderProfile("R2", 0.18, 0.35, 0.01, 0.15, 0.04, 0.45),
    ReaderProfile("R3", -0.25, 0.55, 0.02, 0.35, 0.10, 0.7),
)


def lobe_score(fraction: float | np.ndarray) -> np.ndarray:
    """Lobar severity score (0-5) of involvement fraction(s) (0-1): the cut-offs of :mod:`kicc_analysis.scores`."""
    return severity_scores(100.0 * np.asarray(fraction, dtype=float))


def true_suspicion(opacity_pct: float, involvement: Mapping[str, float], consolidation_fraction: float) -> int:
    """Categorical suspicion (1-5) that the true pattern deserves."""
    if opacity_pct <= 0:
        return 1
    right = max(involvement.get(lobe, 0.0) for lobe in LOBES[:3])
    left = max(involvement.get(lobe, 0.0) for lobe in LOBES[3:])
    bilateral = right > 0.005 and left > 0.005
    if opacity_pct < 1.0:
        return 3
    if consolidation_fraction > 0.5 or not bilateral:
        return 4
    return 5


def simulate_readings(
    cases: pd.DataFrame,
    rng: np.random.Generator,
    readers: tuple[ReaderProfile, ...] = READERS,
) -> pd.DataFrame:
    """Scores of every reader for every case.

    Parameters
    ----------
    cases : one row per patient with ``subjid``, ``opacity_pct``, ``consolidation_fraction`` and one column per
        lobe in :data:`LOBES` holding the true involvement fraction (0-1).
    rng : random generator (deterministic demo).

    Returns
    -------
    DataFrame with columns ``subjid, reader, item, score`` (items RUL, RML, RLL, LUL, LLL, suspicion),
    ordered by subjid, reader, item.
    """
    rows = []
    for case in cases.itertuples(index=False):
        inv = {lobe: float(getattr(case, lobe)) for lobe in LOBES}
        base_susp = true_suspicion(float(case.opacity_pct), inv, float(case.consolidation_fraction))
        for r in readers:
            for lobe in LOBES:
                f = inv[lobe]
                if f > 0:
                    perceived = min(1.0, f * float(np.exp(r.log_bias + rng.normal(0.0, r.log_sd))))
                    if f < r.miss_below and rng.random() < r.miss_prob:
                        perceived = 0.0
                else:
                    perceived = 0.0
                score = int(lobe_score(perceived))
                if rng.random() < r.slip_prob:
                    score = int(np.clip(score + rng.choice((-1, 1)), 0, 5))
                rows.append((case.subjid, r.name, lobe, score))
            susp = int(np.clip(np.rint(base_susp + rng.normal(0.0, r.suspicion_sd)), 1, 5))
            rows.append((case.subjid, r.name, "suspicion", susp))
    return pd.DataFrame(rows, columns=["subjid", "reader", "item", "score"])
