"""Lung and lobe masks from other tools: kicc_analysis.segmentation.external (load_lung_mask, write_lung_mask)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.errors import SegmentationError
from kicc_analysis.segmentation import load_lung_mask, write_lung_mask
from kicc_analysis.segmentation.external import CONVENTIONS, LOBES, TOTALSEG_LOBES

# TotalSegmentator's class maps, transcribed from totalsegmentator/map_to_binary.py (wasserth/TotalSegmentator,
# release 2.18.0, commit 0e65a448d557382b1e925276212b3bec7f5aff83): class_map["total"] (v2, also "total_v3") and
# class_map["total_v1"] -- the lung lobes only.
TOTAL_V2 = {10: "lung_upper_lobe_left", 11: "lung_lower_lobe_left", 12: "lung_upper_lobe_right",
            13: "lung_middle_lobe_right", 14: "lung_lower_lobe_right"}  # fmt: skip
TOTAL_V1 = {13: "lung_upper_lobe_left", 14: "lung_lower_lobe_left", 15: "lung_upper_lobe_right",
            16: "lung_middle_lobe_right", 17: "lung_lower_lobe_right"}  # fmt: skip
# lungmask README (JoHof/lungmask 0.2.20, commit 0653c7019200eb27253c540f731583466fc3c304): "Two label models
# (Left-Right): 1 = Right lung, 2 = Left lung. Five label models (Lung lobes): 1 = Left upper lobe, 2 = Left lower
# lobe, 3 = Right upper lobe, 4 = Right middle lobe, 5 = Right lower lobe"
LUNGMASK_LOBES = {1: "LUL", 2: "LLL", 3: "RUL", 4: "RML", 5: "RLL"}


def test_class_maps_are_the_published_ones():
    assert {v: TOTALSEG_LOBES[n] for v, n in TOTAL_V2.items()} == CONVENTIONS["totalsegmentator"]
    assert {v: TOTALSEG_LOBES[n] for v, n in TOTAL_V1.items()} == CONVENTIONS["totalsegmentator_v1"]
    assert CONVENTIONS["lungmask_lobes"] == LUNGMASK_LOBES
    assert CONVENTIONS["lungmask_r231"] == {1: "right", 2: "left"}


# ------------------------------------------------------------------------------------------- real example


def test_totalsegmentator_example_read_onto_the_ct_grid_voxel_by_voxel():
    """TotalSegmentator's own example: its v2 multi-label output on the lung bases, stored in RAS like its CT."""
    from kicc_analysis.imaging import load_ct

    folder = shared_path("data", "ct", "totalseg_example_ct")
    ct = load_ct(folder / "example_ct_sm.nii.gz")  # canonical LPS: the stored RAS array is flipped on x and y
    mask = load_lung_mask(folder / "example_seg.nii.gz", ct)
    raw_ct = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_ct_sm.nii.gz")))
    raw_seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    loaded = sitk.GetArrayViewFromImage(ct)
    # which axis flips turn the stored CT into load_ct's array (found from the data, not from our reader)
    flips = [f for f in itertools.product((False, True), repeat=3)
             if np.array_equal(np.flip(raw_ct, [a for a in range(3) if f[a]]), loaded)]  # fmt: skip
    assert len(flips) == 1 and flips[0] != (False, False, False)
    expected = np.flip(raw_seg, [a for a in range(3) if flips[0][a]])
    lobes = sitk.GetArrayViewFromImage(mask.lobes)
    for value, name in TOTAL_V2.items():
        code = LOBES.index(TOTALSEG_LOBES[name]) + 1
        assert np.array_equal(lobes == code, expected == value), name
    labels = sitk.GetArrayViewFromImage(mask.labels)
    assert np.array_equal(labels == 1, np.isin(expected, [12, 13, 14]))
    assert np.array_equal(labels == 2, np.isin(expected, [10, 11]))
    qa = mask.qa
    assert qa["convention"] == "totalsegmentator" and qa["grid"] == "same"
    voxel_ml = 27.0 / 1000.0
    assert qa["total_ml"] == pytest.approx(np.isin(raw_seg, list(TOTAL_V2)).sum() * voxel_ml)
    assert qa["lobe_ml"]["RLL"] == pytest.approx((raw_seg == 14).sum() * voxel_ml)
    assert "RUL" not in qa["lobes"] and "missing_lobes" in qa["flags"]  # lung bases: no right upper lobe
    assert "sides_swapped" not in qa["flags"] and qa["median_hu"] < -500


