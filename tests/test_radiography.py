"""Tests of kicc_analysis.radiography.load_radiograph on every real CR/DX file in ../shared/data/cxr/dicom and on
small synthetic data sets for the LUT variants the real files lack. Display values are checked against pydicom's
own ``apply_modality_lut`` / ``apply_voi_lut`` (the peer), scaled to 0-1 by the output range pydicom documents."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from conftest import shared_path
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from kicc_analysis.errors import ImagingError, KiccError, MissingCodecError
from kicc_analysis.radiography import Radiograph, load_radiograph

# file -> what the file is documented to be (../shared/data/cxr/dicom/SOURCE.txt and characterisation.json)
EXPECTED = {
    "fodicom_CR-MONO1-10-chest.dcm": dict(
        shape=(440, 440), view="PA", inverted=True, spacing=None, spacing_reason="no PixelSpacing", window="window"
    ),
    "fodicom_CR-ModalitySequenceLUT.dcm": dict(
        shape=(1576, 1976), view="", inverted=True, spacing=(0.15, 0.15), window="min-max"
    ),
    "fodicom_chrKoreanMulti.dcm": dict(error="no Pixel Data"),
    "highdicom_dx_image.dcm": dict(
        shape=(169, 211), view="", inverted=True, spacing=(1.2, 1.201199999999), window="window", burned="NO"
    ),
    "nccid_nih_cxr_dx_sc.dcm": dict(
        shape=(1024, 1024), view="", inverted=False, spacing=None, spacing_reason="Secondary Capture", window="min-max"
    ),
    "pydicom_dicomdir_CR1_6154.dcm": dict(
        shape=(16, 16), view="LL", inverted=True, spacing=(0.1, 0.1), window="window"
    ),
    "pydicomdata_RG1_J2KI.dcm": dict(
        shape=(1955, 1841), view="PA", inverted=True, spacing=None, spacing_reason="0.000", window="window"
    ),
    "wg04_RG2_JPLL.dcm": dict(shape=(2140, 1760), view="", inverted=False, spacing=(0.2, 0.2), window="window"),
}


def _dicom_dir():
    return shared_path("data", "cxr", "dicom")


def _peer_display(ds: Dataset, *, index: int = 0) -> np.ndarray:
    """pydicom's modality LUT + VOI LUT, scaled to 0-1, then the polarity of PS3.3 C.8.11.6.1.2."""
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    arr = ds.pixel_array
    modality = apply_modality_lut(arr, ds)
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[index]
        out = apply_voi_lut(modality, ds, index=index).astype(np.float64) / (2 ** int(item.LUTDescriptor[2]) - 1)
    elif "WindowCenter" in ds:
        # pydicom's documented output range of a window: [y_min, y_max] of the stored (or LUT) range, rescaled
        if "ModalityLUTSequence" in ds:
            y_min, y_max = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
        elif ds.PixelRepresentation == 0:
            y_min, y_max = 0.0, 2.0**ds.BitsStored - 1
        else:
            y_min, y_max = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
        if "RescaleSlope" in ds and "RescaleIntercept" in ds and "ModalityLUTSequence" not in ds:
            y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        out = (apply_voi_lut(modality, ds, index=index).astype(np.float64) - y_min) / (y_max - y_min)
    else:
        m = modality.astype(np.float64)
        out = (m - m.min()) / (m.max() - m.min())
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape", "") == "INVERSE":
        out = 1.0 - out
    return out


def test_every_shared_file_is_described():
    names = sorted(p.name for p in _dicom_dir().glob("*.dcm"))
    assert names == sorted(EXPECTED), "a file was added to or removed from ../shared/data/cxr/dicom: describe it here"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file(name):
    path = _dicom_dir() / name
    expected = EXPECTED[name]
    if "error" in expected:
        with pytest.raises(ImagingError) as info:
            load_radiograph(path)
        message = str(info.value)
        assert expected["error"] in message and name in message and "\n" not in message
        return
    try:
        xr = load_radiograph(path)
    except MissingCodecError as exc:  # only when a decoder is not installed: the message must say what to install
        assert name in str(exc) and "pip install" in str(exc) and "\n" not in str(exc)
        pytest.skip(f"decoder missing in this environment: {exc}")
    assert isinstance(xr, Radiograph)
    assert xr.shape == expected["shape"]
    assert xr.pixels.dtype == np.float32
    assert xr.view_position == expected["view"]
    assert xr.inverted is expected["inverted"]
    assert xr.window["kind"] == expected["window"]
    if expected["spacing"] is None:
        assert xr.spacing_mm is None
        assert expected["spacing_reason"] in xr.spacing_reason
    else:
        np.testing.assert_allclose(xr.spacing_mm, expected["spacing"], rtol=1e-9)
    assert xr.burned_in_annotation == expected.get("burned", "unknown")
    # the full LUT chain against the peer
    peer = _peer_display(pydicom.dcmread(path, force=True))
    np.testing.assert_allclose(xr.pixels, peer, atol=1e-6)
    assert 0.0 <= float(xr.pixels.min()) and float(xr.pixels.max()) <= 1.0


