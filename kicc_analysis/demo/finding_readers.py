"""Simulated radiologists recording structured CT findings, the RSNA category and CO-RADS on the demo baseline CTs.

Truth per patient comes from the phantom's lesions where the phantom depicts them: the per-lobe involvement
(lobes involved, unilateral/bilateral, lower-zone predominance = lower lobes more involved than upper lobes),
ground-glass opacity (any opacity with a GGO share, i.e. consolidation fraction < 0.95), consolidation
(consolidation fraction >= 0.10) and the axial distribution (the phantom's lesions are sub-pleural, so
peripheral; diffuse once opacity exceeds 30 % of the lung). Findings the phantom does not draw (crazy paving,
reticulation, reversed halo, air bronchogram, vascular enlargement, pleural effusion, lymphadenopathy) get a
per-patient truth drawn with a probability that rises with the opacity burden (air bronchogram only with
consolidation); effusion and lymphadenopathy stay rare (about 3-10 %).

Readers (same codes as :mod:`kicc_analysis.demo.readers`): ``R1`` thoracic radiologist (sensitivity 0.92,
specificity 0.97), ``R2`` radiologist who over-calls (0.93, 0.90), ``R3`` resident (0.75, 0.95); sensitivity is
lower for small lesion burden. Each reader's distribution items are derived from the lobes that reader perceives
(a lobe with involvement under 1 % may be missed), and each reader's RSNA category and CO-RADS follow from that
reader's own findings (RSNA: negative without opacity; atypical with effusion or lymphadenopathy and no typical
pattern; typical for bilateral peripheral or diffuse GGO; else indeterminate. CO-RADS 1/2/3 for negative/atypical/
indeterminate, 4 or 5 for typical: 5 when bilateral with >= 3 lobes), with an occasional one-step slip. A reader's
record is therefore internally consistent; readers disagree most on the subtle, rare findings. Output:
``readings/ct_findings.csv`` in the common reader-score format (``subject, study, reader, scheme, item, score``;
schemes ``ct_findings``, ``rsna_ct``, ``co_rads``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.readings.schemes import FINDING_ITEMS

__all__ = ["FINDING_READERS", "FindingReader", "simulate_finding_readings", "true_findings",
           "write_demo_finding_readings"]  # fmt: skip

LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")
#: involvement fraction (0-1) from which a lobe counts as involved in the truth
LOBE_INVOLVED = 0.005


@dataclass(frozen=True)
class FindingReader:
    """A simulated reader: sensitivity and specificity for presence items, lobe misses, category slips."""

    name: str
    sensitivity: float
    specificity: float
    lobe_miss_prob: float
    slip_prob: float


FINDING_READERS: tuple[FindingReader, ...] = (
    FindingReader("R1", 0.92, 0.97, 0.10, 0.03),
    FindingReader("R2", 0.93, 0.90, 0.15, 0.06),
    FindingReader("R3", 0.75, 0.95, 0.35, 0.12),
)


def _category(f: dict[str, int]) -> tuple[int, int]:
    """(RSNA category code 0-3, CO-RADS 1-5) from one set of findings."""
    opacity = f["ggo"] or f["consolidation"]
    if not opacity or f["lobes_involved"] == 0:
        return 0, 1
    typical = f["ggo"] and f["laterality"] == 2 and f["axial_distribution"] in (1, 3)
    if typical:
        return 3, 5 if f["lobes_involved"] >= 3 else 4
    if f["pleural_effusion"] or f["lymphadenopathy"]:
        return 1, 2
    return 2, 3


def true_findings(opacity_pct: float, consolidation_fraction: float, involvement: dict[str, float],
                  rng: np.random.Generator) -> dict[str, int]:  # fmt: skip
    """The findings a patient's baseline CT truly shows (phantom lesions, plus drawn findings the phantom lacks).

    >>> t = true_findings(0.0, 0.0, {lobe: 0.0 for lobe in LOBES}, np.random.default_rng(0))
    >>> t["ggo"], t["lobes_involved"], t["laterality"], t["category"], t["co_rads"]
    (0, 0, 0, 0, 1)
    """
    involved = {lobe: involvement.get(lobe, 0.0) > LOBE_INVOLVED for lobe in LOBES}
    burden = min(max(float(opacity_pct), 0.0) / 30.0, 1.0)
    any_opacity = opacity_pct > 0 and any(involved.values())
    t = _distribution(involved, involvement, opacity_pct)
    t["ggo"] = int(any_opacity and consolidation_fraction < 0.95)
    t["consolidation"] = int(any_opacity and consolidation_fraction >= 0.10)
    drawn = {
        "crazy_paving": 0.05 + 0.45 * burden,
        "reticulation": 0.10 + 0.35 * burden,
        "reversed_halo": 0.03 + 0.04 * burden,
        "air_bronchogram": (0.35 + 0.4 * burden) if t["consolidation"] else 0.0,
        "vascular_enlargement": 0.25 + 0.5 * burden,
    }
    for name, p in drawn.items():
        t[name] = int(any_opacity and rng.random() < p)
    t["pleural_effusion"] = int(rng.random() < 0.02 + 0.08 * burden)
    t["lymphadenopathy"] = int(rng.random() < 0.03 + 0.05 * burden)
    t["category"], t["co_rads"] = _category(t)
    return t


def _distribution(involved: dict[str, bool], involvement: dict[str, float], opacity_pct: float) -> dict[str, int]:
    n = sum(involved.values())
    right = any(involved[lobe] for lobe in LOBES[:3])
    left = any(involved[lobe] for lobe in LOBES[3:])
    lower = involvement.get("RLL", 0.0) + involvement.get("LLL", 0.0)
    upper = involvement.get("RUL", 0.0) + involvement.get("LUL", 0.0)
    return {
        "lobes_involved": n,
        "laterality": 0 if n == 0 else (2 if right and left else 1),
        "lower_zone": int(n > 0 and lower > upper),
        "axial_distribution": 0 if n == 0 else (3 if opacity_pct > 30 else 1),
    }


def simulate_finding_readings(cases: pd.DataFrame, rng: np.random.Generator,
                              readers: tuple[FindingReader, ...] = FINDING_READERS) -> pd.DataFrame:  # fmt: skip
    """Every reader's structured findings, RSNA category and CO-RADS for every case.

    Parameters
    ----------
    cases : DataFrame
        One row per patient: ``subjid``, ``opacity_pct`` (% of lung), ``consolidation_fraction`` (0-1) and one
        column per lobe (``RUL`` ... ``LLL``) with the true involvement fraction (0-1).
    rng : numpy Generator
        Random generator (deterministic demo).

    Returns
    -------
    DataFrame
        Common reader-score format ``subject, study, reader, scheme, item, score`` (study empty).
    """
    rows = []
    for case in cases.itertuples(index=False):
        inv = {lobe: float(getattr(case, lobe)) for lobe in LOBES}
        truth = true_findings(float(case.opacity_pct), float(case.consolidation_fraction), inv, rng)
        small = float(case.opacity_pct) < 2.0
        for r in readers:
            seen = {}
            for lobe in LOBES:
                present = inv[lobe] > LOBE_INVOLVED
                if present and inv[lobe] < 0.01 and rng.random() < r.lobe_miss_prob:
                    present = False
                seen[lobe] = present
            perceived_pct = float(case.opacity_pct) * float(np.exp(rng.normal(0.0, 0.25)))
            f = _distribution(seen, {k: v if seen[k] else 0.0 for k, v in inv.items()}, perceived_pct)
            for name in FINDING_ITEMS:
                sens = r.sensitivity * (0.8 if small else 1.0)
                if truth[name]:
                    f[name] = int(rng.random() < sens)
                else:
                    f[name] = int(rng.random() > r.specificity)
                if name not in ("pleural_effusion", "lymphadenopathy") and f["lobes_involved"] == 0:
                    f[name] = 0  # a parenchymal finding needs an involved lobe in the reader's own record
            category, co_rads = _category(f)
            if rng.random() < r.slip_prob:
                category = int(np.clip(category + rng.choice((-1, 1)), 0, 3))
            if rng.random() < r.slip_prob:
                co_rads = int(np.clip(co_rads + rng.choice((-1, 1)), 1, 5))
            for name in (*FINDING_ITEMS, "axial_distribution", "lower_zone", "laterality", "lobes_involved"):
                rows.append((case.subjid, r.name, "ct_findings", name, int(f[name])))
            rows.append((case.subjid, r.name, "rsna_ct", "category", category))
            rows.append((case.subjid, r.name, "co_rads", "co_rads", co_rads))
    frame = pd.DataFrame(rows, columns=["subject", "reader", "scheme", "item", "score"])
    frame.insert(1, "study", "")
    return frame


def write_demo_finding_readings(out: Path, cases: pd.DataFrame, seed: int) -> Path:
    """Write ``readings/ct_findings.csv`` of the demo repository ``out`` (stream 4 of the demo seed)."""
    table = simulate_finding_readings(cases, np.random.default_rng(np.random.SeedSequence([int(seed), 4])))
    path = Path(out) / "readings" / "ct_findings.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n")
    return path
