"""The de-identifier's encoder writes exactly the bytes pydicom's dcmwrite writes, and never copies a preamble."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from deid_synth import make_repository
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO

from kicc_analysis.deid.deidentify import deidentify_dataset, deidentify_repository
from kicc_analysis.deid.encode import PREAMBLE, _fast_path, encode_file
from kicc_analysis.deid.keys import new_key_file

# the odd files of the installed pydicom wheel, listed on disk (get_testdata_file could download: never called)
PYDICOM_FILES = sorted((Path(pydicom.__file__).parent / "data" / "test_files").rglob("*.dcm"))


def _both(data: bytes) -> tuple[bytes, bytes, bool] | None:
    """(our encoding, dcmwrite's, fast path taken) of the de-identified dataset in ``data``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ours, theirs = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(data))
        except Exception:
            return None
        if "SOPClassUID" not in ours or "SOPInstanceUID" not in ours:
            return None
        for ds in (ours, theirs):
            deidentify_dataset(ds, b"k" * 32, "S01")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ours.SOPClassUID, ours.SOPInstanceUID
        meta.TransferSyntaxUID = ours.file_meta.get("TransferSyntaxUID") or pydicom.uid.ExplicitVRLittleEndian
        fast = _fast_path(ours, pydicom.uid.UID(meta.TransferSyntaxUID))
        try:
            reference = DicomBytesIO()
            theirs.file_meta, theirs.preamble = copy.deepcopy(meta), PREAMBLE
            pydicom.dcmwrite(reference, theirs, enforce_file_format=True)
        except Exception:  # pydicom cannot write it either (a VR missing from an explicit-VR file): not comparable
            return None
        return encode_file(ours, meta), reference.getvalue(), fast


def test_encoder_bytes_equal_dcmwrite_on_pydicom_files():
    compared = fast = 0
    for path in PYDICOM_FILES:
        result = _both(path.read_bytes())
        if result is None:
            continue
        ours, theirs, took_fast_path = result
        assert ours == theirs, path.name
        compared += 1
        fast += took_fast_path
    # explicit and implicit VR, compressed pixel data, big endian and deflate (these two through dcmwrite)
    assert compared >= 50 and 40 <= fast < compared


def test_encoder_bytes_equal_dcmwrite_on_planted_repository(tmp_path):
    planted = make_repository(tmp_path, n_patients=1)
    for path in planted.files:
        ours, theirs, took_fast_path = _both(path.read_bytes())
        assert took_fast_path and ours == theirs, path.name


def test_preamble_never_copied(tmp_path):
    ds = pydicom.examples.ct
    ds.preamble = b"QZKPHNRT 010-5555-1234 ".ljust(128, b"\0")  # a vendor's text in the preamble
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "ct.dcm")
    assert b"QZKPHNRT" in (tmp_path / "in" / "ct.dcm").read_bytes()
    new_key_file(tmp_path / "key")
    deidentify_repository(tmp_path / "in", tmp_path / "out", tmp_path / "key", "S01", show=False)
    written = next((tmp_path / "out").rglob("*.dcm")).read_bytes()
    assert written[:128] == PREAMBLE and b"QZKPHNRT" not in written and b"5555" not in written


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"])
def test_written_file_reads_back_with_the_same_pixels(name, tmp_path):
    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    source = pydicom.dcmread(path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(path.read_bytes())
    new_key_file(tmp_path / "key")
    deidentify_repository(tmp_path / "in", tmp_path / "out", tmp_path / "key", "S01", show=False)
    out = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert (out.pixel_array == source.pixel_array).all()
    assert str(out.PatientID).startswith("KICC-S01-") and out.PatientIdentityRemoved == "YES"