def test_totalsegmentator_example_dicom_series_is_not_on_the_nifti_frame():
    """The example's DICOM series uses scanner coordinates (z -804 mm); the NIfTI mask lies at z +94 mm: no overlap."""
    from kicc_analysis.imaging import load_ct

    folder = shared_path("data", "ct", "totalseg_example_ct")
    ct = load_ct(folder / "example_ct_dicom")
    with pytest.raises(SegmentationError, match="does not overlap the CT") as info:
        load_lung_mask(folder / "example_seg.nii.gz", ct)
    assert "\n" not in str(info.value) and "example_seg.nii.gz" in str(info.value)


# --------------------------------------------------------------------------------- phantom with lobe truth


@pytest.fixture(scope="module")
def phantom():
    from kicc_analysis.demo.phantom import chest_phantom

    ph = chest_phantom((24, 64, 64), (10.0, 5.0, 5.0), lesions="random", seed=0)
    ct = sitk.GetImageFromArray(ph.hu)
    ct.SetSpacing((5.0, 5.0, 10.0))
    ct.SetOrigin((-160.0, -150.0, -300.0))
    labels = sitk.GetImageFromArray(ph.lung_labels.astype(np.uint8))
    labels.CopyInformation(ct)
    lobes = sitk.GetImageFromArray(ph.lobe_labels.astype(np.uint8))
    lobes.CopyInformation(ct)
    return ct, labels, lobes, ph


def _same(mask, ph, *, lobes=True):
    assert np.array_equal(sitk.GetArrayViewFromImage(mask.labels), ph.lung_labels)
    if lobes:
        assert np.array_equal(sitk.GetArrayViewFromImage(mask.lobes), ph.lobe_labels)
    else:
        assert mask.lobes is None


@pytest.mark.parametrize(
    ("convention", "name", "has_lobes"),
    [
        ("totalsegmentator", "seg.nii.gz", True),
        ("totalsegmentator_v1", "seg.nii.gz", True),
        ("totalsegmentator_dir", "segmentations", True),
        ("lungmask_r231", "lungs.nrrd", False),
        ("lungmask_lobes", "lobes.mha", True),
    ],
)
@pytest.mark.parametrize("orientation", [None, "RAS"])
def test_every_convention_written_and_read_back_identically(tmp_path, phantom, convention, name, has_lobes,
                                                            orientation):  # fmt: skip
    ct, labels, lobes, ph = phantom
    path = write_lung_mask(labels, tmp_path / name, convention, lobes=lobes, orientation=orientation)
    explicit = load_lung_mask(path, ct, convention)
    _same(explicit, ph, lobes=has_lobes)
    assert explicit.qa["grid"] == "same" and explicit.qa["flags"] == []
    auto = load_lung_mask(path, ct)  # detected; v1 vs v2 told apart by the CT's HU under the labels
    _same(auto, ph, lobes=has_lobes)
    assert auto.qa["convention"] == convention
    if orientation == "RAS":
        direction = sitk.ReadImage(str(next(iter(sorted(path.glob("*.nii.gz")))) if path.is_dir() else str(path)))
        assert direction.GetDirection()[0] == -1.0  # really stored in RAS


def test_labelmap_with_a_user_mapping(tmp_path, phantom):
    ct, labels, lobes, ph = phantom
    mapping = {512: "RUL", 513: "RML", 514: "RLL", 768: "LUL", 769: "LLL"}  # e.g. a CIP-like lobe map
    path = write_lung_mask(labels, tmp_path / "map.nrrd", "labelmap", lobes=lobes, mapping=mapping)
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt16
    _same(load_lung_mask(path, ct, mapping=mapping), ph)
    with pytest.raises(SegmentationError, match="mapping entry 3: 'lingula'"):
        load_lung_mask(path, ct, "labelmap", mapping={3: "lingula"})
    with pytest.raises(SegmentationError, match="needs mapping"):
        load_lung_mask(path, ct, "labelmap")
    with pytest.raises(SegmentationError, match="no lung label"):
        load_lung_mask(path, ct, mapping={7: "right"})