def test_missing_file_meta_is_inferred_and_noted():
    xr = load_radiograph(_dicom_dir() / "fodicom_CR-MONO1-10-chest.dcm")
    assert xr.transfer_syntax == ImplicitVRLittleEndian
    assert any("Implicit VR Little Endian" in note for note in xr.notes)
    # plain pydicom cannot decode it without help (the trait this file stands for)
    with pytest.raises(AttributeError):
        _ = pydicom.dcmread(_dicom_dir() / "fodicom_CR-MONO1-10-chest.dcm", force=True).pixel_array


def test_broken_spacing_is_rejected_with_reason():
    ds = pydicom.dcmread(_dicom_dir() / "pydicomdata_RG1_J2KI.dcm", stop_before_pixels=True)
    assert [float(v) for v in ds.PixelSpacing] == [0.0, 0.0]
    ds.PixelData = b""  # header checks do not need the pixels
    from kicc_analysis.radiography import _spacing

    notes: list[str] = []
    spacing, source, reason, factor = _spacing(ds, notes)
    assert spacing is None and source == "" and factor is None
    assert reason == "PixelSpacing '0.000\\0.000' is not positive"
    assert notes == ["PixelSpacing '0.000\\0.000' is not positive: ignored"]


def test_secondary_capture_dx_is_noted():
    xr = load_radiograph(_dicom_dir() / "nccid_nih_cxr_dx_sc.dcm")
    assert xr.modality == "DX" and xr.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
    assert any("Secondary Capture object with modality DX" in note for note in xr.notes)


def test_modality_lut_sequence_file_uses_the_sequence():
    path = _dicom_dir() / "fodicom_CR-ModalitySequenceLUT.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    raw = ds.ModalityLUTSequence[0].LUTData
    lut = np.frombuffer(raw, dtype="<u2").astype(float) if isinstance(raw, bytes) else np.asarray(raw, dtype=float)
    assert lut.size == 1024 and not np.allclose(lut, np.arange(1024))  # a real, non-identity LUT
    try:
        xr = load_radiograph(path)
    except MissingCodecError:
        pytest.skip("JPEG lossless decoder not installed")
    # a pixel's display value = 1 - (LUT[stored] - min) / (max - min) over the image (MONOCHROME1, min-max window)
    stored = pydicom.dcmread(path).pixel_array
    values = lut[stored]
    expected = 1.0 - (values - values.min()) / (values.max() - values.min())
    np.testing.assert_allclose(xr.pixels[::97, ::89], expected[::97, ::89], atol=1e-6)


# --------------------------------------------------------------------------- synthetic data sets


def _dataset(pixels: np.ndarray, **elements) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    signed = pixels.dtype.kind == "i"
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = elements.pop("BitsStored", ds.BitsAllocated)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    return ds


@pytest.fixture
def ramp():
    return np.arange(0, 4096, 4, dtype=np.uint16).reshape(32, 32)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_match_pydicom(ramp, function):
    ds = _dataset(ramp, BitsStored=12, WindowCenter=1500, WindowWidth=1000, VOILUTFunction=function)
    xr = load_radiograph(ds)
    assert xr.window["function"] == function
    np.testing.assert_allclose(xr.pixels, _peer_display(ds), atol=1e-6)


def test_several_windows_pick_by_index(ramp):
    ds = _dataset(
        ramp,
        BitsStored=12,
        WindowCenter=[2048, 900],
        WindowWidth=[4096, 600],
        WindowCenterWidthExplanation=["FULL", "LUNG"],
        RescaleSlope=2,
        RescaleIntercept=-100,
    )
    first = load_radiograph(ds)
    second = load_radiograph(ds, voi_index=1)
    assert first.window["center"] == 2048 and second.window["explanation"] == "LUNG"
    assert any("2 windows" in note and "LUNG" in note for note in second.notes)
    np.testing.assert_allclose(first.pixels, _peer_display(ds, index=0), atol=1e-6)
    np.testing.assert_allclose(second.pixels, _peer_display(ds, index=1), atol=1e-6)
    with pytest.raises(ImagingError, match="window number 2 requested, the file has 2"):
        load_radiograph(ds, voi_index=2)


