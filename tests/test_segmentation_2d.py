"""2-D (single teaching slice) rules of segment_lungs: synthetic display-clipped slice; real normal slices (ct-64)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.errors import SegmentationError
from kicc_analysis.imaging import display_to_hu, load_ct
from kicc_analysis.segmentation import LungParameters, dense_2d, lungs, segment_lungs

# Rules are switched off through LungParameters.disabled_rules. One test injects a synthetic rib-cage band by
# monkeypatching ``lungs._recover_rib_cage`` (dense_rules looks the rule functions up when it is called).
WITHOUT_DEPENDENT = LungParameters(disabled_rules=frozenset({"dependent_2d", "dependent_cavity_2d"}))

ONE_PHASE = LungParameters(phase_votes=1)  # rule on / off tests: one working-grid phase (no four-phase vote)
WINDOW_TOP_HU = 166.0  # display-converted slice: bone clipped at level + width / 2 (like MedSeg slice 23)


def _teaching_slice(spacing_mm: float = 0.8) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Axial chest slice (y = posterior) in HU, bone clipped at the window top, and masks of its structures."""
    ny, nx = 360, 440
    yy, xx = np.mgrid[0:ny, 0:nx] * spacing_mm  # mm
    cy, cx = 0.5 * ny * spacing_mm, 0.5 * nx * spacing_mm

    def ellipse(y0: float, x0: float, ry: float, rx: float) -> np.ndarray:
        return ((yy - y0) / ry) ** 2 + ((xx - x0) / rx) ** 2 <= 1.0

    body = ellipse(cy, cx, 135.0, 170.0)
    hu = np.where(body, 40.0, -1000.0)  # soft tissue in air
    cage_outer, cage_inner = ellipse(cy, cx, 118.0, 153.0), ellipse(cy, cx, 112.0, 147.0)
    hu[cage_outer & ~cage_inner] = WINDOW_TOP_HU  # rib arc (continuous: ribs + intercostal shadow at this scale)
    structures = {}
    for name, sign in (("right", -1.0), ("left", 1.0)):
        x0 = cx + sign * 75.0
        hemithorax = ellipse(cy, x0, 100.0, 62.0) & cage_inner
        aerated = hemithorax & (yy < cy + 25.0)
        crescent = hemithorax & ~aerated  # dependent consolidation down to the posterior ribs
        hu[aerated] = -850.0
        hu[crescent] = 30.0  # real consolidation: like muscle
        structures[f"{name}_aerated"] = aerated
        structures[f"{name}_crescent"] = crescent
    vertebra = ellipse(cy + 85.0, cx, 16.0, 18.0)
    hu[vertebra] = WINDOW_TOP_HU
    aorta = ellipse(cy + 55.0, cx + 30.0, 12.0, 12.0)  # descending aorta, antero-left of the vertebral body
    hu[aorta] = 45.0
    mediastinum = ellipse(cy - 10.0, cx, 70.0, 24.0)
    structures["aorta"], structures["mediastinum"] = aorta, mediastinum & ~structures["right_aerated"]
    structures["mediastinum"] &= ~structures["left_aerated"]
    rng = np.random.default_rng(0)
    hu = np.minimum(hu + rng.normal(0.0, 8.0, hu.shape), WINDOW_TOP_HU)  # display noise, clipped at the top
    return hu.astype(np.float32), structures


def _labels(hu: np.ndarray, spacing_mm: float = 0.8, parameters: LungParameters | None = None) -> np.ndarray:
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((spacing_mm, spacing_mm))
    return sitk.GetArrayFromImage(segment_lungs(image, parameters=parameters).labels)


