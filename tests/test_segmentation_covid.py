"""segment_lungs on real COVID-19 slices (covid_ny_sbu, true HU) against the hand-drawn reference outlines.

Per slice (uncertain pixels left out, as the outlines' README asks): lung Dice, mask area outside the reference lung
(% of the reference lung area), left/right labels, and the ``low_confidence`` QA flag. Floors are today's measured
values (lungs-1.7, docs/ct.md "Real COVID-19 slices") minus 0.01 Dice / plus 1 percentage point: they stop
regressions; the issue's goals (Dice >= 0.95, outside <= 5 %) are not met yet.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import LEFT, RIGHT, LungParameters, segment_lungs
from kicc_analysis.segmentation.lungs import _low_confidence_reasons

# slice: (Dice measured, % outside measured, left/right right, low_confidence expected)
MEASURED = {
    "A002304_19001231-076": (0.830, 24.2, True, True),  # arm / chest wall taken in: leak_outside_thorax
    "A002304_19010112-135": (0.910, 6.4, True, False),
    "A046441_19001111-045": (0.764, 11.1, True, True),  # dense posterior consolidation partly missed
    "A046441_19010101-23": (0.707, 44.3, False, True),  # consolidated right lung labelled left
    "A048383_19001231-30": (0.730, 57.2, True, True),  # object on the chest taken in
    "A048383_19010410-30": (0.937, 7.6, True, False),
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def outlined():
    folder = shared_path("data", "ct", "covid_ny_sbu")
    out = {}
    for name in MEASURED:
        patient, stem = name.split("_", 1)
        reference = np.load(folder / "reference_outlines" / f"{name}.npy")
        keep = np.load(folder / "reference_outlines" / f"{name}_uncertain.npy") == 0
        seg = segment_lungs(load_ct(folder / patient / "axial" / f"{stem}.dcm"))
        labels = sitk.GetArrayFromImage(seg.labels).reshape(reference.shape)
        out[name] = (labels, reference, keep, seg.qa)
    return out


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_covid_slice_dice_and_outside_area_floors(outlined, name):
    labels, reference, keep, _ = outlined[name]
    dice_floor, outside_ceiling, _, _ = MEASURED[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    assert _dice(mask, ref) >= dice_floor - 0.01
    assert 100.0 * (mask & ~ref).sum() / ref.sum() <= outside_ceiling + 1.0


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_covid_slice_sides(outlined, name):
    """Each reference lung carries its own label on most of the mask pixels on it (not yet on A046441 later)."""
    labels, reference, keep, _ = outlined[name]
    ok = all((labels[(reference == value) & keep & (labels > 0)] == value).mean() > 0.5 for value in (RIGHT, LEFT))
    assert ok == MEASURED[name][2]


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_low_confidence_marks_the_wrong_masks(outlined, name):
    """low_confidence is set on the four slices with Dice 0.71-0.83 and not on the two at 0.91 / 0.94."""
    qa = outlined[name][3]
    assert qa["low_confidence"] == MEASURED[name][3]
    assert ("low_confidence" in qa["flags"]) == qa["low_confidence"]
    assert bool(qa["low_confidence_reasons"]) == qa["low_confidence"]


def test_low_confidence_reasons_each_rule():
    p = LungParameters()
    assert _low_confidence_reasons([], 4000.0, 0.8, 0.1, False, p) == []
    assert _low_confidence_reasons(["no_lung"], 0.0, 0.0, 0.0, False, p) == ["no_lung"]
    assert _low_confidence_reasons(["leak_outside_thorax"], 4000.0, 0.8, 0.1, False, p) == ["leak_outside_thorax"]
    assert _low_confidence_reasons([], 4000.0, 0.4, 0.1, False, p) == ["lr_ratio<0.5"]
    assert _low_confidence_reasons([], 40.0, 0.4, 0.1, True, p) == []  # single slice: the left lung is smaller
    assert _low_confidence_reasons([], 40.0, 0.2, 0.1, True, p) == ["lr_ratio<0.25"]
    assert _low_confidence_reasons([], 4000.0, 0.8, 0.35, False, p) == ["dense_recovered_fraction>0.3"]
    lax = LungParameters(low_confidence_dense_fraction=0.5)
    assert _low_confidence_reasons([], 4000.0, 0.8, 0.35, False, lax) == []
