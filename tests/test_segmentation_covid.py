"""segment_lungs on real COVID-19 slices (covid_ny_sbu, true HU) against the hand-drawn reference outlines.

Per slice (uncertain pixels left out, as the outlines' README asks): lung Dice, mask area outside the reference lung
(% of the reference lung area), left/right labels, and the ``low_confidence`` QA flag. Floors are the measured
values (MEASURED) minus 0.01 Dice / plus 1 percentage point, never below the
lungs-1.9 floors: they stop regressions; the issue's goals (mean Dice >= 0.95, lowest >= 0.90, outside <= 5 % on
every slice) are met on these six slices with cavity11 and airway11 on top of edge11 (mean Dice 0.961, lowest 0.933,
outside at most 4.6 %). Single coronal and sagittal slices of the same collection: segmented in their own plane.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import covid_outlined_slice, shared_path
from scipy import ndimage

from kicc_analysis.imaging import load_ct
from kicc_analysis.quantification import segment_opacities
from kicc_analysis.segmentation import LEFT, RIGHT, LungParameters, segment_lungs
from kicc_analysis.segmentation.lungs import _low_confidence_reasons

# slice: (Dice measured with phase11 (phase_votes=4: four working-grid phases voted per pixel) on lungs-1.11, % outside
#         measured, left/right right, low_confidence expected, Dice before phase11 (main 014d345, lungs-1.11: one grid
#         phase, cavity11 + airway11 + edge11), % outside before phase11)
MEASURED = {
    "A002304_19001231-076": (0.957, 3.0, True, False, 0.957, 2.6),  # lungs-1.7: arm taken in (24 % outside)
    "A002304_19010112-135": (0.967, 2.8, True, False, 0.962, 3.6),
    "A046441_19001111-045": (0.952, 2.0, True, True, 0.951, 2.7),  # lungs-1.8: posterior consolidation missed, hilum in
    "A046441_19010101-23": (0.931, 3.7, True, True, 0.933, 4.6),  # lungs-1.7: right lung labelled left
    "A048383_19001231-30": (0.977, 1.3, True, False, 0.977, 1.8),  # lungs-1.7: object on the chest / arms (57 %)
    "A048383_19010410-30": (0.984, 1.2, True, False, 0.984, 1.9),  # lungs-1.8: left hilum in the mask
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _segment_outlined(parameters: LungParameters | None) -> dict:
    out = {}
    for name in MEASURED:
        image, reference, keep = covid_outlined_slice(name)
        seg = segment_lungs(image, parameters=parameters)
        labels = sitk.GetArrayFromImage(seg.labels).reshape(reference.shape)
        out[name] = (labels, reference, keep, seg.qa)
    return out


@pytest.fixture(scope="module")
def outlined():
    """The six outlined slices with the default settings (phase_votes=4)."""
    return _segment_outlined(None)


@pytest.fixture(scope="module")
def one_phase():
    """The six outlined slices on one working-grid phase (phase_votes=1): the rule-by-rule tests below compare a rule
    on and off on the same grid (the vote of four phases blurs one rule's share: a pixel one rule adds on two of
    the four grids is not lung, see test_phase_votes_*)."""
    return _segment_outlined(ONE_PHASE)


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_covid_slice_dice_and_outside_area_floors(outlined, name):
    labels, reference, keep, _ = outlined[name]
    dice, outside, _, _, dice_before, outside_before = MEASURED[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    assert _dice(mask, ref) >= max(dice, dice_before) - 0.01
    assert 100.0 * (mask & ~ref).sum() / ref.sum() <= min(outside, outside_before) + 1.0


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_covid_slice_sides(outlined, name):
    """Each reference lung carries its own label on most of the mask pixels on it (lungs-1.8: sides from the
    midline; lungs-1.7 labelled the consolidated right lung of A046441 later as left)."""
    labels, reference, keep, _ = outlined[name]
    ok = all((labels[(reference == value) & keep & (labels > 0)] == value).mean() > 0.5 for value in (RIGHT, LEFT))
    assert ok == MEASURED[name][2]


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_low_confidence_marks_the_wrong_masks(outlined, name):
    """low_confidence is set on the two A046441 slices (more than 30 % of the mask recovered dense tissue; Dice 0.95 /
    0.93 with lungs-1.11, 0.91 / 0.90 with lungs-1.10, 0.76 / 0.81 with lungs-1.8) and not on the four at 0.96-0.98."""
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


def test_mean_dice_and_sides_over_the_six_slices(outlined):
    """The issue's goals on these six slices: lungs-1.11 mean Dice 0.961, lowest 0.933, outside <= 5 % on 6 of 6 (at
    most 4.6 %), sides right on 6 of 6 (lungs-1.10: 0.929, 0.902, 5 of 6; lungs-1.9: 0.922, 0.879; lungs-1.8: 0.881;
    lungs-1.7: 0.813). Step by step in docs/ct_development_log.md (edge11, airway11, cavity11)."""
    dices, outside = [], []
    for labels, reference, keep, _ in outlined.values():
        mask, ref = (labels > 0) & keep, (reference > 0) & keep
        dices.append(_dice(mask, ref))
        outside.append(100.0 * (mask & ~ref).sum() / ref.sum())
    assert np.mean(dices) >= 0.95 and min(dices) >= 0.92
    assert sum(value <= 5.0 for value in outside) == 6


ONE_PHASE = LungParameters(phase_votes=1)


def _score(name: str, parameters: LungParameters) -> tuple[float, float]:
    """(Dice, % of the reference lung area outside it) of one outlined slice segmented with ``parameters``."""
    image, reference, keep = covid_outlined_slice(name)
    seg = segment_lungs(image, parameters=parameters)
    labels = sitk.GetArrayFromImage(seg.labels).reshape(reference.shape)
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    return _dice(mask, ref), 100.0 * float((mask & ~ref).sum()) / float(ref.sum())


def test_posterior_rule_brings_the_dependent_consolidation_in(outlined):
    """posterior_2d (lungs-1.9): on A046441 earlier the partly aerated consolidation beside the spine, which the
    dependent rules leave out, is lung: Dice 0.910 with the rule (lungs-1.10; lungs-1.9 0.900), 0.800 without; the
    area outside the reference stays near 3 %."""
    name = "A046441_19001111-045"
    labels, reference, keep, qa = outlined[name]
    with_rule = _dice((labels > 0) & keep, (reference > 0) & keep)
    without, _ = _score(name, LungParameters(disabled_rules=frozenset({"posterior_2d"})))
    assert with_rule >= without + 0.05
    assert qa["rule_added_ml"]["posterior_2d"] > 1.0


def test_mediastinal_block_keeps_the_hilum_out(one_phase):
    """mediastinal_block_2d (lungs-1.9): the hilar and mediastinal soft tissue the air-bronchogram and hull-deficit
    rules took in on the consolidated A046441 slices and at the left hilum of A048383 later is taken back: area
    outside the reference 2.8 / 6.5 / 4.9 % with the filter, 10.9 / 21.9 / 8.1 % without (lungs-1.10). On A048383
    later the central airway cut (hilar_airway_2d) now removes the left main bronchus and the interlobar artery it
    enclosed first, so the filter's share there is smaller: 1.7 % with it, 2.1 % without."""
    for name, margin in (("A046441_19001111-045", 3.0), ("A046441_19010101-23", 5.0), ("A048383_19010410-30", 0.3)):
        labels, reference, keep, qa = one_phase[name]
        mask, ref = (labels > 0) & keep, (reference > 0) & keep
        with_filter = 100.0 * (mask & ~ref).sum() / ref.sum()
        _, without = _score(name, replace(ONE_PHASE, disabled_rules=frozenset({"mediastinal_block_2d"})))
        assert with_filter <= without - margin, name
        assert qa["rule_added_ml"]["mediastinal_block_2d"] < 0.0, name


