"""Simulated radiologists scoring the demo radiographs with the Brixia score (zones A-F, 0-3, total 0-18).

Truth per zone comes from the phantom the radiograph was projected from: each lung (right -> A, B, C; left -> D,
E, F) is cut into craniocaudal thirds of its own height (upper, middle, lower), and each zone's *burden* is
``involved fraction x (1 + 2 x consolidation share)`` (consolidation, alveolar, weighs more than ground glass,
interstitial, as in the Brixia grades). The true grade is 0 below 0.02, 1 below 0.10, 2 below 0.25, else 3.
The phantom is rebuilt from the radiograph's own parameters (seed, opacity, consolidation, habitus) on a grid of
half the radiograph phantom's resolution (same lesion layout: lobe involvement within ~0.01).

Each radiograph shows its zones' burden through an image factor shared by every reader (log-normal, sd
``IMAGE_LOG_SD``: projection, inspiration, exposure, overlap with soft tissue), so that the radiograph score is
related to CT burden but looser than two CT reads are. Readers perceive the burden with a multiplicative bias and log-normal noise, may miss faint zones, and slip by one
grade now and then: ``S1`` senior (unbiased, low noise), ``J1`` junior (under-calls, noisy), ``J2`` junior
(over-calls, noisy). Juniors are therefore less consistent with each other and with the senior than the senior is
with the truth. Output: ``readings/radiograph_scores.csv`` in the common reader-score format of
:mod:`kicc_analysis.readings` (``subject, study, reader, scheme, item, score``; items A-F and ``total``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BRIXIA_ZONES",
    "CXR_READERS",
    "CxrReaderProfile",
    "brixia_grade",
    "simulate_brixia_readings",
    "write_demo_cxr_readings",
    "zone_burden",
]

BRIXIA_ZONES: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
#: upper bounds of the zone burden for grades 0, 1, 2 (above the last: grade 3)
GRADE_BOUNDS: tuple[float, ...] = (0.02, 0.10, 0.25)
#: half the resolution of the radiograph phantom of the demo generator ((50, 64, 96) voxels of (6, 5.39, 3.6) mm)
TRUTH_GRID = ((25, 32, 48), (12.0, 10.78, 7.2))
#: log-scale sd of the per-radiograph image factor (shared by the readers)
IMAGE_LOG_SD = 0.45


@dataclass(frozen=True)
class CxrReaderProfile:
    """How a simulated reader perceives a zone's burden (bias and noise on the log scale, misses, slips)."""

    name: str
    log_bias: float
    log_sd: float
    miss_below: float
    miss_prob: float
    slip_prob: float


CXR_READERS: tuple[CxrReaderProfile, ...] = (
    CxrReaderProfile("S1", 0.0, 0.20, 0.04, 0.10, 0.03),
    CxrReaderProfile("J1", -0.30, 0.55, 0.06, 0.35, 0.12),
    CxrReaderProfile("J2", 0.25, 0.60, 0.04, 0.20, 0.12),
)


def brixia_grade(burden: float | np.ndarray) -> np.ndarray:
    """Brixia grade (0-3) of zone burden(s).

    >>> brixia_grade([0.0, 0.05, 0.2, 0.6]).tolist()
    [0, 1, 2, 3]
    """
    return np.digitize(np.asarray(burden, dtype=float), GRADE_BOUNDS, right=True).astype(int)