def test_a_lungmask_file_written_by_hand(tmp_path, phantom):
    """A file laid out as lungmask writes it (values from its README), not written by our writer."""
    ct, _, _, ph = phantom
    lobes = np.zeros(ph.lobe_labels.shape, np.uint8)
    for value, lobe in LUNGMASK_LOBES.items():
        lobes[ph.lobe_labels == LOBES.index(lobe) + 1] = value
    image = sitk.GetImageFromArray(lobes)
    image.CopyInformation(ct)  # lungmask copies the input's geometry (result_out.CopyInformation(input_image))
    sitk.WriteImage(image, str(tmp_path / "ltrc.nii.gz"))
    mask = load_lung_mask(tmp_path / "ltrc.nii.gz", ct)
    assert mask.qa["convention"] == "lungmask_lobes"
    _same(mask, ph)
    right_left = np.where(np.isin(lobes, [3, 4, 5]), 1, np.where(lobes > 0, 2, 0)).astype(np.uint8)
    image = sitk.GetImageFromArray(right_left)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(tmp_path / "r231.nii.gz"))
    mask = load_lung_mask(tmp_path / "r231.nii.gz", ct)
    assert mask.qa["convention"] == "lungmask_r231" and mask.lobes is None
    _same(mask, ph, lobes=False)
    image = sitk.GetImageFromArray((3 - right_left) * (right_left > 0).astype(np.uint8))  # sides swapped
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(tmp_path / "swapped.nii.gz"))
    assert "sides_swapped" in load_lung_mask(tmp_path / "swapped.nii.gz", ct).qa["flags"]


def test_totalsegmentator_version_from_the_ct(tmp_path, phantom):
    """Without a header, v1 and v2 files are told apart by the HU under the lobe labels (other organs present)."""
    ct, labels, lobes, ph = phantom
    soft = (ph.hu > -100) & (ph.hu < 100) & (ph.lung_labels == 0)
    for convention, organ in (("totalsegmentator", 5), ("totalsegmentator_v1", 10)):  # liver (v2) / pancreas (v1)
        path = write_lung_mask(labels, tmp_path / f"{convention}.nii.gz", convention, lobes=lobes)
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        array[soft & (array == 0)] = organ
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(path))
        mask = load_lung_mask(path, ct)
        assert mask.qa["convention"] == convention, mask.qa["notes"]
        _same(mask, ph)


def test_dicom_seg_written_with_highdicom_and_read_back(tmp_path):
    """A DICOM SEG on a real DICOM series (CIP's COPDGene ct-64, 79 slices of 64 x 64), lobes as boxes."""
    from kicc_analysis.imaging import load_ct

    files = sorted(shared_path("data", "ct", "cip_copdgene_ct64", "ct-64Dicom").iterdir())
    ct = load_ct(files)
    nz, ny, nx = sitk.GetArrayViewFromImage(ct).shape
    lobes = np.zeros((nz, ny, nx), np.uint8)
    lobes[2:30, 10:50, 5:30] = 3  # RLL (patient right = small x)
    lobes[30:40, 10:50, 5:30] = 2  # RML
    lobes[40:70, 10:50, 5:30] = 1  # RUL
    lobes[3:35, 12:52, 34:60] = 5  # LLL
    lobes[35:71, 12:52, 34:60] = 4  # LUL
    lung = np.where(lobes >= 4, 2, np.where(lobes > 0, 1, 0)).astype(np.uint8)
    lob, lab = sitk.GetImageFromArray(lobes), sitk.GetImageFromArray(lung)
    lob.CopyInformation(ct)
    lab.CopyInformation(ct)
    path = write_lung_mask(lab, tmp_path / "seg.dcm", "dicom_seg", lobes=lob, ct_files=files)
    import highdicom as hd

    seg = hd.seg.segread(path)
    assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == [
        "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_upper_lobe_left",
        "lung_lower_lobe_left"]  # fmt: skip
    mask = load_lung_mask(path, ct)  # the frames cover slices 2-70 only: a sub-grid of the CT
    assert mask.qa["convention"] == "dicom_seg" and mask.qa["grid"] == "subgrid"
    assert np.array_equal(sitk.GetArrayViewFromImage(mask.lobes), lobes)
    assert np.array_equal(sitk.GetArrayViewFromImage(mask.labels), lung)
    folder = tmp_path / "folder"
    folder.mkdir()
    path.rename(folder / "1.dcm")
    assert load_lung_mask(folder, ct).qa["lobe_ml"] == mask.qa["lobe_ml"]
    # lungs only, recognised by SNOMED CT codes (lung + laterality) under non-descriptive labels
    write_lung_mask(lab, tmp_path / "lungs.dcm", "dicom_seg", ct_files=files)
    ds = hd.seg.segread(tmp_path / "lungs.dcm")
    for item in ds.SegmentSequence:
        item.SegmentLabel = f"segment {item.SegmentNumber}"
    ds.save_as(tmp_path / "coded.dcm")
    coded = load_lung_mask(tmp_path / "coded.dcm", ct, "dicom_seg")
    assert coded.lobes is None
    assert np.array_equal(sitk.GetArrayViewFromImage(coded.labels), lung)