def test_posterior_crescent_inside_rib_arc_is_recovered():
    """On one working-grid phase (phase_votes=1; the four-phase vote keeps 0.39 of the left crescent: a crescent
    pixel the rules add on only two of the four grids is not lung)."""
    hu, s = _teaching_slice()
    labels = _labels(hu, parameters=ONE_PHASE)
    for side, value in (("right", lungs.RIGHT), ("left", lungs.LEFT)):
        crescent = s[f"{side}_crescent"]
        # the dependent rule stops dependent_margin_mm in front of the ribs and skips the medial share of the lung
        assert (labels[crescent] == value).mean() >= 0.4, side  # measured 0.51; 0.0 without the rule
        assert (labels[s[f"{side}_aerated"]] == value).mean() >= 0.95, side


def test_mediastinum_and_aorta_are_not_recovered():
    hu, s = _teaching_slice()
    labels = _labels(hu)
    assert (labels[s["aorta"]] > 0).mean() < 0.02
    assert (labels[s["mediastinum"]] > 0).mean() < 0.05


def test_without_the_dependent_rules_the_crescent_is_missed():
    """The crescent is recovered by the dependent rules, not by the older 2-D rules (bone clipped below bone_hu)."""
    hu, s = _teaching_slice()
    labels = _labels(hu, parameters=WITHOUT_DEPENDENT)
    assert (labels[s["right_crescent"] | s["left_crescent"]] > 0).mean() < 0.2


def test_dependent_cavity_rule_alone_recovers_the_crescent():
    """dependent_cavity_2d (lungs-1.8) without dependent_2d: the crescent behind the lung, inside the rib arc, is
    lung (it reaches the medial share of the lung that dependent_2d skips); aorta and mediastinum stay out."""
    hu, s = _teaching_slice()
    # the rule alone: the mediastinal block filter (lungs-1.9) takes back part of this airless crescent, see below
    alone = frozenset({"dependent_2d", "mediastinal_block_2d"})
    labels = _labels(hu, parameters=LungParameters(disabled_rules=alone))
    for side, value in (("right", lungs.RIGHT), ("left", lungs.LEFT)):
        assert (labels[s[f"{side}_crescent"]] == value).mean() >= 0.5, side
    assert (labels[s["aorta"]] > 0).mean() < 0.02 and (labels[s["mediastinum"]] > 0).mean() < 0.05


def test_low_window_top_models_no_cage():
    """A window whose top is below dependent_min_top_hu saturates muscle like bone: no cage, no bone mask."""
    hu = np.full((40, 40), 30.0)
    trunk = np.ones((40, 40), dtype=bool)
    assert dense_2d._cage_bone_2d(hu, trunk) is None
    hu[10:20, 10:20] = 400.0
    bone = dense_2d._cage_bone_2d(hu, trunk)
    assert bone is not None and bone[15, 15] and not bone[30, 30]


