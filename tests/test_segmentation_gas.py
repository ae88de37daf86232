"""Abdominal gas is not lung (lungs-1.4, ``_drop_abdominal_gas``); emphysematous lung is kept."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path
from scipy import ndimage

from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import LEFT, RIGHT, segment_lungs

phantom = pytest.importorskip("kicc_analysis.demo.phantom")

TS = ("data", "ct", "totalseg_example_ct")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _image(hu: np.ndarray, spacing_zyx) -> sitk.Image:
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return image


# ------------------------------------------------------------------------------------------- real data (../shared)
@pytest.fixture(scope="module")
def totalseg_nifti():
    image = load_ct(shared_path(*TS, "example_ct.nii.gz"))
    return image, segment_lungs(image)


def test_totalseg_gas_is_not_lung(totalseg_nifti):
    """Abdomen/pelvis CT (112 slices of 3 mm): the lung bases lie in its top 12 slices (z 100-111, measured on the
    images: liver dome below them); stomach and colon gas (z 55-111, anterior) must not be labelled."""
    image, seg = totalseg_nifti
    labels = sitk.GetArrayFromImage(seg.labels)
    hu = sitk.GetArrayFromImage(image)
    z = np.flatnonzero(labels.any(axis=(1, 2)))
    assert z.size and z.min() >= labels.shape[0] - 12  # every labelled voxel lies in the top 12 slices (36 mm)
    # lungs-1.3 labelled 578 mL (stomach + colon gas); the two lung bases are about 116 mL
    assert 60.0 <= seg.qa["total_ml"] <= 200.0
    assert seg.qa["dropped_gas_ml"] > 250.0
    assert all(d["posterior_share"] < 0.1 and d["interior_median_hu"] < -940 for d in seg.qa["dropped_gas"])
    # both bases found, right lung on the patient's right (smaller x in LPS), posterior to the trunk middle
    assert seg.qa["right_ml"] > 20.0 and seg.qa["left_ml"] > 20.0
    right_x = np.nonzero(labels == RIGHT)[2].mean()
    left_x = np.nonzero(labels == LEFT)[2].mean()
    assert right_x < left_x
    lung_y = np.nonzero(labels > 0)[1].mean()
    body_y = np.nonzero(hu[z.min() :] > -400)[1]
    assert lung_y > (body_y.min() + body_y.max()) / 2.0
    # labelled voxels are parenchyma, not gas: almost none is as dark as the stomach gas (< -950 HU)
    assert float(np.mean(hu[labels > 0] < -950)) < 0.05
    assert "no_lung_gas_only" not in seg.qa["flags"]


def test_totalseg_subset_matches_totalsegmentator_lungs():
    """``example_ct_sm`` (top 30 slices of the same scan) against TotalSegmentator's own lung prediction
    (``example_seg``, labels 10-14; a model output, not a manual mask). lungs-1.4 measures Dice 0.965."""
    image = load_ct(shared_path(*TS, "example_ct_sm.nii.gz"))
    reference = sitk.GetArrayFromImage(load_ct(shared_path(*TS, "example_seg.nii.gz")))
    reference = (reference >= 10) & (reference <= 14)
    seg = segment_lungs(image)
    labels = sitk.GetArrayFromImage(seg.labels) > 0
    assert labels.shape == reference.shape
    assert dice(labels, reference) >= 0.9
    assert seg.qa["dropped_gas_ml"] > 100.0


def test_totalseg_dicom_gas_only_is_flagged():
    """The 20-slice DICOM copy (upper abdomen under the lung bases): only stomach/colon gas -> empty and flagged."""
    seg = segment_lungs(load_ct(shared_path(*TS, "example_ct_dicom")))
    assert seg.qa["total_ml"] == 0.0
    assert "no_lung" in seg.qa["flags"] and "no_lung_gas_only" in seg.qa["flags"]
    assert seg.qa["dropped_gas_ml"] > 10.0


# ------------------------------------------------------------------------------------------------ synthetic
@pytest.fixture(scope="module")
def healthy():
    ph = phantom.chest_phantom(seed=0)
    return ph, segment_lungs(_image(ph.hu, ph.spacing_mm))


def test_emphysematous_lung_is_kept(healthy):
    """Parenchyma shifted to about -980 HU (most voxels below -950: severe emphysema) is still lung: the gas rule
    needs an anterior-only component, and lungs reach the posterior half of the trunk."""
    ph, normal = healthy
    hu = ph.hu.astype(np.float64)
    parenchyma = (ph.lung_labels > 0) & (hu < -600)
    rng = np.random.default_rng(1)
    hu[parenchyma] = -980.0 + rng.normal(0.0, 15.0, int(parenchyma.sum()))
    assert np.mean(hu[ph.lung_labels > 0] < -950) > 0.8
    seg = segment_lungs(_image(np.clip(hu, -1024, 3071), ph.spacing_mm))
    labels = sitk.GetArrayFromImage(seg.labels)
    assert seg.qa["dropped_gas_ml"] == 0.0
    assert dice(labels > 0, ph.lung_labels > 0) >= 0.95
    assert seg.qa["right_ml"] > 0.9 * normal.qa["right_ml"] and seg.qa["left_ml"] > 0.9 * normal.qa["left_ml"]
    assert "no_lung_gas_only" not in seg.qa["flags"]


def _anterior_pocket(ph, wall_hu: float, interior_hu: float) -> tuple[np.ndarray, np.ndarray]:
    """An air pocket in the anterior upper abdomen under the lungs (z 0-5, soft tissue in the phantom) with a
    one-voxel partial-volume wall, like stomach gas."""
    zz, yy, xx = np.ogrid[: ph.hu.shape[0], : ph.hu.shape[1], : ph.hu.shape[2]]
    pocket = ((zz - 2.5) / 3.0) ** 2 + ((yy - 37) / 8.0) ** 2 + ((xx - 70) / 24.0) ** 2 <= 1.0
    assert not (pocket & (ph.lung_labels > 0)).any()
    hu = ph.hu.astype(np.float64)
    rng = np.random.default_rng(2)
    hu[pocket] = interior_hu + rng.normal(0.0, 15.0, int(pocket.sum()))
    wall = pocket & ~ndimage.binary_erosion(pocket)
    hu[wall] = wall_hu
    return np.clip(hu, -1024, 3071), pocket


def test_anterior_gas_pocket_is_dropped(healthy):
    ph, normal = healthy
    hu, pocket = _anterior_pocket(ph, wall_hu=-600.0, interior_hu=-1000.0)
    assert hu[pocket].mean() >= -960  # the lungs-1.3 rule (mean < -960 HU) would keep this pocket
    seg = segment_lungs(_image(hu, ph.spacing_mm))
    labels = sitk.GetArrayFromImage(seg.labels)
    assert not (labels[pocket] > 0).any()
    voxel_ml = float(np.prod(ph.spacing_mm)) / 1000.0
    assert seg.qa["dropped_gas_ml"] == pytest.approx(pocket.sum() * voxel_ml, rel=0.1)
    assert np.array_equal(labels, sitk.GetArrayFromImage(normal.labels))  # the lungs themselves are untouched


def test_anterior_aerated_component_is_kept(healthy):
    """An anterior-only component of aerated-lung density (-820 HU: the aerated anterior lung left when the
    dependent lung is consolidated) is not gas: the rule also needs a pure-air interior (< -940 HU)."""
    ph, _ = healthy
    hu, pocket = _anterior_pocket(ph, wall_hu=-600.0, interior_hu=-820.0)
    seg = segment_lungs(_image(hu, ph.spacing_mm))
    assert seg.qa["dropped_gas_ml"] == 0.0
    assert (sitk.GetArrayFromImage(seg.labels)[pocket] > 0).mean() > 0.5


@pytest.mark.parametrize("position", ["HFP", "FFDL"])
def test_gas_rule_off_when_not_supine(healthy, position):
    """The gas rule assumes gas rises anteriorly (supine). For a prone or decubitus scan it is not applied: the
    pocket is not dropped, and the QA flag says so (it may be labelled lung)."""
    ph, _ = healthy
    hu, pocket = _anterior_pocket(ph, wall_hu=-600.0, interior_hu=-1000.0)
    supine = segment_lungs(_image(hu, ph.spacing_mm), patient_position="HFS")
    assert supine.qa["dropped_gas_ml"] > 0 and "gas_rule_off_not_supine" not in supine.qa["flags"]
    other = segment_lungs(_image(hu, ph.spacing_mm), patient_position=position)
    assert other.qa["dropped_gas_ml"] == 0.0 and other.qa["dropped_gas"] == []
    assert "gas_rule_off_not_supine" in other.qa["flags"] and other.qa["patient_position"] == position


def test_patient_position_from_the_load_report(healthy):
    """segment_lungs reads PatientPosition from load_ct's report (image metadata) when none is given; the DICOM
    side (load_ct filling the report) is tested in tests/test_imaging.py."""
    from kicc_analysis.imaging import REPORT_KEY, LoadReport

    ph, _ = healthy
    hu, _ = _anterior_pocket(ph, wall_hu=-600.0, interior_hu=-1000.0)
    image = _image(hu, ph.spacing_mm)
    image.SetMetaData(REPORT_KEY, LoadReport(source="series", kind="dicom", patient_position="FFP").to_json())
    seg = segment_lungs(image)
    assert seg.qa["patient_position"] == "FFP" and "gas_rule_off_not_supine" in seg.qa["flags"]
    assert seg.qa["dropped_gas_ml"] == 0.0