def _voi_lut_dataset(ramp, bits: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [256, 1000, bits]
    top = 2**bits - 1
    item.LUTData = [int(v) for v in (np.linspace(0, 1, 256) ** 1.2) * top]
    item.LUTExplanation = "GAMMA"
    ds = _dataset(ramp, BitsStored=12, WindowCenter=2048, WindowWidth=4096)
    ds.VOILUTSequence = Sequence([item])
    return ds


def test_voi_lut_sequence_matches_pydicom(ramp):
    ds = _voi_lut_dataset(ramp, 16)
    xr = load_radiograph(ds)
    assert xr.window["kind"] == "voi_lut_sequence" and xr.window["explanation"] == "GAMMA"
    np.testing.assert_allclose(xr.pixels, _peer_display(ds), atol=1e-6)
    windowed = load_radiograph(ds, prefer_lut=False)
    assert windowed.window["kind"] == "window"


def test_8bit_voi_lut_clamps_beyond_last_entry(ramp):
    # PS3.3 C.11.2.1.1: input values beyond the last entry map to the last entry. pydicom 3.0.2 indexes an 8-bit
    # VOI LUT with a uint8 array, so inputs >= first mapped + 256 wrap around; compare only where it does not.
    ds = _voi_lut_dataset(ramp, 8)
    xr = load_radiograph(ds)
    inside = ramp < 1000 + 256
    np.testing.assert_allclose(xr.pixels[inside], _peer_display(ds)[inside], atol=1e-6)
    assert np.all(xr.pixels[~inside] == np.float32(1.0)) and (~inside).sum() > 0


def test_modality_lut_sequence_then_window_matches_pydicom(ramp):
    item = Dataset()
    item.LUTDescriptor = [2048, 512, 16]
    item.LUTData = [int(v) for v in np.sqrt(np.arange(2048) / 2047) * 4095]
    item.ModalityLUTType = "OD"
    ds = _dataset(ramp, BitsStored=12, WindowCenter=2500, WindowWidth=2000)
    ds.ModalityLUTSequence = Sequence([item])
    np.testing.assert_allclose(load_radiograph(ds).pixels, _peer_display(ds), atol=1e-6)


def test_signed_pixels_with_rescale_match_pydicom():
    pixels = np.arange(-512, 512, dtype=np.int16).reshape(32, 32)
    ds = _dataset(pixels, BitsStored=12, RescaleSlope=0.5, RescaleIntercept=10, WindowCenter=0, WindowWidth=300)
    xr = load_radiograph(ds)
    np.testing.assert_allclose(xr.pixels, _peer_display(ds), atol=1e-6)


def test_presentation_lut_shape_inverse_on_monochrome2(ramp):
    ds = _dataset(ramp, BitsStored=12, WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE")
    xr = load_radiograph(ds)
    plain = load_radiograph(_dataset(ramp, BitsStored=12, WindowCenter=2048, WindowWidth=4096))
    assert xr.inverted and not plain.inverted
    np.testing.assert_allclose(xr.pixels, 1.0 - plain.pixels, atol=1e-7)
    assert any("MONOCHROME2 with Presentation LUT Shape INVERSE" in note for note in xr.notes)


def test_monochrome1_with_inverse_is_inverted_once(ramp):
    ds = _dataset(ramp, BitsStored=12, WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE")
    ds.PhotometricInterpretation = "MONOCHROME1"
    xr = load_radiograph(ds)
    assert float(xr.pixels[0, 0]) == pytest.approx(1.0) and float(xr.pixels[-1, -1]) < 0.01


@pytest.mark.parametrize(
    ("elements", "spacing", "source", "factor"),
    [
        (
            {"ImagerPixelSpacing": [0.15, 0.15], "DistanceSourceToDetector": 1800, "DistanceSourceToPatient": 1500},
            (0.125, 0.125),
            "ImagerPixelSpacing/magnification",
            1.2,
        ),
        (
            {
                "ImagerPixelSpacing": [0.2, 0.2],
                "EstimatedRadiographicMagnificationFactor": 1.1,
                "DistanceSourceToDetector": 1800,
                "DistanceSourceToPatient": 1500,
            },
            (0.2 / 1.1, 0.2 / 1.1),
            "ImagerPixelSpacing/magnification",
            1.1,
        ),
        ({"ImagerPixelSpacing": [0.2, 0.2]}, (0.2, 0.2), "ImagerPixelSpacing", None),
        (
            {
                "PixelSpacing": [0.143, 0.143],
                "ImagerPixelSpacing": [0.16, 0.16],
                "PixelSpacingCalibrationType": "GEOMETRY",
            },
            (0.143, 0.143),
            "PixelSpacing",
            None,
        ),
        (
            {"PixelSpacing": ["0.000", "0.000"], "ImagerPixelSpacing": [0.16, 0.16]},
            (0.16, 0.16),
            "ImagerPixelSpacing",
            None,
        ),
        ({"PixelSpacing": [0.1]}, None, "", None),
    ],
)
def test_spacing_rules(ramp, elements, spacing, source, factor):
    xr = load_radiograph(_dataset(ramp, BitsStored=12, **elements))
    assert xr.spacing_source == source
    assert xr.magnification == (pytest.approx(factor) if factor else None)
    if spacing is None:
        assert xr.spacing_mm is None and "not two numbers" in xr.spacing_reason
    else:
        np.testing.assert_allclose(xr.spacing_mm, spacing, rtol=1e-12)


def test_view_from_view_code_sequence(ramp):
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399348003", "SCT", "antero-posterior"
    ds = _dataset(ramp, BitsStored=12, ImageLaterality="B")
    ds.ViewCodeSequence = Sequence([code])
    xr = load_radiograph(ds)
    assert xr.view_position == "AP" and xr.laterality == "B"


def test_jpeg_ls_round_trip(ramp, tmp_path):
    from pydicom.pixels import get_encoder
    from pydicom.uid import JPEGLSLossless

    if not get_encoder(JPEGLSLossless).is_available:
        pytest.skip("no JPEG-LS encoder (pyjpegls) installed to make the test file")
    ds = _dataset(ramp, BitsStored=12, WindowCenter=1500, WindowWidth=1000)
    ds.compress(JPEGLSLossless)
    path = tmp_path / "jls.dcm"
    ds.save_as(path, enforce_file_format=True)
    xr = load_radiograph(path)
    assert xr.transfer_syntax == JPEGLSLossless
    np.testing.assert_allclose(
        xr.pixels, load_radiograph(_dataset(ramp, BitsStored=12, WindowCenter=1500, WindowWidth=1000)).pixels, atol=0
    )


def test_missing_decoder_is_one_line_with_install_hint(ramp, tmp_path, monkeypatch):
    from pydicom.uid import JPEGLSLossless

    ds = _dataset(ramp, BitsStored=12)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless

    class Unavailable:
        is_available = False

    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(MissingCodecError) as info:
        load_radiograph(ds)
    message = str(info.value)
    assert "JPEG-LS" in message and "pip install pyjpegls" in message and "\n" not in message


def test_raster_teaching_file():
    from PIL import Image

    path = shared_path("data", "cxr", "images", "0.jpg")
    xr = load_radiograph(path)
    with Image.open(path) as img:
        expected = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    np.testing.assert_allclose(xr.pixels, expected, atol=1e-7)
    assert xr.spacing_mm is None and "no pixel spacing" in xr.spacing_reason
    assert xr.window == {"kind": "none"} and xr.burned_in_annotation == "unknown"


def test_png_without_suffix_and_garbage(tmp_path):
    from PIL import Image

    arr = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    Image.fromarray(arr).save(tmp_path / "teaching.png")
    (tmp_path / "teaching.png").rename(tmp_path / "teaching.bin")
    xr = load_radiograph(tmp_path / "teaching.bin")
    np.testing.assert_allclose(xr.pixels, arr / 255.0, atol=1e-7)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(KiccError) as info:
        load_radiograph(tmp_path / "notes.txt")
    assert "notes.txt" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImagingError, match="not found"):
        load_radiograph(tmp_path / "absent.dcm")


def test_reexported_from_imaging():
    from kicc_analysis import imaging

    assert imaging.load_radiograph is load_radiograph


def test_docstring_examples_run():
    import doctest

    import kicc_analysis.radiography as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