def _with_bronchograms(n_per_lung: int, spacing_mm: float = 0.8) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The teaching slice with air bronchograms (3 x 10 mm air tubes) in each consolidated crescent and an
    air-filled oesophagus beside the aorta (mediastinal air, never lung)."""
    hu, s = _teaching_slice(spacing_mm)
    ny, nx = hu.shape
    yy, xx = np.mgrid[0:ny, 0:nx] * spacing_mm
    cy, cx = 0.5 * ny * spacing_mm, 0.5 * nx * spacing_mm
    for sign, name in ((-1.0, "right"), (1.0, "left")):
        for k in range(n_per_lung):
            x0 = cx + sign * (55.0 + 12.0 * k)
            tube = (((yy - (cy + 50.0 + 5.0 * (k % 2))) / 5.0) ** 2 + ((xx - x0) / 1.5) ** 2) <= 1.0
            hu[tube & s[f"{name}_crescent"]] = -950.0
    oesophagus = (((yy - (cy + 40.0)) / 5.0) ** 2 + ((xx - (cx + 8.0)) / 5.0) ** 2) <= 1.0
    hu[oesophagus] = -950.0
    s["oesophagus"] = oesophagus
    return hu, s


def test_air_bronchograms_bring_the_consolidation_in():
    hu, s = _with_bronchograms(4)
    # the crescent must come from the bronchogram rule alone (the mediastinal block filter takes back part of it:
    # airless consolidation touching the mediastinum, see test_mediastinal_block_costs_airless_crescent_touching_it)
    alone = LungParameters(disabled_rules=WITHOUT_DEPENDENT.disabled_rules | {"mediastinal_block_2d"})
    labels = _labels(hu, parameters=alone)
    crescent = s["right_crescent"] | s["left_crescent"]
    assert (labels[crescent] > 0).mean() >= 0.5
    for structure in ("aorta", "mediastinum", "oesophagus"):
        assert (labels[s[structure]] > 0).mean() < 0.05, structure


def test_a_few_air_pockets_are_not_enough():
    hu, s = _with_bronchograms(1)  # 2 pockets in the slice (+ oesophagus): below bronchogram_min_count
    labels = _labels(hu, parameters=WITHOUT_DEPENDENT)
    assert (labels[s["right_crescent"] | s["left_crescent"]] > 0).mean() < 0.2


def test_air_pockets_in_an_arm_are_no_bronchograms():
    """bronchogram_cavity_share: 4 pockets in the crescents and 4 bronchogram-like pockets in an arm beside the chest
    (outside the rib cage): only the 4 inside the cavity count, below bronchogram_min_count, so the rule does not
    fire; without the cavity test (share 0) the arm's pockets make up the count and the crescents come in."""
    hu, s = _with_bronchograms(2)
    wide, arm, _ = _with_arm(hu)
    ny, nx = wide.shape
    yy, xx = np.mgrid[0:ny, 0:nx] * 0.8
    cy, cx = 0.5 * hu.shape[0] * 0.8, 0.5 * hu.shape[1] * 0.8
    for k in range(4):  # 3 x 10 mm air tubes in the arm's soft tissue, away from its skin fold and humerus
        tube = (((yy - (cy + 5.0 + 9.0 * k)) / 1.5) ** 2 + ((xx - (cx + 185.0)) / 5.0) ** 2) <= 1.0
        wide[tube & arm] = -950.0
    crescent = np.pad(s["right_crescent"] | s["left_crescent"], ((0, 0), (0, 80)))
    alone = LungParameters(disabled_rules=WITHOUT_DEPENDENT.disabled_rules | {"mediastinal_block_2d"})
    on = _labels(wide, parameters=alone)
    off = _labels(wide, parameters=replace(alone, bronchogram_cavity_share=0.0))
    assert (on[crescent] > 0).mean() < 0.05  # measured 0.00
    assert (off[crescent] > 0).mean() >= 0.15  # measured 0.24 (25 mm around the 4 pockets inside)
    assert not (on[arm] > 0).any() and not (off[arm] > 0).any()  # the cage filter drops the arm either way


def test_mediastinum_mask_lies_between_the_lungs():
    """_mediastinum_2d: between the right lung's and the left lung's medial edges, row by row; never lateral."""
    labels = np.zeros((1, 100, 120), dtype=np.uint8)
    labels[0, 20:80, 10:45] = lungs.RIGHT
    labels[0, 20:80, 75:110] = lungs.LEFT
    trunk = np.ones_like(labels, dtype=bool)
    med = dense_2d._mediastinum_2d(labels, trunk, np.array([1.0, 1.0, 1.0]))[0]
    assert med[50, 45:75].all() and not med[50, 44] and not med[50, 75]
    assert not med[50, :45].any() and not med[50, 75:].any()  # lateral chest wall is never mediastinum
    # rows without lung on either side: the midline +- BRONCHOGRAM_MIDLINE_MM (60 mm) bound, i.e. the whole row here
    assert med[5, 1:119].all()


