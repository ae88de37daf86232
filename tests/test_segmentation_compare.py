"""compare_lung_masks: Dice, volumes and where two lung masks differ (kicc_analysis.segmentation.compare)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.errors import SegmentationError
from kicc_analysis.segmentation import load_lung_mask, segment_lungs
from kicc_analysis.segmentation.compare import PLACES, compare_lung_masks, disagreement_flags


def _scene():
    """A 2 mm chest: bone ring (cage), two aerated lungs, liver under the right lung, a dense patch in the left."""
    nz, ny, nx = 30, 100, 100
    hu = np.full((nz, ny, nx), -1000, dtype=np.int16)
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot((yy - 50) / 45.0, (xx - 50) / 45.0)
    hu[:, r < 1.0] = 40  # body
    hu[:, (r >= 0.82) & (r < 0.88)] = 500  # rib cage (a closed ring on every slice)
    a = np.zeros(hu.shape, np.uint8)
    a[10:, 30:70, 20:45] = 1
    a[10:, 30:70, 55:80] = 2
    hu[a > 0] = -850
    hu[:10, 30:70, 20:45] = 60  # liver below the right lung
    hu[20:25, 40:50, 60:70] = -50  # consolidation in the left lung (in both masks)
    b = a.copy()
    b[5:10, 30:70, 20:45] = 1  # b reaches 5 slices into the liver: below the diaphragm, 5*40*25 voxels
    dense = np.zeros(hu.shape, bool)
    dense[12:20, 45:55, 45:55] = True  # b takes mediastinal soft tissue: dense in the cage, 8*10*10
    b[dense] = 2
    hu[:, 45:55, 45:55] = np.where(dense[:, 45:55, 45:55], 30, hu[:, 45:55, 45:55])
    b[15:20, 48:52, 1:5] = 1  # b leaks outside the ring: outside the cage, 5*4*4
    a[12:14, 40:42, 46:48] = 0  # nothing: a and b agree there (already 0)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((2.0, 2.0, 2.0))
    images = []
    for arr in (a, b):
        image = sitk.GetImageFromArray(arr)
        image.CopyInformation(ct)
        images.append(image)
    return ct, images[0], images[1]


def test_places_of_disagreement_on_a_synthetic_chest():
    ct, a, b = _scene()
    table = compare_lung_masks(a, b, ct, names=("a", "b")).set_index("region")
    voxel_ml = 8.0 / 1000.0
    both = table.loc["both"]
    assert both["below_diaphragm_ml"] == pytest.approx(5 * 40 * 25 * voxel_ml)
    assert both["dense_in_cage_ml"] == pytest.approx(8 * 10 * 10 * voxel_ml)
    assert both["outside_cage_ml"] == pytest.approx(5 * 4 * 4 * voxel_ml)
    assert both["other_ml"] == pytest.approx(0.0)
    assert both["a_only_ml"] == 0 and both["b_only_ml"] == pytest.approx(sum(both[f"{p}_ml"] for p in PLACES))
    assert table.loc["left", "dense_in_cage_ml"] == pytest.approx(both["dense_in_cage_ml"])
    assert table.loc["right", "dense_in_cage_ml"] == 0
    assert both["volume_difference_ml"] == pytest.approx(-both["b_only_ml"])
    assert table.attrs["names"] == ("a", "b")
    assert disagreement_flags(table.reset_index()) == ["mask_disagreement"]  # b is 11 % larger
    assert disagreement_flags(compare_lung_masks(a, a, ct)) == []


def test_classical_mask_against_the_cip_reference_on_real_ct():
    """COPDGene ct-64 with CIP's lung label map (read as a label map with a mapping): Dice 0.986 (docs/ct.md)."""
    from kicc_analysis.imaging import load_ct

    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    ct = load_ct(folder / "ct-64.nrrd")
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd")))
    # CIP encoding value = type << 8 | region; regions 9-11 left thirds, 12-14 right thirds (ChestConventions.xml)
    mapping = {int(v): ("right" if (v & 255) >= 12 else "left") for v in np.unique(lm) if 9 <= (v & 255) <= 14}
    cip = load_lung_mask(folder / "lm-64.nrrd", ct, mapping=mapping)
    assert cip.qa["convention"] == "labelmap" and cip.qa["total_ml"] == pytest.approx(4554.2, abs=0.5)
    gated = compare_lung_masks(segment_lungs(ct), cip, ct).set_index("region")
    old = compare_lung_masks(segment_lungs(ct, halo_gate=False), cip, ct).set_index("region")
    assert gated.loc["both", "dice"] >= 0.984 and gated.loc[["right", "left"], "dice"].min() >= 0.98
    # lungs-1.5 (no halo gate) took in heart border and hilar tissue: the comparison puts it in dense_in_cage
    assert old.loc["both", "dense_in_cage_ml"] > 3 * gated.loc["both", "dense_in_cage_ml"]
    assert gated.loc["both", "outside_cage_ml"] < 0.1 * gated.loc["both", "a_only_ml"]
    for region in ("both", "right", "left"):
        row = gated.loc[region]
        assert row["a_only_ml"] + row["b_only_ml"] == pytest.approx(sum(row[f"{p}_ml"] for p in PLACES))
    assert disagreement_flags(gated.reset_index()) == []


def test_lobe_rows_and_grid_check(tmp_path):
    from kicc_analysis.demo.phantom import chest_phantom
    from kicc_analysis.segmentation import write_lung_mask

    ph = chest_phantom((24, 64, 64), (10.0, 5.0, 5.0), seed=1)
    ct = sitk.GetImageFromArray(ph.hu)
    ct.SetSpacing((5.0, 5.0, 10.0))
    lab, lob = sitk.GetImageFromArray(ph.lung_labels), sitk.GetImageFromArray(ph.lobe_labels)
    lab.CopyInformation(ct)
    lob.CopyInformation(ct)
    mask = load_lung_mask(write_lung_mask(lab, tmp_path / "m.nii.gz", lobes=lob), ct)
    table = compare_lung_masks(mask, mask, ct).set_index("region")
    assert list(table.index) == ["both", "right", "left", "RUL", "RML", "RLL", "LUL", "LLL"]
    assert (table["dice"] == 1.0).all() and (table["a_only_ml"] == 0).all()
    assert "RUL" not in compare_lung_masks(mask, lab, ct)["region"].tolist()  # lobes need both
    with pytest.raises(SegmentationError, match="read it with load_lung_mask"):
        compare_lung_masks(mask, sitk.GetImageFromArray(ph.lung_labels[:, :32]), ct)
