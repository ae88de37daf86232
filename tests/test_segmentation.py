"""Tests of kicc_analysis.segmentation.segment_lungs on real CT (../shared) and the demo phantom."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.errors import SegmentationError
from kicc_analysis.imaging import load_ct
from kicc_analysis.quantification import quantify
from kicc_analysis.segmentation import LEFT, RIGHT, segment_lungs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def ct64():
    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd")))
    region = lm & 255  # CIP encoding: value = type << 8 | region
    truth = np.zeros(lm.shape, dtype=np.uint8)
    truth[(region >= 12) & (region <= 14)] = RIGHT  # RIGHTUPPER/MIDDLE/LOWERTHIRD
    truth[(region >= 9) & (region <= 11)] = LEFT  # LEFTUPPER/MIDDLE/LOWERTHIRD
    whole = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "wholeLung-64.nrrd"))) > 0
    return folder, truth, whole


def test_ct64_dice_against_cip_and_left_right(ct64):
    folder, truth, whole = ct64
    result = segment_lungs(load_ct(folder / "ct-64.nrrd"))
    labels = sitk.GetArrayFromImage(result.labels)
    assert dice(labels > 0, whole) >= 0.95
    assert dice(labels == RIGHT, truth == RIGHT) >= 0.95
    assert dice(labels == LEFT, truth == LEFT) >= 0.95
    assert result.qa["flags"] == []
    assert 4000 < result.qa["total_ml"] < 5200  # CIP: 4554 mL


def test_ct64_dice_lungs13_floor(ct64):
    # lungs-1.3: the partial-volume rim of the pleural boundary is no longer recovered (lungs-1.2: 0.971)
    folder, _, whole = ct64
    labels = sitk.GetArrayFromImage(segment_lungs(load_ct(folder / "ct-64.nrrd")).labels)
    assert dice(labels > 0, whole) >= 0.975


def test_ct64_lungs16_floor_and_healthy_lung_consolidation(ct64):
    # lungs-1.6 halo gate: dense tissue next to normal aerated lung (heart border, hilar vessels, chest-wall rim) is
    # no longer taken in. This healthy (COPDGene) lung measures 10.0 mL of consolidation on the CIP mask; on ours
    # lungs-1.5 gave 97 mL (Dice 0.977), lungs-1.6 17.6 mL (Dice 0.986)
    folder, _, whole = ct64
    image = load_ct(folder / "ct-64.nrrd")
    labels = segment_lungs(image).labels
    assert dice(sitk.GetArrayFromImage(labels) > 0, whole) >= 0.984
    cip = sitk.GetImageFromArray(whole.astype(np.uint8))
    cip.CopyInformation(image)
    ours = quantify(image, labels).set_index("region").loc["both", "consolidation_ml"]
    reference = quantify(image, cip).set_index("region").loc["both", "consolidation_ml"]
    assert ours <= 2.5 * reference


def test_ct64_halo_gate_off_is_a_superset_and_reported(ct64):
    # halo_gate=False restores lungs-1.5: the gate only removes voxels, and qa says how much (4 mm grid = working grid)
    folder, _, whole = ct64
    image = load_ct(folder / "ct-64.nrrd")
    gated = segment_lungs(image)
    ungated = segment_lungs(image, halo_gate=False)
    on = sitk.GetArrayFromImage(gated.labels) > 0
    off = sitk.GetArrayFromImage(ungated.labels) > 0
    assert not (on & ~off).any()
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    assert gated.qa["halo_gate"] and not ungated.qa["halo_gate"] and ungated.qa["halo_dropped_ml"] == 0.0
    # 99.2 vs 102.6 mL: hole filling after the gate and the full-resolution border move a few voxels more
    assert gated.qa["halo_dropped_ml"] == pytest.approx((off & ~on).sum() * voxel_ml, rel=0.05)
    assert (off & ~on & ~whole).sum() > 0.8 * (off & ~on).sum()  # what the gate drops is mostly outside CIP's lung


def test_ct64_trachea_excluded(ct64):
    folder, _, _ = ct64
    labels = sitk.GetArrayFromImage(segment_lungs(load_ct(folder / "ct-64.nrrd")).labels)
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd")))
    trachea = lm == 512  # CIP: AIRWAY type (2 << 8) in an undefined region = trachea / main bronchi
    assert (trachea & (labels > 0)).sum() <= 0.2 * trachea.sum()


def test_ct64_dicom_and_nrrd_give_same_mask(ct64):
    folder, _, _ = ct64
    a = sitk.GetArrayFromImage(segment_lungs(load_ct(folder / "ct-64Dicom")).labels)
    b = sitk.GetArrayFromImage(segment_lungs(load_ct(folder / "ct-64.nrrd")).labels)
    assert dice(a > 0, b > 0) > 0.999
    np.testing.assert_array_equal(a, b)


def test_two_slice_crop_matches_cip_partial_labelmap():
    folder = shared_path("data", "ct", "cip_copdgene_crop")
    image = load_ct(folder / "crop_ct_2slices.nrrd")
    result = segment_lungs(image)
    labels = sitk.GetArrayFromImage(result.labels)
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "crop_ct_partialLungLabelMap.nrrd")))[60:62]
    region = lm & 255
    lung = (region >= 9) & (region <= 14)
    assert result.qa["mode"] == "2d"
    assert dice(labels > 0, lung) >= 0.93
    left = (region >= 9) & (region <= 11)
    assert dice(labels == LEFT, left) >= 0.9


def test_single_slice_with_padding():
    image = load_ct(shared_path("data", "ct", "lungmask_lidc_slice", "0.dcm"))
    result = segment_lungs(image[:, :, 0])  # a true 2-D image
    labels = sitk.GetArrayFromImage(result.labels)
    assert result.labels.GetDimension() == 2
    assert set(np.unique(labels)) == {0, RIGHT, LEFT}
    xs_right = np.nonzero(labels == RIGHT)[1].mean()
    xs_left = np.nonzero(labels == LEFT)[1].mean()
    assert xs_right < xs_left  # LPS: patient right at small x
    area_fraction = (labels > 0).mean()
    assert 0.10 < area_fraction < 0.40  # mid-thorax slice: lungs fill a sensible share of the FOV
    hu = sitk.GetArrayFromImage(image)[0]
    assert (hu[labels > 0] < -400).mean() > 0.8  # mostly aerated lung
    assert (hu[labels == 0] < -400).mean() < 0.5  # background is mostly body or outside air set to -1024
    assert result.qa["flags"] == []


def test_segment_lungs_rejects_bad_input():
    with pytest.raises(SegmentationError):
        segment_lungs(np.zeros((4, 4)))


# ------------------------------------------------------------------ demo phantom
phantom = pytest.importorskip("kicc_analysis.demo.phantom")


@pytest.fixture(scope="module")
def chest():
    ph = phantom.chest_phantom(lesions="random", seed=3)
    image = sitk.GetImageFromArray(ph.hu)
    image.SetSpacing(tuple(float(s) for s in ph.spacing_mm[::-1]))
    return ph, image, segment_lungs(image)


def test_phantom_lung_dice(chest):
    ph, _, result = chest
    labels = sitk.GetArrayFromImage(result.labels)
    assert dice(labels > 0, ph.lung_labels > 0) >= 0.97
    assert dice(labels == RIGHT, ph.lung_labels == RIGHT) >= 0.95
    assert dice(labels == LEFT, ph.lung_labels == LEFT) >= 0.95


@pytest.mark.xfail(
    reason="massive basal / dependent consolidation with no aerated lung below it is only partly recovered "
    "(56-68 % of consolidation voxels on the phantom with lungs-1.6; ~15 % lies within the 4 mm pleural margin of "
    "bone); see docs/ct.md 'Known limitations'",
    strict=True,
)
def test_phantom_consolidation_inside_mask(chest):
    ph, _, result = chest
    labels = sitk.GetArrayFromImage(result.labels)
    consolidation = ph.lesion_labels == 2
    assert (consolidation & (labels > 0)).sum() / consolidation.sum() >= 0.95


def test_phantom_outline_interpolation_floor(chest):
    # lungs-1.2 (3-D outline interpolation) keeps at least half of the consolidation (lungs-1.1: 33 % on seed 3)
    ph, _, result = chest
    labels = sitk.GetArrayFromImage(result.labels)
    consolidation = ph.lesion_labels == 2
    assert (consolidation & (labels > 0)).sum() / consolidation.sum() >= 0.5


def test_phantom_lung_base_rule_floor(chest):
    # lungs-1.3 (lung-base rule, 3-D rib cage) keeps at least 65 % of the consolidation (lungs-1.2: 55 % on seed 3)
    ph, _, result = chest
    labels = sitk.GetArrayFromImage(result.labels)
    consolidation = ph.lesion_labels == 2
    assert (consolidation & (labels > 0)).sum() / consolidation.sum() >= 0.65


def _base_block(cut_at_top: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right lung on a flat diaphragm (z = 5) with a dense layer on it posterolaterally (lung from z = 8 there)."""
    labels = np.zeros((40, 60, 60), dtype=np.uint8)
    labels[5:36, 10:50, 5:26] = RIGHT
    layer = np.zeros(labels.shape, dtype=bool)
    layer[5:8, 38:50, 5:16] = True  # dense layer lying on the diaphragm, against the posterior-lateral wall
    labels[layer] = 0
    if cut_at_top:
        labels[36:] = labels[35]
    dense_ok = labels == 0  # everything that is not lung is soft tissue here (liver below z = 5)
    return labels, dense_ok, layer