# ------------------------------------------------------------------------------------------------ grids


def test_mask_on_another_grid_is_resampled_with_a_note(tmp_path, phantom):
    ct, labels, lobes, ph = phantom
    coarse = sitk.Image([40, 40, 30], sitk.sitkUInt8)  # 8 x 8 x 8 mm grid, origin off the CT's voxels
    coarse.SetSpacing((8.0, 8.0, 8.0))
    coarse.SetOrigin((-163.0, -152.0, -303.0))
    coarse = sitk.Resample(lobes, coarse, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    sitk.WriteImage(coarse, str(tmp_path / "coarse.nrrd"))
    mask = load_lung_mask(tmp_path / "coarse.nrrd", ct, "labelmap", mapping={i + 1: lobe for i, lobe in
                                                                               enumerate(LOBES)})  # fmt: skip
    assert mask.qa["grid"] == "resampled" and "mask_resampled" in mask.qa["flags"]
    assert any("resampled (nearest neighbour)" in note for note in mask.qa["notes"])
    truth = ph.lobe_labels
    got = sitk.GetArrayViewFromImage(mask.lobes)
    for code in range(1, 6):
        a, b = truth == code, got == code
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8, LOBES[code - 1]


def test_sub_grid_is_pasted_exactly_and_a_missing_part_is_reported(tmp_path, phantom):
    ct, labels, lobes, ph = phantom
    part = lobes[:, :, 4:20]  # slices 4-19 only
    sitk.WriteImage(part, str(tmp_path / "part.nii.gz"))
    mask = load_lung_mask(tmp_path / "part.nii.gz", ct, "lungmask_lobes")
    # lungmask_lobes reads our 1..5 codes as LUL.. -- only the geometry matters here
    got = sitk.GetArrayViewFromImage(mask.labels) > 0
    expected = np.zeros_like(got)
    expected[4:20] = ph.lobe_labels[4:20] > 0
    assert mask.qa["grid"] == "subgrid" and np.array_equal(got, expected)
    shifted = sitk.Image(lobes)
    shifted.SetOrigin((-160.0, -150.0, -300.0 + 10.0 * 12))  # half the mask beyond the CT's top slice
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    mask = load_lung_mask(tmp_path / "shifted.nii.gz", ct, "lungmask_lobes")
    assert "mask_partly_outside_ct" in mask.qa["flags"] and mask.qa["outside_ct_fraction"] > 0.3


def test_mask_that_misses_the_ct_is_a_one_line_error(tmp_path, phantom):
    ct, labels, _, _ = phantom
    far = sitk.Image(labels)
    far.SetOrigin((-160.0, -150.0, 900.0))
    sitk.WriteImage(far, str(tmp_path / "far.nii.gz"))
    with pytest.raises(SegmentationError, match="does not overlap the CT") as info:
        load_lung_mask(tmp_path / "far.nii.gz", ct)
    assert "\n" not in str(info.value) and "far.nii.gz" in str(info.value)
    with pytest.raises(SegmentationError, match="unknown mask convention 'nnunet'"):
        load_lung_mask(tmp_path / "far.nii.gz", ct, "nnunet")
    with pytest.raises(SegmentationError, match="not found"):
        load_lung_mask(tmp_path / "nothing.nii.gz", ct)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegmentationError, match="neither TotalSegmentator lobe files"):
        load_lung_mask(tmp_path / "empty", ct)