def test_recovered_tissue_between_the_lungs_is_dropped(monkeypatch):
    """A sub-pleural cage band that runs into the mediastinum (a ray meeting the sternum or spine) is not lung."""
    hu, _ = _teaching_slice()

    def central(shape: tuple[int, int]) -> np.ndarray:  # a pre-aortic soft-tissue ellipse, any grid
        y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
        return ((y / shape[0] - 0.465) / 0.15) ** 2 + ((x / shape[1] - 0.5) / 0.04) ** 2 <= 1.0

    def cage_in_mediastinum(labels, *args, **kwargs):  # a synthetic rib-cage band (injected, not switched off)
        return np.broadcast_to(central(labels.shape[1:]), labels.shape) & (labels == 0)

    monkeypatch.setattr(lungs, "_recover_rib_cage", cage_in_mediastinum)
    mediastinum = central(hu.shape)
    assert (_labels(hu)[mediastinum] > 0).mean() < 0.05
    without_filters = LungParameters(disabled_rules=frozenset({"mediastinum_2d", "mediastinal_block_2d"}))
    assert (_labels(hu, parameters=without_filters)[mediastinum] > 0).mean() > 0.5  # without the filters: kept
    for name in ("mediastinum_2d", "mediastinal_block_2d"):  # either filter alone takes it back
        other = LungParameters(disabled_rules=frozenset({"mediastinum_2d", "mediastinal_block_2d"} - {name}))
        assert (_labels(hu, parameters=other)[mediastinum] > 0).mean() < 0.05, name


def test_posterior_rule_brings_a_partly_aerated_crescent_in():
    """posterior_2d (lungs-1.9) with the two dependent rules off: a posterior crescent of partly aerated
    consolidation (-250 HU, smoothed below -100 HU) reaching the vertebral body is lung (measured 0.68 / 0.66 of it;
    0.0 without the rule; all rules 0.95); the aorta and the mediastinum stay out."""
    hu, s = _teaching_slice()
    crescent = (s["right_crescent"] | s["left_crescent"]) & ~s["aorta"]
    hu = np.where(crescent, hu - 280.0, hu).astype(np.float32)
    on = _labels(hu, parameters=WITHOUT_DEPENDENT)
    # partial_aeration_2d (input grid) also takes the first 5 mm of a -250 HU crescent: off here to isolate the rule
    off = _labels(
        hu,
        parameters=LungParameters(
            disabled_rules=WITHOUT_DEPENDENT.disabled_rules | {"posterior_2d", "partial_aeration_2d"}
        ),
    )
    for side, value in (("right", lungs.RIGHT), ("left", lungs.LEFT)):
        part = s[f"{side}_crescent"] & ~s["aorta"]
        assert (on[part] == value).mean() >= 0.6, side
        # without the rule only the input-grid boundary band takes partial-volume pixels below boundary_max_hu
        assert (off[part] > 0).mean() < 0.1, side
    assert (on[s["aorta"]] > 0).mean() < 0.05 and (on[s["mediastinum"]] > 0).mean() < 0.02


def test_mediastinal_block_costs_airless_crescent_touching_it():
    """The known cost of mediastinal_block_2d (lungs-1.9): consolidation with no air left that touches the
    mediastinum cannot be told from it by HU. On the synthetic slice (crescent at +30 HU, like muscle, reaching the
    mediastinum and the aorta) 0.48 / 0.47 of the crescent stays lung with the filter, 0.69 / 0.66 without it (on
    the real covid_ny_sbu slices the consolidation is partly aerated and the filter gains, see
    test_segmentation_covid.py). On one working-grid phase (phase_votes=1), as measured."""
    hu, s = _teaching_slice()
    on = _labels(hu, parameters=ONE_PHASE)
    off = _labels(hu, parameters=replace(ONE_PHASE, disabled_rules=frozenset({"mediastinal_block_2d"})))
    for side, value in (("right", lungs.RIGHT), ("left", lungs.LEFT)):
        crescent = s[f"{side}_crescent"]
        assert 0.4 <= (on[crescent] == value).mean() < (off[crescent] == value).mean() - 0.1, side