def test_lung_base_rule_fills_the_layer_not_the_liver():
    from kicc_analysis.segmentation.dense_3d import _recover_lung_base

    labels, dense_ok, layer = _base_block()
    spacing = np.array([5.0, 2.5, 2.5])
    recovered = _recover_lung_base(labels, dense_ok, spacing, np.full(labels.shape[0], 30.0))
    assert not recovered[:5].any()  # nothing under the modelled dome (liver)
    assert not (recovered & ~layer).any()
    assert (recovered & layer).sum() >= 0.5 * layer.sum()  # the fitted dome is pulled up a little by the layer
    # the same lung cut by the top of the scan: no dome is modelled, nothing is added
    labels, dense_ok, _ = _base_block(cut_at_top=True)
    assert not _recover_lung_base(labels, dense_ok, spacing, np.full(labels.shape[0], 30.0)).any()


def _gutter_slice(pocket: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One 3 mm slice (in a 3-slice stack): vertebral body, a posterior rib, the right lung lateral of them.

    With ``pocket`` the lung's paravertebral gutter (between the body, the rib behind it and the lung) is dense.
    """
    ny, nx = 60, 60
    yy, xx = np.mgrid[0:ny, 0:nx]
    hu = np.full((ny, nx), 40.0)  # soft tissue everywhere (mediastinum, chest wall)
    body = (yy - 40) ** 2 + (xx - 30) ** 2 <= 36  # vertebral body: 6 px = 18 mm radius, centre (40, 30)
    hu[body] = 400.0
    hu[47:50, 5:24] = 400.0  # rib head / neck behind the gutter, 3 px thick
    lung = (yy >= 20) & (yy < 47) & (xx >= 4) & (xx < 17)  # right lung (smaller x), lateral of the gutter
    gutter = (yy >= 40) & (yy < 46) & (xx >= 17) & (xx < 24)  # 6 x 7 px dense pocket up to the vertebra
    if not pocket:
        lung |= (yy >= 20) & (yy < 46) & (xx >= 17) & (xx < 22)  # aerated lung reaches the vertebra
    hu[lung] = -850.0
    labels = np.zeros((3, ny, nx), dtype=np.uint8)
    labels[:, lung] = RIGHT
    hu3 = np.repeat(hu[None], 3, axis=0)
    dense_ok = (hu3 >= -400) & (hu3 <= 150)
    return labels, hu3, dense_ok, gutter


def test_gutter_rule_fills_the_paravertebral_pocket_only():
    from kicc_analysis.segmentation.dense_3d import _recover_gutter
    from kicc_analysis.segmentation.geometry import vertebral_body as _vertebral_body

    spacing = np.array([3.0, 3.0, 3.0])
    trunk = np.ones((3, 60, 60), dtype=bool)
    labels, hu, dense_ok, gutter = _gutter_slice(pocket=True)
    assert _vertebral_body(hu[1] >= 200, trunk[1], spacing, 30.0)[:2] == (40, 30)
    recovered = _recover_gutter(labels, hu, dense_ok, trunk, spacing, np.full(3, 30.0))
    assert (recovered[1] & gutter).sum() >= 0.5 * gutter.sum()  # the pocket (minus the 4 mm margin at the bone)
    assert not (recovered[1] & ~gutter).any()  # not the mediastinum in front, not the tissue behind the rib
    # a normal lung lying against the vertebra: nothing to add
    labels, hu, dense_ok, _ = _gutter_slice(pocket=False)
    assert not _recover_gutter(labels, hu, dense_ok, trunk, spacing, np.full(3, 30.0)).any()
    # no vertebral body in the slice (e.g. thick soft tissue only): the rule does nothing
    assert _vertebral_body(np.zeros((60, 60), dtype=bool), trunk[1], spacing, 30.0) is None


def _recess_stack() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Right lung as a ring (radii 28-38 px) around a liver dome: full in slice 2, in slice 1 consolidated over
    its whole depth in a postero-lateral and an anterior 40-degree sector (+40 HU, like muscle), nothing in slice 0."""
    ny = nx = 101
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot(yy - 50, xx - 50)
    angle = np.degrees(np.arctan2(yy - 50, xx - 50))  # image y = posterior: +90 posterior, -90 anterior
    ring = (radius >= 28) & (radius <= 38)
    posterior = ring & (np.abs(angle - 150) < 20)  # postero-lateral, > 20 mm from the midline
    anterior = ring & (np.abs(angle + 90) < 20)
    hu = np.full((3, ny, nx), 40.0)  # chest wall / consolidation
    hu[:, radius < 28] = 60.0  # liver dome
    labels = np.zeros((3, ny, nx), dtype=np.uint8)
    labels[2, ring] = RIGHT
    labels[1, ring & ~posterior & ~anterior] = RIGHT
    hu[labels == RIGHT] = -850.0
    dense_ok = (hu >= -400) & (hu <= 150) & (labels == 0)
    return labels, hu, dense_ok, posterior, radius


def test_recess_rule_fills_a_consolidated_stretch_of_the_crescent_only():
    from kicc_analysis.segmentation.dense_3d import _recover_recess

    labels, hu, dense_ok, posterior, radius = _recess_stack()
    trunk = np.ones(labels.shape, dtype=bool)
    spacing = np.array([5.0, 2.5, 2.5])
    recovered = _recover_recess(labels.copy(), hu, dense_ok, trunk, spacing)
    assert (recovered[1] & posterior).sum() >= 0.7 * posterior.sum()  # the postero-lateral stretch
    assert not (recovered[1] & ~posterior).any()  # not the anterior stretch (heart sector), not liver or chest wall
    assert not (recovered[1] & ((radius < 27) | (radius > 39))).any()
    assert not recovered[[0, 2]].any()  # slice 0 has no lung to interpolate from
    # ribs 3 px (7.5 mm) outside the ring and the lung above reaching them: the gap's crescent reaches the inner surface of
    # the cage (beyond the outer edge of the rays bounding it), minus the 4 mm margin
    hu_rib, labels_rib = hu.copy(), labels.copy()
    hu_rib[:, (radius >= 41) & (radius <= 43)] = 400.0
    labels_rib[2, (radius >= 28) & (radius <= 40)] = RIGHT
    hu_rib[2][labels_rib[2] == RIGHT] = -850.0
    ok_rib = (hu_rib >= -400) & (hu_rib <= 150) & (labels_rib == 0)
    with_rib = _recover_recess(labels_rib, hu_rib, ok_rib, trunk, spacing)[1]
    assert (with_rib & (radius > 38.5)).any()
    assert not (with_rib & (radius >= 40)).any()  # never next to the ribs (4 mm = 1.6 px margin)
    # without lung above the gap (a lung base only narrows caudally) nothing is added
    labels[2][posterior] = 0
    assert not _recover_recess(labels, hu, dense_ok, trunk, spacing).any()


def test_side_of_recovered_components_matches_nearest_label():
    from kicc_analysis.segmentation.geometry import nearest_label as _nearest_label
    from kicc_analysis.segmentation.geometry import side_of_components as _side_of_components

    labels = np.zeros((6, 30, 40), dtype=np.uint8)
    labels[:, 5:25, 3:17] = RIGHT
    labels[:, 5:25, 23:37] = LEFT
    where = np.zeros(labels.shape, dtype=bool)
    where[1:4, 25:28, 8:12] = True  # under the right lung only
    where[2:5, 10:14, 17:23] = True  # bridging the gap between both lungs
    where[0:2, 28:30, 30:34] = True  # touching no lung (two voxels below the left lung)
    expected = labels.copy()
    expected[where] = _nearest_label(labels, where)[where]
    np.testing.assert_array_equal(_side_of_components(labels, where), expected)


def _halo_slice(halo_hu: float, with_lung: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One slice: aerated lung (-850 HU) with a 6 x 6 dense component inside; the ring around it at ``halo_hu``."""
    hu = np.full((1, 30, 30), -850.0 if with_lung else 40.0)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[0, 2:28, 2:28] = RIGHT if with_lung else 0
    component = np.zeros(hu.shape, dtype=bool)
    component[0, 12:18, 12:18] = True
    hu[0, 8:22, 8:22] = halo_hu
    hu[component] = 30.0
    labels[component] = 0
    return component, labels, hu


PIXEL_2P7 = np.array([5.0, 2.7, 2.7])  # working spacing (z, y, x) mm: the halo skips one pixel


def test_halo_gate_keeps_dense_tissue_in_diseased_lung_only():
    from kicc_analysis.segmentation.dense_3d import _with_abnormal_halo

    for halo_hu, kept in ((-850.0, False), (-550.0, True), (-720.0, False), (-680.0, True)):
        component, labels, hu = _halo_slice(halo_hu)
        assert _with_abnormal_halo(component, labels, hu, PIXEL_2P7)[component].all() == kept, halo_hu
        assert not _with_abnormal_halo(component, labels, hu, PIXEL_2P7)[~component].any()
    component, labels, hu = _halo_slice(-850.0, with_lung=False)  # no aerated lung around: kept
    assert _with_abnormal_halo(component, labels, hu, PIXEL_2P7)[component].all()


def test_phantom_dense_recovery_helps(chest):
    ph, image, result = chest
    plain = sitk.GetArrayFromImage(segment_lungs(image, recover_dense=False).labels)
    labels = sitk.GetArrayFromImage(result.labels)
    consolidation = ph.lesion_labels == 2
    assert (consolidation & (labels > 0)).sum() > (consolidation & (plain > 0)).sum()
    assert result.qa["dense_recovered_ml"] > 0


def test_nan_image_is_rejected():
    array = np.full((4, 16, 16), -850.0, dtype=np.float32)
    array[0, 0, 0] = np.nan
    with pytest.raises(SegmentationError, match="non-finite"):
        segment_lungs(sitk.GetImageFromArray(array))


def test_no_lung_is_flagged_not_raised():
    image = sitk.GetImageFromArray(np.full((6, 32, 32), 40, dtype=np.int16))  # soft tissue block
    result = segment_lungs(image)
    assert sitk.GetArrayViewFromImage(result.labels).max() == 0
    assert "no_lung" in result.qa["flags"]


def test_phantom_rule_volumes_follow_the_3d_rule_list(chest):
    """qa["rule_added_ml"]: every 3-D rule in dense_rules order; the halo gate's entry is minus halo_dropped_ml."""
    from kicc_analysis.segmentation import dense_rules

    _, _, result = chest
    added = result.qa["rule_added_ml"]
    assert list(added) == [rule.name for rule in dense_rules("3d")]
    assert added["halo_gate"] == -result.qa["halo_dropped_ml"] <= 0.0
    assert all(value >= 0.0 for name, value in added.items() if name != "halo_gate")
    assert sum(added.values()) > 0.0


def test_lung_parameters_reject_unknown_rules_and_are_frozen():
    import dataclasses

    from kicc_analysis.errors import SegmentationError
    from kicc_analysis.segmentation import LungParameters

    with pytest.raises(SegmentationError, match="unknown rule name"):
        LungParameters(disabled_rules=frozenset({"bronchogram_2d"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        LungParameters().bone_hu = 150.0  # type: ignore[misc]
    assert not LungParameters(halo_gate=False).rule_enabled("halo_gate")


@pytest.mark.parametrize("side", [RIGHT, LEFT])
def test_ct64_one_lung_consolidated_keeps_left_and_right(ct64, side):
    """3-D left/right with one lung mostly consolidated (issue 16): in ct-64 the CIP voxels of one lung are set to
    +40 +- 15 HU (whole lung), or all but its most anterior 20 % (its aerated remnant). The other lung keeps its
    own label (measured: every voxel), the remnant carries the consolidated lung's label (469 / 465 mL), and the
    mask is marked low_confidence (one_lung / lr_ratio<0.5). The consolidated lung itself is not recovered (40 HU
    from the lateral wall to the mediastinum is not told from the chest wall or the liver by this method)."""
    folder, truth, _ = ct64
    image = load_ct(folder / "ct-64.nrrd")
    hu = sitk.GetArrayFromImage(image)
    rng = np.random.default_rng(0)
    other = LEFT if side == RIGHT else RIGHT
    rows = np.arange(hu.shape[1])[None, :, None]
    for keep_anterior in (0.0, 0.2):
        consolidated = truth == side
        if keep_anterior:
            ys = np.nonzero(consolidated)[1]
            consolidated &= rows >= np.percentile(ys, 100 * keep_anterior)
        array = hu.copy()
        array[consolidated] = (40 + rng.normal(0, 15, int(consolidated.sum()))).astype(array.dtype)
        modified = sitk.GetImageFromArray(array)
        modified.CopyInformation(image)
        seg = segment_lungs(modified)
        labels = sitk.GetArrayFromImage(seg.labels)
        assert (labels[(truth == other) & (labels > 0)] == other).mean() > 0.99
        remnant = (truth == side) & ~consolidated & (labels > 0)
        if keep_anterior:
            assert remnant.sum() > 0 and (labels[remnant] == side).mean() > 0.95
        assert seg.qa["low_confidence"]
        assert set(seg.qa["low_confidence_reasons"]) & {"one_lung", "lr_ratio<0.5"}