def zone_burden(lung_labels: np.ndarray, lesion_labels: np.ndarray) -> dict[str, float]:
    """Burden of each Brixia zone from (z, y, x) lung labels (1 right, 2 left; z from inferior to superior) and
    lesion labels (1 GGO, 2 consolidation)."""
    out: dict[str, float] = {}
    for side, zones in ((1, ("A", "B", "C")), (2, ("D", "E", "F"))):
        lung = lung_labels == side
        z_any = np.flatnonzero(lung.any(axis=(1, 2)))
        if z_any.size == 0:
            out.update(dict.fromkeys(zones, 0.0))
            continue
        edges = np.linspace(z_any[0], z_any[-1] + 1, 4)
        for third, zone in enumerate(zones):  # zones upper, middle, lower = highest z third first
            hi, lo = edges[3 - third], edges[2 - third]
            part = lung[int(round(lo)) : int(round(hi))]
            les = lesion_labels[int(round(lo)) : int(round(hi))][part]
            n = int(part.sum())
            if n == 0:
                out[zone] = 0.0
                continue
            involved = float((les > 0).sum()) / n
            consolidation = float((les == 2).sum()) / max(int((les > 0).sum()), 1)
            out[zone] = involved * (1.0 + 2.0 * consolidation)
    return out


def simulate_brixia_readings(
    cases: pd.DataFrame,
    rng: np.random.Generator,
    readers: Iterable[CxrReaderProfile] = CXR_READERS,
) -> pd.DataFrame:
    """Brixia scores of every reader for every radiograph.

    Parameters
    ----------
    cases : one row per radiograph with ``subject``, ``study`` and one burden column per zone A-F.
    rng : random generator (deterministic demo).

    Returns
    -------
    DataFrame ``subject, study, reader, scheme, item, score`` (items A-F and ``total``).
    """
    rows = []
    readers = tuple(readers)
    for case in cases.itertuples(index=False):
        image_factor = float(np.exp(rng.normal(0.0, IMAGE_LOG_SD)))
        for r in readers:
            grades = []
            for zone in BRIXIA_ZONES:
                burden = float(getattr(case, zone)) * image_factor
                perceived = burden * float(np.exp(r.log_bias + rng.normal(0.0, r.log_sd))) if burden > 0 else 0.0
                if 0 < burden < r.miss_below and rng.random() < r.miss_prob:
                    perceived = 0.0
                grade = int(brixia_grade(perceived))
                if rng.random() < r.slip_prob:
                    grade = int(np.clip(grade + rng.choice((-1, 1)), 0, 3))
                grades.append(grade)
                rows.append((case.subject, case.study, r.name, "brixia", zone, grade))
            rows.append((case.subject, case.study, r.name, "brixia", "total", int(sum(grades))))
    return pd.DataFrame(rows, columns=["subject", "study", "reader", "scheme", "item", "score"])


def _radiograph_cases(plans: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    from kicc_analysis.demo.dicom_writer import demo_uid
    from kicc_analysis.demo.phantom import chest_phantom

    rows = []
    shape, spacing = TRUTH_GRID
    for plan in plans:
        for k, st in enumerate(plan["studies"], start=1):
            if st["modality"] == "CT":
                continue
            burden = dict.fromkeys(BRIXIA_ZONES, 0.0)
            if st["opacity"] > 0:
                ph = chest_phantom(
                    shape,
                    spacing,
                    noise_hu=0.0,
                    lesions="random",
                    seed=plan["patient_seed"],
                    opacity_fraction=st["opacity"] / 100.0,
                    consolidation_fraction=st["cons"],
                    body_scale=plan["body_scale"],
                )
                burden = zone_burden(ph.lung_labels, ph.lesion_labels)
            study_uid = demo_uid(plan["seed"], plan["subjid"], k, "study")
            rows.append({"subject": plan["subjid"], "study": study_uid, "day": st["day"], **burden})
    return pd.DataFrame(rows, columns=["subject", "study", "day", *BRIXIA_ZONES])


def write_demo_cxr_readings(out_dir: str | Path, plans: Iterable[Mapping[str, Any]], seed: int) -> Path:
    """Write ``readings/radiograph_scores.csv``: three readers' Brixia scores of every demo radiograph; returns it."""
    out = Path(out_dir)
    cases = _radiograph_cases(plans)
    readings = simulate_brixia_readings(cases, np.random.default_rng(np.random.SeedSequence([int(seed), 17])))
    (out / "readings").mkdir(parents=True, exist_ok=True)
    path = out / "readings" / "radiograph_scores.csv"
    readings.to_csv(path, index=False, lineterminator="\n")
    return path