def _ct64_slices_alone(display: bool) -> tuple[list[float], int]:
    """Per-slice Dice vs CIP and total non-lung pixels of ct-64's axial slices segmented one by one (2-D path)."""
    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    ct = load_ct(folder / "ct-64.nrrd")
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    region = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd"))) & 255
    truth = (region >= 9) & (region <= 14)  # CIP left/right lung thirds
    level, width = -600.0, 1500.0  # lung window; bone clipped at +150 HU
    dices, extra = [], 0
    for z in np.nonzero(truth.sum(axis=(1, 2)) >= 200)[0]:
        values = hu[z]
        if display:
            grey = np.clip(np.rint((values - (level - width / 2)) / width * 255), 0, 255)
            values = display_to_hu(grey, level, width)
        image = sitk.GetImageFromArray(values)
        image.SetSpacing(ct.GetSpacing()[:2])
        mask = sitk.GetArrayFromImage(segment_lungs(image).labels) > 0
        dices.append(2 * (mask & truth[z]).sum() / (mask.sum() + truth[z].sum()))
        extra += int((mask & ~truth[z]).sum())
    return dices, extra


def test_2d_rules_do_not_leak_on_normal_real_slices():
    """Every lung slice of the real COPDGene ct-64 scan segmented alone, as an 8-bit lung-window teaching image:
    the 2-D rules (dependent, air-bronchogram) must not add chest wall, liver or mediastinum to normal lungs.
    lungs-1.5 measured: mean Dice 0.974 vs CIP (lungs-1.4: 0.974), lowest 0.908 (a lung base); 2,868 non-lung
    pixels over 60 slices (lungs-1.4: 2,805). Disabling the rules' limits (margin, band depth, pocket count)
    breaks the pixel bound."""
    dices, extra = _ct64_slices_alone(display=True)
    assert len(dices) >= 50
    assert np.mean(dices) >= 0.97
    assert min(dices) >= 0.90
    assert extra <= 1.2 * 2805  # at most 20 % more non-lung pixels than lungs-1.4 (before the 2-D rules)


def test_2d_mediastinum_filter_on_normal_real_slices():
    """Same slices in HU: the mediastinum filter removes hull / cage recoveries between the lungs (lungs-1.4: 3,666
    non-lung pixels, mean Dice 0.966; lungs-1.5: 3,396, 0.968)."""
    dices, extra = _ct64_slices_alone(display=False)
    assert np.mean(dices) >= 0.967
    assert extra <= 3500


def test_rule_volumes_in_qa_follow_the_rule_list():
    """qa["rule_added_ml"]: one entry per rule run, in dense_rules order; a switched-off rule adds nothing."""
    hu, _ = _teaching_slice()
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.8, 0.8))
    full = segment_lungs(image).qa["rule_added_ml"]
    assert list(full) == [rule.name for rule in lungs.dense_rules("2d")]
    assert full["dependent_2d"] > 1.0  # mL on the working grid (the crescents; 1 mm thick slice of a 2-D image)
    assert full["mediastinum_2d"] <= 0.0  # a filter removes
    off = segment_lungs(image, parameters=WITHOUT_DEPENDENT).qa["rule_added_ml"]
    assert "dependent_2d" not in off and list(off) == [
        name for name in full if name not in WITHOUT_DEPENDENT.disabled_rules
    ]
    none = segment_lungs(image, recover_dense=False)
    assert none.qa["rule_added_ml"] == {} and none.qa["dense_recovered_ml"] == 0.0