def test_result_quantifies_like_segment_lungs(phantom):
    """The result feeds quantify unchanged, and the lobe rows add up to the lung rows."""
    from kicc_analysis.quantification import quantify

    ct, labels, lobes, ph = phantom
    import tempfile
    from pathlib import Path

    path = write_lung_mask(labels, Path(tempfile.mkdtemp()) / "seg.nii.gz", "totalsegmentator", lobes=lobes)
    mask = load_lung_mask(path, ct)
    lab, qa = mask  # unpacks like segment_lungs
    table = quantify(ct, mask.labels, lobe_labels=mask.lobes).set_index("region")
    lobe_rows = table.loc[list(LOBES)]
    for column in ("volume_ml", "ggo_ml", "consolidation_ml"):
        assert lobe_rows[column].sum() == pytest.approx(table.loc["both", column])
    assert lobe_rows.loc[["RUL", "RML", "RLL"], "volume_ml"].sum() == pytest.approx(table.loc["right", "volume_ml"])
    assert table["lobe_score_total"].nunique() == 1
    assert table.loc["RUL", "lobe_score_total"] == lobe_rows["lobe_score"].sum()


def test_demo_lobe_truth_is_a_totalsegmentator_file(tmp_path):
    """The demo's lobe truth (kicc_analysis.demo.lobes) is read back as TotalSegmentator v2 onto the series grid."""
    from kicc_analysis.demo.dicom_writer import geometry_for
    from kicc_analysis.demo.lobes import TOTALSEG_TOTAL_LOBES, write_lobe_truth
    from kicc_analysis.demo.phantom import chest_phantom

    assert {v: LOBES[k - 1] for k, v in TOTALSEG_TOTAL_LOBES.items()} == CONVENTIONS["totalsegmentator"]
    ph = chest_phantom((24, 64, 64), (10.0, 5.0, 5.0), seed=3)
    geometry = geometry_for(ph, -250.0)
    assert write_lobe_truth(ph, geometry, tmp_path, "1.2.3", "soft_tissue") is None
    path = write_lobe_truth(ph, geometry, tmp_path, "1.2.3")
    assert path == tmp_path / "lobes" / "1.2.3.nii.gz"
    ct = sitk.GetImageFromArray(ph.hu)
    ct.SetSpacing(geometry.spacing_mm[::-1])
    ct.SetOrigin(geometry.origin_mm)
    mask = load_lung_mask(path, ct)
    assert mask.qa["convention"] == "totalsegmentator" and mask.qa["grid"] == "same"
    _same(mask, ph)


def test_find_series_mask_by_uid_then_by_series_path(tmp_path):
    from kicc_analysis.segmentation.external import find_series_mask

    (tmp_path / "dicom" / "S01" / "P1").mkdir(parents=True)
    (tmp_path / "dicom" / "S01" / "P1" / "CT2.nrrd").touch()
    assert find_series_mask(tmp_path, "1.2.3", "dicom/S01/P1/CT2") == tmp_path / "dicom" / "S01" / "P1" / "CT2.nrrd"
    (tmp_path / "1.2.3").mkdir()
    assert find_series_mask(tmp_path, "1.2.3", "dicom/S01/P1/CT2").name == "CT2.nrrd"  # empty folder: not a mask
    (tmp_path / "1.2.3" / "lung_upper_lobe_left.nii.gz").touch()
    assert find_series_mask(tmp_path, "1.2.3", "dicom/S01/P1/CT2") == tmp_path / "1.2.3"
    assert find_series_mask(tmp_path, "4.5.6", "../escape") is None
