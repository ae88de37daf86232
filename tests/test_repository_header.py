"""The fast header reader gives the same values as pydicom, and reports bad files instead of raising."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from kicc_analysis.repository.header import HEADER_FIELDS, read_header, read_header_pydicom
from kicc_analysis.repository.synthetic import write_scanner_like_tree

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _same(path: Path) -> dict:
    fast = read_header(path)
    ref = read_header_pydicom(path)
    assert fast.error is None, (path, fast.error)
    assert ref.error is None, (path, ref.error)
    a = {k: v for k, v in fast.record.items() if k != "parser"}
    b = {k: v for k, v in ref.record.items() if k != "parser"}
    assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    return fast.record


def _real_dicom_files() -> list[Path]:
    root = shared_path("data", "ct")
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and (p.suffix == ".dcm" or p.parent.name == "example_ct_dicom")
    ]
    # ct64 79 + crop 2 + LIDC 2 + TotalSegmentator 20 + COVID-19-NY-SBU 30 single slices
    assert len(files) == 2 + 79 + 2 + 20 + 30
    return files


def test_fast_parser_matches_pydicom_on_every_real_file():
    files = _real_dicom_files()
    for path in files:
        rec = _same(path)
        # none of the real files needs the pydicom fallback
        assert rec["parser"] == "fast", path
    assert set(_same(files[0])) == set(HEADER_FIELDS)


def test_real_file_values_match_source_txt():
    root = shared_path("data", "ct")
    copd = read_header(root / "cip_copdgene_crop" / "simple_dicom" / "slice001.dcm").record
    assert copd["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert copd["pixel_spacing"] == (0.703125, 0.703125)
    assert copd["image_position"][2] == -286.75
    assert copd["rescale_intercept"] == -1024.0
    assert copd["manufacturer"] == "GE MEDICAL SYSTEMS"
    assert copd["pixel_representation"] == 1 and copd["pixel_padding_value"] == -2000  # SS in the header
    ct64 = read_header(root / "cip_copdgene_ct64" / "ct-64Dicom" / "IMG0001.dcm").record
    assert ct64["transfer_syntax"] == "1.2.840.10008.1.2"  # implicit VR
    assert ct64["rows"] == 64 and ct64["columns"] == 64
    assert ct64["slice_thickness"] == pytest.approx(3.98734)
    assert ct64["pixel_spacing"] == (4.171872, 4.171872)
    lidc = read_header(root / "lungmask_lidc_slice" / "0.dcm").record
    assert lidc["modality"] is None and lidc["patient_id"] is None  # sparse header
    assert lidc["sop_class_uid"] == CT_IMAGE
    assert lidc["pixel_spacing"] == (0.625, 0.625)
    j2k = sorted((root / "totalseg_example_ct" / "example_ct_dicom").iterdir())[0]
    ts = read_header(j2k).record
    assert ts["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert ts["kernel"] == "Br38f\\3"
    assert ts["series_uid"] is None and ts["sop_uid"] is None  # emptied by the anonymiser
    assert ts["media_sop_uid"].startswith("1.3.12.2.1107.5.1.4.60064")


def test_fast_parser_matches_pydicom_on_scanner_like_tree(tmp_path):
    paths = write_scanner_like_tree(tmp_path, 150, seed=3, slices_per_series=(12, 20), radiograph_fraction=0.05)
    assert len(paths) >= 150
    vendors = set()
    for p in paths:
        rec = _same(p)
        assert rec["parser"] == "fast"
        vendors.add((rec["manufacturer"], rec["transfer_syntax"]))
    # GE explicit, Siemens implicit, Philips explicit (undefined-length sequences) all covered
    assert ("GE", "1.2.840.10008.1.2.1") in vendors
    assert ("SIEMENS", "1.2.840.10008.1.2") in vendors
    assert ("PHILIPS", "1.2.840.10008.1.2.1") in vendors


def _dataset(**extra) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = extra.pop("charset", "ISO_IR 100")
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.Modality = "CT"
    ds.PatientID = "KICC-S01-0001"
    ds.SeriesDescription = extra.pop("description", "Thorax 1.0 B70f")
    ds.SliceThickness = "1.25"
    ds.ConvolutionKernel = "LUNG"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.InstanceNumber = "7"
    ds.ImagePositionPatient = ["-150.5", "-170.25", "-42.125"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.Rows = 4
    ds.Columns = 4
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.BitsAllocated = 16
    ds.SamplesPerPixel = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def _write(ds: Dataset, path: Path, ts: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("ts", "parser"),
    [
        (ExplicitVRLittleEndian, "fast"),
        (ImplicitVRLittleEndian, "fast"),
        (ExplicitVRBigEndian, "pydicom"),
        (DeflatedExplicitVRLittleEndian, "fast"),  # inflated in a stream, capped
    ],
)
def test_transfer_syntaxes_and_fallback(tmp_path, ts, parser):
    path = _write(_dataset(), tmp_path / "x.dcm", ts)
    rec = read_header(path).record
    assert rec["parser"] == parser
    assert rec["transfer_syntax"] == ts
    assert rec["image_position"] == (-150.5, -170.25, -42.125)
    assert rec["slice_thickness"] == 1.25
    assert rec["instance_number"] == 7
    assert rec["rows"] == 4
    assert rec["kernel"] == "LUNG"
    assert rec["patient_id"] == "KICC-S01-0001"


def test_non_latin_character_set_decoded_like_pydicom(tmp_path):
    ds = _dataset(charset="ISO_IR 192", description="흉부 CT 폐")  # UTF-8 Korean description
    path = _write(ds, tmp_path / "k.dcm", ExplicitVRLittleEndian)
    rec = _same(path)
    assert rec["series_description"] == "흉부 CT 폐"


def _element(group: int, elem: int, vr: bytes, value: bytes, undefined: bool = False) -> bytes:
    length = 0xFFFFFFFF if undefined else len(value)
    if vr in (b"OB", b"SQ", b"UN", b"UT", b"OW"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, length) + value
    return struct.pack("<HH2sH", group, elem, vr, length) + value


def test_un_vr_undefined_length_private_sequence_is_skipped(tmp_path):
    """A private sequence stored as UN with undefined length (implicit VR inside), as anonymisers leave them."""
    meta_body = _element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\x00")
    meta = _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    inner = struct.pack("<HHI", 0x0019, 0x1001, 4) + b"ABCD"  # implicit VR element inside the item
    nested_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    # item containing a nested undefined-length implicit sequence
    nested_seq = struct.pack("<HHI", 0x0019, 0x1002, 0xFFFFFFFF) + nested_item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + nested_seq + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq = item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    body = (
        _element(0x0008, 0x0016, b"UI", CT_IMAGE.encode())
        + _element(0x0008, 0x0018, b"UI", b"1.2.3.9\x00")
        + _element(0x0008, 0x0060, b"CS", b"CT")
        + _element(0x0019, 0x0010, b"LO", b"VENDOR X")
        + _element(0x0019, 0x1010, b"UN", seq, undefined=True)
        + _element(0x0020, 0x000E, b"UI", b"1.2.3.8\x00")
        + _element(0x0028, 0x0010, b"US", struct.pack("<H", 2))
        + _element(0x0028, 0x0011, b"US", struct.pack("<H", 2))
        + _element(0x0028, 0x0100, b"US", struct.pack("<H", 16))
        + _element(0x7FE0, 0x0010, b"OW", b"\x00" * 8)
    )
    path = tmp_path / "un.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + meta + body)
    rec = _same(path)
    assert rec["parser"] == "fast"
    assert rec["series_uid"] == "1.2.3.8"
    assert rec["rows"] == 2


def _real_bytes() -> bytes:
    return (shared_path("data", "ct") / "cip_copdgene_crop" / "simple_dicom" / "slice001.dcm").read_bytes()


def _synthetic_bytes(tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    ds = _dataset(Rows=64, Columns=64, PixelData=np.zeros((64, 64), np.int16).tobytes())
    _write(ds, tmp_path / "s.dcm", ExplicitVRLittleEndian)
    buf.write((tmp_path / "s.dcm").read_bytes())
    return buf.getvalue()


@pytest.mark.parametrize("cut", ["meta", "header", "pixels"])
def test_truncated_files_are_reported(tmp_path, cut):
    data = _synthetic_bytes(tmp_path)
    header_len = len(data) - 64 * 64 * 2
    n = {"meta": 150, "header": header_len - 40, "pixels": len(data) - 100}[cut]
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:n])
    res = read_header(path)
    assert res.record is None
    assert res.error.startswith("corrupt DICOM: truncated"), res.error


def test_truncated_real_file_is_reported(tmp_path):
    data = _real_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    res = read_header(path)
    assert res.record is None and "truncated" in res.error and "524288 bytes" in res.error


def test_garbage_with_dicm_magic_and_non_dicom_files(tmp_path):
    rng = np.random.default_rng(7)
    cases = {
        "garbage.dcm": b"\x00" * 128 + b"DICM" + rng.bytes(3000),
        "empty.dcm": b"",
        "notes.txt": b"this is a text file, not an image\n" * 20,
        "image.png": b"\x89PNG\r\n\x1a\n" + rng.bytes(500),
        "short": b"DICM",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        res = read_header(tmp_path / name)
        assert res.record is None, name
        assert res.error.startswith(("not DICOM", "corrupt DICOM")), (name, res.error)
    assert read_header(tmp_path / "garbage.dcm").error.startswith("corrupt DICOM")
    assert read_header(tmp_path / "empty.dcm").error == "not DICOM: empty file"
    assert read_header(tmp_path / "missing.dcm").error.startswith("unreadable")


def test_raw_data_set_without_preamble_is_read(tmp_path):
    ds = _dataset()
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    path = tmp_path / "raw"
    path.write_bytes(buf.getvalue())
    rec = read_header(path).record
    assert rec["parser"] == "pydicom"
    assert rec["series_uid"] == "1.2.3.4.5"
    assert rec["transfer_syntax"] == ImplicitVRLittleEndian


def test_dicomdir_is_reported_not_indexed(tmp_path):
    ds = Dataset()
    ds.FileSetID = "KICC"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = "1.2.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    res = read_header(tmp_path / "DICOMDIR")
    assert res.record is None and res.error.startswith("DICOMDIR")


def test_pydicom_reads_the_generated_files_completely(tmp_path):
    """The synthetic tree is valid DICOM for pydicom too (pixel data included)."""
    paths = write_scanner_like_tree(tmp_path, 10, seed=5, slices_per_series=(5, 6))
    ds = pydicom.dcmread(paths[0])
    assert ds.pixel_array.shape == (16, 16)
    assert len([e for e in ds if e.tag.is_private]) > 60  # Siemens-like profile


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_never_raise(tmp_path, data):
    """Random truncations and byte flips of a valid file: always a HeaderResult, never an exception."""
    base = _synthetic_bytes(tmp_path)
    blob = bytearray(base[: data.draw(st.integers(0, len(base)), label="length")])
    for _ in range(data.draw(st.integers(0, 6), label="n_flips")):
        if blob:
            i = data.draw(st.integers(0, len(blob) - 1), label="offset")
            blob[i] = data.draw(st.integers(0, 255), label="byte")
    path = tmp_path / "mutated.dcm"
    path.write_bytes(bytes(blob))
    res = read_header(path)
    assert (res.record is None) != (res.error is None)
    if res.error is not None:
        assert res.error.split(":")[0] in {"not DICOM", "corrupt DICOM", "DICOMDIR", "unreadable"}


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize(("representation", "padding"), [(1, -3024), (0, 63536)])
def test_pixel_padding_value_sign_follows_pixel_representation(tmp_path, ts, representation, padding):
    ds = _dataset()
    ds.PixelRepresentation = representation
    ds.add_new(0x00280120, "SS" if representation else "US", padding)
    rec = _same(_write(ds, tmp_path / "pad.dcm", ts))
    assert rec["pixel_padding_value"] == padding


# ----------------------------------------------------------------------------------------------------------------------
# Issue 11: hostile files and wrong skip reasons. Odd files come from the data folder of the installed pydicom
# wheel (listed on disk; pydicom's get_testdata_file would download missing files and is never called).

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_deflate_bomb_is_skipped_without_inflating_it(tmp_path):
    import tracemalloc

    from kicc_analysis.repository.header import MAX_INFLATED_BYTES
    from kicc_analysis.repository.synthetic import write_deflated_bomb

    bomb = write_deflated_bomb(tmp_path / "bomb.dcm", 128 << 20)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        res = read_header(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.record is None and res.error.startswith("corrupt DICOM:") and "decompression bomb" in res.error
    assert peak < 3 * MAX_INFLATED_BYTES < 128 << 20
    # a small deflated file is read by the same (streaming) parser, values as pydicom gives them
    small = write_deflated_bomb(tmp_path / "small.dcm", 1 << 16)
    rec = read_header(small).record
    assert rec["parser"] == "fast" and rec["rows"] == 4 and rec["series_uid"] == "1.2.826.0.1.3680043.8.498.2"
    ref = read_header_pydicom(small).record
    assert {k: v for k, v in rec.items() if k != "parser"} == {k: v for k, v in ref.items() if k != "parser"}


def test_valid_ybr_full_422_is_not_called_truncated():
    path = PYDICOM_FILES / "SC_ybr_full_422_uncompressed.dcm"
    if not path.exists():
        pytest.skip(f"{path.name} not in this pydicom wheel")
    res = read_header(path)
    assert res.error is None, res.error
    assert res.record["photometric_interpretation"] == "YBR_FULL_422" and res.record["samples_per_pixel"] == 3
    # the same file cut short is still reported as truncated
    assert _same_error(path, 2000).startswith("corrupt DICOM: truncated")


def _same_error(path: Path, keep: int) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.dcm"
        cut.write_bytes(path.read_bytes()[:-keep])
        return read_header(cut).error


def test_big_endian_data_set_without_file_meta_is_dicom(tmp_path):
    path = PYDICOM_FILES / "ExplVR_BigEndNoMeta.dcm"
    if not path.exists():
        pytest.skip(f"{path.name} not in this pydicom wheel")
    res = read_header(path)
    assert res.error is None, res.error
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    assert res.record["sop_uid"] == ds.SOPInstanceUID and res.record["transfer_syntax"] == ExplicitVRBigEndian
    # written by us too: a big-endian data set without preamble or file meta
    ds = _dataset()
    out = tmp_path / "be.dcm"
    ds.save_as(out, enforce_file_format=False, little_endian=False, implicit_vr=False)
    assert out.read_bytes()[128:132] != b"DICM"
    got = read_header(out)
    assert got.error is None and got.record["series_uid"] == "1.2.3.4.5"


def test_header_hash_is_the_cache_helper_hash(tmp_path):
    from kicc_analysis._cache import header_hash

    path = _write(_dataset(), tmp_path / "x.dcm", ExplicitVRLittleEndian)
    assert read_header(path).header_hash == header_hash(path)
    assert read_header(tmp_path / "missing.dcm").header_hash is None