def _with_arm(hu: np.ndarray, spacing_mm: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``hu`` with an arm beside the chest (touching the body at its patient-left side): soft tissue, a humerus
    (bone) and an air pocket in a skin fold. Returns the slice, the arm mask and the pocket mask."""
    ny, nx = hu.shape
    yy, xx = np.mgrid[0:ny, 0:nx] * spacing_mm
    cy, cx = 0.5 * ny * spacing_mm, 0.5 * nx * spacing_mm
    wide = np.pad(hu, ((0, 0), (0, 80)), constant_values=-1000.0)
    yy, xx = np.mgrid[0 : wide.shape[0], 0 : wide.shape[1]] * spacing_mm
    arm = ((yy - cy) / 60.0) ** 2 + ((xx - (cx + 205.0)) / 45.0) ** 2 <= 1.0
    wide[arm] = 40.0
    wide[arm & (((yy - cy) / 14.0) ** 2 + ((xx - (cx + 215.0)) / 14.0) ** 2 <= 1.0)] = WINDOW_TOP_HU  # humerus
    pocket = arm & (((yy - (cy + 30.0)) / 11.0) ** 2 + ((xx - (cx + 190.0)) / 11.0) ** 2 <= 1.0)
    wide[pocket] = -900.0
    return wide.astype(np.float32), arm, pocket


def test_cavity_keeps_the_lungs_and_leaves_out_an_arm():
    """cage_2d (lungs-1.8): the thoracic cavity of a slice is fitted to the rib ring; the air in an arm beside the
    chest is lung with the rule off and dropped with it on; the lungs are unchanged."""
    hu, structures = _teaching_slice()
    wide, arm, pocket = _with_arm(hu)
    on = _labels(wide)
    off = _labels(wide, parameters=LungParameters(disabled_rules=frozenset({"cage_2d"})))
    assert (off[pocket] > 0).mean() > 0.5  # without the rule the air pocket in the arm is "lung"
    assert not (on[arm] > 0).any()
    aerated = np.pad(structures["right_aerated"] | structures["left_aerated"], ((0, 0), (0, 80)))
    assert (on[aerated] > 0).mean() > 0.97


def test_thoracic_cavity_follows_the_rib_ring():
    """thoracic_cavity_2d on the working grid: inside the rib arc (ellipse 112 x 147 mm inner radii), not beyond
    it, not in the arm; no cavity without bone."""
    hu, structures = _teaching_slice(spacing_mm=2.4)
    ny, nx = hu.shape
    yy, xx = np.mgrid[0:ny, 0:nx] * 2.4
    cy, cx = 0.5 * ny * 2.4, 0.5 * nx * 2.4
    trunk = ((yy - cy) / 135.0) ** 2 + ((xx - cx) / 170.0) ** 2 <= 1.0
    lungs = (hu < -400) & trunk
    cavity = dense_2d.thoracic_cavity_2d(hu, trunk, lungs, np.array([1.0, 2.4, 2.4]))
    inner = ((yy - cy) / 108.0) ** 2 + ((xx - cx) / 143.0) ** 2 <= 1.0
    outer = ((yy - cy) / 125.0) ** 2 + ((xx - cx) / 160.0) ** 2 <= 1.0
    assert cavity is not None and cavity[inner].mean() > 0.97 and not (cavity & ~outer).any()
    no_bone = np.where(hu >= 150, 40.0, hu).astype(np.float32)
    assert dense_2d.thoracic_cavity_2d(no_bone, trunk, lungs, np.array([1.0, 2.4, 2.4])) is None


def test_sides_from_the_midline_not_component_size():
    """A mostly consolidated right lung leaves a small aerated part; it is still labelled right (lungs-1.7 took the
    larger component's side from the erosion markers). _split_by_midline: position decides, not size."""
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 35:55] = True  # large, patient left (larger x)
    mask[10:14, 10:14] = True  # small, patient right
    mask[30:34, 27:29] = True  # small, just right of the midline
    labels = lungs._split_by_midline(mask, 30.0)
    assert (labels[5:35, 35:55] == 2).all() and (labels[10:14, 10:14] == 1).all() and (labels[30:34, 27:29] == 1).all()
    hu, structures = _teaching_slice()
    right = structures["right_aerated"]
    ys = np.nonzero(right)[0]
    consolidated = right & (np.arange(hu.shape[0])[:, None] > ys.min() + 0.25 * (ys.max() - ys.min()))
    hu = np.where(consolidated, 30.0, hu).astype(np.float32)
    out = _labels(hu)
    assert (out[right & ~consolidated] == 1).mean() > 0.95 and (out[structures["left_aerated"]] == 2).mean() > 0.95


def test_grid_phases_are_zero_and_half_the_factor():
    """phase_votes=4: the working grid starts 0 or half a block (factor // 2 input pixels) earlier in y and x."""
    assert lungs._grid_phases(np.array([1, 3, 3]), 4) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert lungs._grid_phases(np.array([1, 4, 4]), 4) == [(0, 0), (0, 2), (2, 0), (2, 2)]
    assert lungs._grid_phases(np.array([1, 1, 3]), 4) == [(0, 0), (0, 1)]  # no shift along an axis of factor 1
    assert lungs._grid_phases(np.array([1, 1, 1]), 4) == [(0, 0)]
    assert lungs._grid_phases(np.array([1, 3, 3]), 1) == [(0, 0)]


def test_phase_votes_accepts_one_or_four_runs():
    for bad in (0, 2, 3, 9):
        with pytest.raises(SegmentationError, match="phase_votes"):
            LungParameters(phase_votes=bad)


def test_phase_vote_is_a_majority_per_pixel():
    """Lung where 3 of 4 runs say lung (2 of 4 is not); side by majority, a 1-1 tie to the unshifted run's side;
    dense where 3 of 4 say dense; rule mL are the mean over the runs; phase_agreement is the share of the voted lung
    all runs agree on."""
    L, R = lungs.LEFT, lungs.RIGHT
    masks = [
        np.array([[[R, R, R, L, 0]]], dtype=np.uint8),  # the unshifted run
        np.array([[[R, R, L, R, 0]]], dtype=np.uint8),
        np.array([[[R, R, 0, 0, R]]], dtype=np.uint8),
        np.array([[[R, 0, R, 0, R]]], dtype=np.uint8),
    ]
    dense = [np.array([[[1, 1, 0, 0, 0]]], dtype=np.uint8)] * 3 + [np.zeros((1, 1, 5), dtype=np.uint8)]
    infos = [
        {"leak_fraction": 0.0, "rule_added_ml": {"bronchograms_2d": ml}, "airway_found": True} for ml in (4, 0, 0, 0)
    ]
    labels, dense_voted, info = lungs._vote_phases(list(zip(masks, dense, infos, strict=True)))
    assert labels.tolist() == [[[R, R, R, 0, 0]]]  # pixel 2: R, L, -, R -> 3 lung votes, R by 2-1
    assert dense_voted.tolist() == [[[1, 1, 0, 0, 0]]]
    assert info["rule_added_ml"] == {"bronchograms_2d": 1.0} and info["airway_found"] is True
    assert info["phase_votes"] == 4 and info["phase_agreement"] == pytest.approx(1 / 3)
    tie = [np.array([[[L]]], dtype=np.uint8), np.array([[[R]]], dtype=np.uint8)]
    tie += [np.array([[[L]]], dtype=np.uint8), np.array([[[R]]], dtype=np.uint8)]
    zero = np.zeros((1, 1, 1), dtype=np.uint8)
    labels, _, _ = lungs._vote_phases([(m, zero, {"leak_fraction": 0.0}) for m in tie])
    assert labels.tolist() == [[[L]]]


def test_phase_votes_leave_volumes_alone():
    """The vote is for single slices only: a stack of 35 mm (3-D path) is the same with 1 and 4 phase votes, a single
    slice is not (the synthetic teaching slice on its 3-pixel grid)."""
    hu, _ = _teaching_slice()
    volume = sitk.GetImageFromArray(np.repeat(hu[None].astype(np.float32), 7, axis=0))
    volume.SetSpacing((0.8, 0.8, 5.0))
    stacked = [
        sitk.GetArrayFromImage(segment_lungs(volume, parameters=LungParameters(phase_votes=v)).labels) for v in (1, 4)
    ]
    assert stacked[0].any() and np.array_equal(stacked[0], stacked[1])
    single = sitk.GetImageFromArray(hu.astype(np.float32))
    single.SetSpacing((0.8, 0.8))
    one, four = (segment_lungs(single, parameters=LungParameters(phase_votes=v)) for v in (1, 4))
    assert one.qa["phase_votes"] == 1 and four.qa["phase_votes"] == 4
    assert four.qa["mode"] == "2d" and 0.9 < four.qa["phase_agreement"] <= 1.0
