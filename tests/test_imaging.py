"""Tests of kicc_analysis.imaging: load_ct on real DICOM/NRRD/NIfTI data and small synthetic series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import shared_path
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from kicc_analysis.errors import ImagingError, MissingCodecError
from kicc_analysis.imaging import AIR_HU, display_to_hu, estimate_display_window, get_load_report, load_ct


def test_ct64_dicom_and_nrrd_identical():
    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    dicom = load_ct(folder / "ct-64Dicom")
    nrrd = load_ct(folder / "ct-64.nrrd")
    assert dicom.GetSize() == nrrd.GetSize() == (64, 64, 79)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(dicom), sitk.GetArrayViewFromImage(nrrd))
    np.testing.assert_allclose(dicom.GetSpacing(), nrrd.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(dicom.GetOrigin(), nrrd.GetOrigin(), atol=1e-3)
    arr = sitk.GetArrayViewFromImage(dicom)
    assert arr.min() == -1007 and arr.max() == 1095  # SOURCE.txt HU range


def test_jpeg2000_series_matches_gdcm_decoder():
    folder = shared_path("data", "ct", "totalseg_example_ct", "example_ct_dicom")
    image = load_ct(folder)
    report = get_load_report(image)
    assert report.transfer_syntax == "1.2.840.10008.1.2.4.90"
    assert image.GetSize() == (512, 512, 20)
    assert image.GetSpacing()[2] == pytest.approx(2.0)
    # independent decoder: SimpleITK/GDCM
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = sitk.DICOMOrient(reader.Execute(), "LPS")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(reference))
    arr = sitk.GetArrayViewFromImage(image)
    assert arr.min() == -1024 and arr.max() == 1839  # SOURCE.txt


def test_nifti_is_reoriented_to_lps():
    path = shared_path("data", "ct", "totalseg_example_ct", "example_ct.nii.gz")
    image = load_ct(path)
    assert image.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    raw = sitk.ReadImage(str(path))
    # the RAS-stored file has x and y flipped: the LPS array is the raw array reversed along y and x
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(raw)[:, ::-1, ::-1])


def test_padding_minus_2048_set_to_air_and_reported():
    image = load_ct(shared_path("data", "ct", "lungmask_lidc_slice", "0.dcm"))
    arr = sitk.GetArrayViewFromImage(image)
    assert image.GetSize() == (512, 512, 1)
    assert arr.min() >= -1100
    report = get_load_report(image)
    assert report.padding_fraction == pytest.approx(0.215, abs=0.005)  # SOURCE.txt: 21.5 % of pixels
    assert any("outside the scan field" in w for w in report.warnings)


def test_padding_minus_3024_and_rescale_intercept():
    image = load_ct(shared_path("data", "ct", "cip_copdgene_crop", "simple_dicom"))
    arr = sitk.GetArrayViewFromImage(image)
    assert arr.min() == AIR_HU and arr.max() == 1219  # SOURCE: -3024..1219 after rescale
    assert image.GetSpacing()[2] == pytest.approx(0.625)


# ------------------------------------------------------------------ synthetic series (run everywhere)
def _write_slice(path, z, pixels, uid, syntax=ExplicitVRLittleEndian, tilt=None, intercept=-1024, position=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = uid
    ds.Modality = "CT"
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.8]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = 1
    if tilt is not None:
        ds.GantryDetectorTilt = tilt
    if position is not None:
        ds.PatientPosition = position
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_unsorted_missing_and_non_dicom_files(tmp_path):
    uid = generate_uid()
    positions = [0, 2, 4, 8, 10]  # slice at 6 mm missing
    rng = np.random.default_rng(0)
    for i, z in enumerate(reversed(positions)):  # written in reverse order, names unsorted
        _write_slice(tmp_path / f"x{rng.integers(1000)}_{i}", z, np.full((8, 8), 1024 + 10 * z), uid)
    (tmp_path / "notes.txt").write_text("not dicom")
    image = load_ct(tmp_path)
    report = get_load_report(image)
    assert image.GetSize() == (8, 8, 6)
    assert report.missing_slices == 1 and report.skipped_files == 1
    values = sitk.GetArrayViewFromImage(image)[:, 0, 0]
    np.testing.assert_allclose(values, [0, 20, 40, 60, 80, 100])  # HU = 10 * z, gap interpolated, ascending z


def test_gantry_tilt_reported(tmp_path):
    uid = generate_uid()
    for z in range(3):
        _write_slice(tmp_path / f"s{z}.dcm", z * 2.0, np.full((4, 4), 1000), uid, tilt=15.0)
    report = get_load_report(load_ct(tmp_path))
    assert report.gantry_tilt_deg == pytest.approx(15.0)
    assert any("tilt" in w for w in report.warnings)


@pytest.mark.parametrize("position", ["FFP", None])
def test_patient_position_reported(tmp_path, position):
    uid = generate_uid()
    for z in range(3):
        _write_slice(tmp_path / f"s{z}.dcm", z * 2.0, np.full((4, 4), 1000), uid, position=position)
    assert get_load_report(load_ct(tmp_path)).patient_position == (position or "")


def test_missing_codec_fails_early(tmp_path, monkeypatch):
    uid = generate_uid()
    _write_slice(tmp_path / "a.dcm", 0.0, np.zeros((4, 4)), uid)
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"  # JPEG-LS lossless: needs an optional plugin
    ds.PixelData = encapsulate([bytes(32)])  # placeholder frame; decoding must never be attempted
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "a.dcm")

    class _Unavailable:
        is_available = False
        missing_dependencies = ["pylibjpeg-libjpeg"]

    monkeypatch.setattr("pydicom.pixels.get_decoder", lambda uid: _Unavailable())
    with pytest.raises(MissingCodecError, match="pip install"):
        load_ct(tmp_path)


def test_bad_sources():
    with pytest.raises(ImagingError, match="not found"):
        load_ct("/nonexistent/ct")
    with pytest.raises(ImagingError, match="empty list"):
        load_ct([])


def test_display_to_hu_inverts_window():
    hu = display_to_hu(np.array([0, 127.5, 255]), level=-600, width=1500)
    np.testing.assert_allclose(hu, [-1350, -600, 150])
    with pytest.raises(ImagingError):
        display_to_hu(np.array([300]), level=-600, width=1500)
    with pytest.raises(ImagingError):
        display_to_hu(np.array([3]), level=-600, width=0)


def test_inconsistent_slice_size_is_an_error(tmp_path):
    uid = generate_uid()
    _write_slice(tmp_path / "a.dcm", 0.0, np.zeros((4, 4)), uid)
    _write_slice(tmp_path / "b.dcm", 1.0, np.zeros((5, 4)), uid)
    with pytest.raises(ImagingError, match="expected 4x4"):
        load_ct(tmp_path)


# ------------------------------------------------------------------ display window estimation (teaching images)
def _windowed(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip(np.rint((hu - (level - width / 2.0)) / width * 255.0), 0, 255).astype(np.uint8)


def test_estimate_display_window_literal_two_modes():
    # aerated lung -850 HU and soft tissue +40 HU shown in a -500 / 1400 window: modes at 64 and 226
    hu = np.full((60, 60), 40.0)
    hu[10:50, 5:28] = -850.0
    hu[10:50, 32:55] = -850.0
    level, width = estimate_display_window(_windowed(hu, -500.0, 1400.0))
    assert level == pytest.approx(-500.0, abs=10.0)
    assert width == pytest.approx(1400.0, rel=0.02)


@pytest.mark.parametrize("level, width", [(-600.0, 1500.0), (-400.0, 1200.0)])
def test_estimate_display_window_on_phantom_slice(level, width):
    phantom = pytest.importorskip("kicc_analysis.demo.phantom")
    ph = phantom.chest_phantom(shape=(1, 128, 128), seed=2)
    display = _windowed(ph.hu[0].astype(float), level, width)
    est_level, est_width = estimate_display_window(display)
    hu_back = display_to_hu(display, est_level, est_width)
    lung = ph.lung_labels[0] > 0
    assert np.median(hu_back[lung]) == pytest.approx(-850.0, abs=40.0)  # the anchor is recovered
    assert est_width == pytest.approx(width, rel=0.1)
    assert est_level == pytest.approx(level, abs=60.0)


def test_estimate_display_window_rejects_image_without_two_modes():
    with pytest.raises(ImagingError, match="lung-window"):
        estimate_display_window(np.full((20, 20), 200, dtype=np.uint8))
    with pytest.raises(ImagingError, match="empty"):
        estimate_display_window(np.array([]))


# ----------------------------------------------------------------------------------------------------------------------
# Issue 11 item 9: inputs that are not a CT series end in one line naming the file and what was expected.


def _series(tmp_path, n=3, **changes):
    uid = generate_uid()
    for z in range(n):
        _write_slice(tmp_path / f"s{z}.dcm", z * 2.0, np.full((4, 4), 1000), uid)
        if changes:
            ds = pydicom.dcmread(tmp_path / f"s{z}.dcm")
            for key, value in changes.items():
                if key == "TransferSyntaxUID":
                    ds.file_meta.TransferSyntaxUID = value
                else:
                    setattr(ds, key, value)
            ds.save_as(tmp_path / f"s{z}.dcm")
    return tmp_path


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"}, r"Modality MR.*expected CT"),
        ({"Modality": "CR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.1"}, r"Modality CR.*expected CT"),
        ({"TransferSyntaxUID": "1.2.3.4.5.6"}, r"transfer syntax 1\.2\.3\.4\.5\.6 is not a DICOM transfer syntax"),
    ],
)
def test_not_a_ct_series_is_named_with_its_file(tmp_path, changes, expected):
    folder = _series(tmp_path, **changes)
    with pytest.raises(ImagingError, match=expected) as exc:
        load_ct(folder)
    assert "s0.dcm" in _one_line(exc) or "s1.dcm" in _one_line(exc) or "s2.dcm" in _one_line(exc)


def test_mr_without_modality_attribute_is_rejected_by_sop_class(tmp_path):
    folder = _series(tmp_path, SOPClassUID="1.2.840.10008.5.1.4.1.1.4")
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        del ds.Modality
        ds.save_as(p)
    with pytest.raises(ImagingError, match=r"\.dcm: .*MR.*expected CT"):
        load_ct(folder)


def test_rgb_and_multi_frame_files_are_named_with_their_file(tmp_path):
    from pathlib import Path

    data = Path(pydicom.__file__).parent / "data" / "test_files"  # the installed wheel's files, never downloaded
    rgb, frames = data / "SC_rgb_small_odd.dcm", data / "rtdose.dcm"
    if not (rgb.exists() and frames.exists()):
        pytest.skip("pydicom's wheel has no SC_rgb_small_odd.dcm / rtdose.dcm")
    with pytest.raises(ImagingError, match=r"SC_rgb_small_odd\.dcm: Modality OT .*expected CT"):
        load_ct(rgb)
    ds = pydicom.dcmread(rgb)
    ds.Modality = "CT"  # an RGB screenshot labelled CT
    ds.save_as(tmp_path / "rgb.dcm")
    with pytest.raises(ImagingError, match=r"rgb\.dcm: 3 samples per pixel \(RGB\), expected a grayscale") as exc:
        load_ct(tmp_path / "rgb.dcm")
    _one_line(exc)
    with pytest.raises(ImagingError, match=r"rtdose\.dcm: .*(Modality RTDOSE|frames).*expected"):
        load_ct(frames)


def test_multi_frame_ct_is_named_with_its_file(tmp_path):
    folder = _series(tmp_path, n=1)
    ds = pydicom.dcmread(folder / "s0.dcm")
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(folder / "s0.dcm")
    with pytest.raises(ImagingError, match=r"s0\.dcm: multi-frame image \(2 frames\).*expected") as exc:
        load_ct(folder)
    _one_line(exc)