def test_nothing_outside_the_rib_cage_on_the_arm_and_object_slices(outlined):
    """The arm (A002304 earlier) and the arms / object (A048383 earlier) are no longer in the mask: the mask area
    outside the reference lung falls from 24 % / 57 % to about 5 % / 3 %; the rule list records the removal (on
    A002304 earlier the air-bronchogram rule no longer grows into the arm, whose air pockets no longer count, so
    the cage filter has less to take back there: 0.8 mL, was 5+ mL)."""
    for name, dropped_ml in (("A002304_19001231-076", 0.5), ("A048383_19001231-30", 5.0)):
        labels, reference, keep, qa = outlined[name]
        mask, ref = (labels > 0) & keep, (reference > 0) & keep
        assert 100.0 * (mask & ~ref).sum() / ref.sum() < 7.0
        assert qa["rule_added_ml"]["cage_2d"] < -dropped_ml  # mL of recovered tissue outside the cavity dropped


def test_arm_pockets_do_not_start_the_bronchogram_rule(one_phase):
    """A002304 earlier: the air-bronchogram rule fired because air pockets in the arm beside the chest made up its
    five-pocket count, and took in hilar vessels around a right hilar bronchus; pockets outside the thoracic cavity
    no longer count (bronchogram_cavity_share): outside the reference 3.3 -> 2.2 %, Dice 0.958 -> 0.959
    (on main ad9b25c, before edge11: 3.5 -> 2.4 %, 0.952 -> 0.953)."""
    name = "A002304_19001231-076"
    labels, reference, keep, qa = one_phase[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    outside = 100.0 * (mask & ~ref).sum() / ref.sum()
    dice_without, outside_without = _score(name, replace(ONE_PHASE, bronchogram_cavity_share=0.0))
    assert outside <= outside_without - 0.8
    assert _dice(mask, ref) >= dice_without
    assert qa["rule_added_ml"]["bronchograms_2d"] == 0.0


def _plane_files(plane: str) -> list:
    folder = shared_path("data", "ct", "covid_ny_sbu")
    return sorted(folder.glob(f"*/{plane}/*.dcm"))


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_every_reformatted_slice_segments_and_quantifies(plane):
    """All 10 coronal and 10 sagittal single slices: segment_lungs and segment_opacities run (lungs-1.7 crashed
    in a SimpleITK filter, "fewer than four pixels along dimension 1"), qa["plane"] names the plane, opacity labels
    lie inside the lung mask."""
    files = _plane_files(plane)
    assert len(files) == 10
    for path in files:
        image = load_ct(path)
        seg = segment_lungs(image)
        assert seg.qa["plane"] == plane and seg.qa["mode"] == "2d", path.name
        opacity = sitk.GetArrayFromImage(segment_opacities(image, seg.labels))
        assert not (opacity[sitk.GetArrayFromImage(seg.labels) == 0] > 0).any(), path.name


def _physical(image: sitk.Image, mask: np.ndarray, axis: int) -> np.ndarray:
    """LPS coordinate ``axis`` (0 x, 2 z; mm, up to the origin) of every voxel of ``mask`` (array (z, y, x))."""
    step = np.array(image.GetDirection()).reshape(3, 3)[axis] * np.array(image.GetSpacing())
    return np.argwhere(mask)[:, ::-1] @ step


def test_coronal_slices_sides_and_nothing_below_the_diaphragm():
    """Coronal slices through both lungs (A048383, mild disease): both lungs, the right one on the patient's right
    (smaller LPS x), each 20-60 mL (one 3 mm slice; measured 32-38). Nothing below the diaphragm on the
    abdominal-level slices of A058062 (lung bases at the top of the field, liver, stomach and bowel gas below):
    every mask voxel lies in the top fifth of the body's superior-inferior extent in the slice."""
    for path in _plane_files("coronal"):
        patient = path.parts[-3]
        if patient not in ("A048383", "A058062"):
            continue
        image = load_ct(path)
        seg = segment_lungs(image)
        labels = sitk.GetArrayFromImage(seg.labels)
        body_z = _physical(image, sitk.GetArrayFromImage(image) > -400, 2)
        mask_z = _physical(image, labels > 0, 2)
        share = (mask_z - body_z.min()) / (body_z.max() - body_z.min())
        if patient == "A058062":  # measured: lowest mask voxel at 0.87 / 0.89 of the body's height
            assert share.min() > 0.8 and seg.qa["total_ml"] > 5
        else:
            assert 20 < seg.qa["right_ml"] < 60 and 20 < seg.qa["left_ml"] < 60
            x = _physical(image, labels > 0, 0)
            side = labels[labels > 0]
            assert x[side == RIGHT].mean() < x[side == LEFT].mean()


def test_lungs_1_10_settings_on_the_lowest_slice(outlined):
    """lungs-1.10 on A046441 later (the lowest slice of lungs-1.9): ``posterior_max_smooth_hu`` -70 (lungs-1.9:
    -100) brings in the posterior consolidation that is solid in part (Dice 0.902, 0.883 with -100: the rule then
    stops at its first solid spot); ``block_reach_mm`` 25 (lungs-1.9: 20) takes back the left mediastinal border
    (6.5 % outside the reference, 8.5 % with 20 mm)."""
    name = "A046441_19010101-23"
    labels, reference, keep, qa = outlined[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    dice, outside = _dice(mask, ref), 100.0 * (mask & ~ref).sum() / ref.sum()
    old_hu, _ = _score(name, LungParameters(posterior_max_smooth_hu=-100.0))
    _, old_reach = _score(name, LungParameters(block_reach_mm=20.0))
    assert dice >= old_hu + 0.015
    assert outside <= old_reach - 1.5


def test_pleural_line_takes_the_chest_wall_rim_out(one_phase):
    """pleural_line_2d (edge11, input grid): on A046441 later the dense-recovered 2.5 mm working blocks that
    straddled the ribs along both lateral chest walls are cut back to 2 mm inside the ribs' inner surface: 4.6 % of
    the reference area outside it with the rule, 5.4 % without (Dice 0.933 / 0.930; edge11 before cavity11's rib
    line: 4.4 / 6.6 %, 0.923 / 0.913: the ring on the posterior rib line takes part of the rim out itself)."""
    name = "A046441_19010101-23"
    labels, reference, keep, qa = one_phase[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    dice, outside = _dice(mask, ref), 100.0 * (mask & ~ref).sum() / ref.sum()
    dice_off, outside_off = _score(name, replace(ONE_PHASE, disabled_rules=frozenset({"pleural_line_2d"})))
    assert outside <= outside_off - 0.5
    assert dice >= dice_off + 0.002
    assert qa["boundary_changed_ml"]["pleural_line_2d"] < -0.5  # mL taken out on the input grid


def test_filled_holes_are_lung():
    """fill_holes_2d (edge11, input grid): on A002304 later the holes each lung encloses on the input grid (vessel
    cross-sections, solid spots inside consolidation; too small for the working grid's step 5) are 136 pixels without
    the rule, 99 % of them inside the reference lung; with it, no lung encloses a hole."""
    image, reference, keep = covid_outlined_slice("A002304_19010112-135")

    def holes(parameters: LungParameters | None) -> tuple[np.ndarray, dict]:
        seg = segment_lungs(image, parameters=parameters)
        labels = sitk.GetArrayFromImage(seg.labels).reshape(reference.shape)
        out = np.zeros(labels.shape, dtype=bool)
        for value in (RIGHT, LEFT):
            out |= ndimage.binary_fill_holes(labels == value) & (labels == 0)
        return out, seg.qa

    without, _ = holes(LungParameters(disabled_rules=frozenset({"fill_holes_2d"})))
    assert without.sum() >= 100
    assert (reference[without & keep] > 0).mean() > 0.95
    with_rule, qa = holes(None)
    assert not with_rule.any()
    assert qa["boundary_changed_ml"]["fill_holes_2d"] > 0.05  # mL (1.25 mm slice)


def test_partial_aeration_brings_ground_glass_beside_the_mask_in(outlined):
    """partial_aeration_2d (edge11, input grid): on A046441 earlier the partly aerated lung (-800..-200 HU) beyond
    the one-block boundary band of step 7 (posterior and paravertebral ground glass) is lung: Dice 0.949 with the
    rule, 0.937 without, at the same area outside the reference (2.9 / 2.8 %)."""
    name = "A046441_19001111-045"
    labels, reference, keep, qa = outlined[name]
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    dice, outside = _dice(mask, ref), 100.0 * (mask & ~ref).sum() / ref.sum()
    dice_off, outside_off = _score(name, LungParameters(disabled_rules=frozenset({"partial_aeration_2d"})))
    assert dice >= dice_off + 0.008
    assert outside <= outside_off + 0.5
    assert qa["boundary_changed_ml"]["partial_aeration_2d"] > 0.3


def test_boundary_max_hu_moves_single_slice_edges_only():
    """boundary_max_hu sets the input-grid edge of single slices (A048383 earlier: the -200 HU default adds the
    partial-volume pleural pixels that the outlines count as lung, and beats -400 HU against them); a volume keeps the
    half-air -400 HU edge, so the same slice stacked to 35 mm (3-D path) is the same whatever boundary_max_hu is."""
    image, reference, keep = covid_outlined_slice("A048383_19001231-30")
    reference = reference > 0
    masks = {}
    for hu in (-200.0, -400.0):
        labels = segment_lungs(image, parameters=LungParameters(boundary_max_hu=hu)).labels
        masks[hu] = sitk.GetArrayFromImage(labels).reshape(reference.shape) > 0
    assert (masks[-200.0] & ~masks[-400.0]).sum() > 500 and not (masks[-400.0] & ~masks[-200.0]).any()
    assert _dice(masks[-200.0] & keep, reference & keep) > _dice(masks[-400.0] & keep, reference & keep) + 0.005
    hu2d = sitk.GetArrayFromImage(image).reshape(reference.shape)
    volume = sitk.GetImageFromArray(np.repeat(hu2d[None], 7, axis=0))
    volume.SetSpacing((*image.GetSpacing()[:2], 5.0))
    stacked = [
        sitk.GetArrayFromImage(segment_lungs(volume, parameters=LungParameters(boundary_max_hu=hu)).labels)
        for hu in (-200.0, -100.0)
    ]
    assert stacked[0].any() and np.array_equal(stacked[0], stacked[1])


# SHA-256 (first 16 hex digits) of the uint8 label array (512 x 512) of each outlined slice segmented on main 014d345
# (lungs-1.11, before phase_votes existed): phase_votes=1 must reproduce them bit for bit
ONE_PHASE_LABEL_SHA = {
    "A002304_19001231-076": "4deb8642b478fa5a",
    "A002304_19010112-135": "12c2b00fb6213143",
    "A046441_19001111-045": "264f4672f54c9658",
    "A046441_19010101-23": "f326e6e37d92ff3c",
    "A048383_19001231-30": "099ccd3a481a0cfa",
    "A048383_19010410-30": "af047e08b0b953c0",
}


def test_phase_votes_1_reproduces_the_single_grid_masks(one_phase, outlined):
    """phase_votes=1 is the lungs-1.11 mask bit for bit (labels hashed on main 014d345); the default vote changes the
    masks (a few % of the pixels at most) and reports how much of its mask all four grids agree on."""
    for name, expected in ONE_PHASE_LABEL_SHA.items():
        labels, _, _, qa = one_phase[name]
        digest = hashlib.sha256(np.ascontiguousarray(labels.astype(np.uint8)).tobytes()).hexdigest()[:16]
        assert digest == expected, name
        assert qa["phase_votes"] == 1 and qa["phase_agreement"] == 1.0
        voted, _, _, voted_qa = outlined[name]
        assert voted_qa["phase_votes"] == 4
        assert 0.8 < voted_qa["phase_agreement"] < 1.0, name
        assert 0 < (voted != labels).sum() < 0.05 * (labels > 0).sum(), name


def _shift(array: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    out = np.full_like(array, fill)
    height, width = array.shape
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = array[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def test_phase_votes_make_the_mask_independent_of_the_grid_phase():
    """A046441 later shifted by 0-25 pixels (padded with air, the reference shifted the same way; the grid-phase
    probe of docs/ct_development_log.md, phase11): on one working-grid phase a one-pixel x shift loses 0.05 Dice
    (0.933 -> 0.882: the air-bronchogram and cage rules fire differently on a 4-pixel grid), spread over the 9 shifts
    0.052; with the vote of four phases 0.931-0.933, spread 0.002."""
    image, reference, keep = covid_outlined_slice("A046441_19010101-23")
    hu = sitk.GetArrayFromImage(image).reshape(512, 512).astype(np.float32)
    reference = reference > 0
    shifts = [(0, 0), (0, 1), (1, 0), (1, 2), (0, -2), (2, 2), (-10, 0), (0, 12), (0, -25)]
    spread = {}
    for votes in (1, 4):
        dices = []
        for dy, dx in shifts:
            shifted = sitk.GetImageFromArray(_shift(hu, dy, dx, -1024.0))
            shifted.SetSpacing(image.GetSpacing()[:2])
            seg = segment_lungs(shifted, parameters=LungParameters(phase_votes=votes))
            mask = sitk.GetArrayFromImage(seg.labels) > 0
            kept = _shift(keep, dy, dx, False)
            dices.append(_dice(mask & kept, _shift(reference, dy, dx, False) & kept))
        spread[votes] = max(dices) - min(dices)
        if votes == 4:
            assert min(dices) >= 0.92
    assert spread[1] > 0.04
    assert spread[4] < 0.02
