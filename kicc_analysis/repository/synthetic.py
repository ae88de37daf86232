"""Synthetic DICOM trees whose headers look like real scanners' (for the scan benchmark and parser tests).

Each series is one pydicom-written template (hundreds of standard, private and vendor tags, nested
sequences with defined and undefined lengths, a Siemens CSA-like private block, GE private groups,
shared-functional-group-like sequences) whose per-instance values (SOP Instance UID, Instance Number,
Image Position, Slice Location) are fixed-width placeholders replaced in the bytes, so tens of thousands
of files are written in seconds. Pixel data is a small 16 x 16 image so the tree fits on disk.

Three CT vendor profiles alternate:

* ``ge``: explicit VR little endian, GE private groups 0009/0019/0021/0023/0027/0043/0045 (~180 private
  elements before pixel data), defined-length sequences.
* ``siemens``: implicit VR little endian, private groups 0019/0021, Siemens CSA-like OB blocks in 0029
  (8 KiB image header + 40 KiB series header), nested sequences.
* ``philips``: explicit VR little endian with undefined-length sequences (items and sequence delimiters),
  private groups 2001/2005 with nested private sequences, a shared functional groups sequence.

Radiograph studies (CR and DX, explicit VR) are mixed in, as in the KICC-19 repository.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = ["write_deflated_bomb", "write_identified_copy", "write_scanner_like_tree"]

_UID_ROOT = "1.2.826.0.1.3680043.8.498.77"
_SOP_PLACEHOLDER = "1.2.826.0.1.3680043.8.498.77.999999999.999999"  # same width as real values below
_Z_PLACEHOLDER = "+9999.999"
_INST_PLACEHOLDER = "99999"
_CT = "1.2.840.10008.5.1.4.1.1.2"
_CR = "1.2.840.10008.5.1.4.1.1.1"
_DX = "1.2.840.10008.5.1.4.1.1.1.1"


def _code_item(value: str, scheme: str, meaning: str, undefined: bool) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    if undefined:
        item.is_undefined_length_sequence_item = True
    return item


def _seq(ds: Dataset, keyword: str, items: list[Dataset], undefined: bool) -> None:
    setattr(ds, keyword, Sequence(items))
    if undefined:
        ds[keyword].is_undefined_length = True


def _private_block(ds: Dataset, group: int, creator: str, n: int, rng: np.random.Generator) -> None:
    """A private creator and ``n`` private elements of assorted VRs in ``group``."""
    ds.add_new((group << 16) | 0x0010, "LO", creator)
    vrs = ["DS", "SS", "SL", "LO", "SH", "IS", "US", "FD", "UL", "CS"]
    for k in range(n):
        elem = 0x1000 + k
        vr = vrs[k % len(vrs)]
        if vr == "DS":
            val = f"{rng.uniform(-500, 500):.4f}"
        elif vr in ("SS",):
            val = int(rng.integers(-3000, 3000))
        elif vr in ("SL",):
            val = int(rng.integers(-100000, 100000))
        elif vr in ("US",):
            val = int(rng.integers(0, 60000))
        elif vr in ("UL",):
            val = int(rng.integers(0, 2**31))
        elif vr == "FD":
            val = float(rng.normal())
        elif vr == "IS":
            val = str(int(rng.integers(0, 9999)))
        elif vr == "CS":
            val = "PRIVATE_FLAG"
        else:
            val = f"vendor value {k:03d}"
        ds.add_new((group << 16) | elem, vr, val)


def _base(
    rng: np.random.Generator,
    sop_class: str,
    modality: str,
    manufacturer: str,
    patient: str,
    study_uid: str,
    series_uid: str,
    series_number: int,
    study_date: str,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = study_date
    ds.InstanceCreationTime = "101010"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _SOP_PLACEHOLDER
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101010.000000"
    ds.AccessionNumber = f"A{series_number:08d}"
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.InstitutionName = "KICC Synthetic Hospital"
    ds.InstitutionAddress = "1 Example Road"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StationName = "STATION01"
    ds.StudyDescription = "CHEST"
    ds.SeriesDescription = f"Series {series_number}"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.OperatorsName = "Op^One"
    ds.ManufacturerModelName = "Model X"
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = patient
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.PatientAge = "060Y"
    ds.PatientWeight = "70"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = _INST_PLACEHOLDER
    ds.FrameOfReferenceUID = study_uid + ".9"
    ds.PositionReferenceIndicator = "SN"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 16
    ds.Columns = 16
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.LossyImageCompression = "00"
    ds.PixelData = rng.integers(0, 2000, size=(16, 16), dtype=np.int16).tobytes()
    return ds


def _ct_geometry(ds: Dataset, kernel: str, thickness: float) -> None:
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = f"{thickness:g}"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.SoftwareVersions = "SW 1.0"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.ReconstructionDiameter = "360"
    ds.DistanceSourceToDetector = "949.075"
    ds.DistanceSourceToPatient = "541"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "170"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "300"
    ds.Exposure = "150"
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = "48000"
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = kernel
    ds.PatientPosition = "HFS"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.TableSpeed = 110.0
    ds.SpiralPitchFactor = 0.984
    ds.CTDIvol = 8.5
    ds.ImagePositionPatient = ["-180.000000", "-180.000000", _Z_PLACEHOLDER]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceLocation = _Z_PLACEHOLDER
    ds.PixelSpacing = ["0.703125", "0.703125"]


def _add_sequences(ds: Dataset, undefined: bool, n_refs: int) -> None:
    _seq(ds, "ProcedureCodeSequence", [_code_item("CTCHEST", "L", "CT chest", undefined)], undefined)
    refs = []
    for k in range(n_refs):
        item = Dataset()
        item.ReferencedSOPClassUID = _CT
        item.ReferencedSOPInstanceUID = f"{_UID_ROOT}.5.{k}"
        if undefined:
            item.is_undefined_length_sequence_item = True
        refs.append(item)
    _seq(ds, "ReferencedImageSequence", refs, undefined)
    _seq(ds, "DerivationCodeSequence", [_code_item("113072", "DCM", "Multiplanar reformatting", undefined)], undefined)
    phantom = _code_item("113691", "DCM", "IEC Body Dosimetry Phantom", undefined)
    _seq(ds, "CTDIPhantomTypeCodeSequence", [phantom], undefined)
    req = Dataset()
    req.RequestedProcedureID = "RP1"
    req.ScheduledProcedureStepID = "SPS1"
    _seq(req, "ScheduledProtocolCodeSequence", [_code_item("P1", "L", "Protocol", undefined)], undefined)
    if undefined:
        req.is_undefined_length_sequence_item = True
    _seq(ds, "RequestAttributesSequence", [req], undefined)


def _profile_ct(profile: str, ds: Dataset, rng: np.random.Generator) -> None:
    if profile == "ge":
        _add_sequences(ds, undefined=False, n_refs=3)
        _private_block(ds, 0x0009, "GEMS_IDEN_01", 12, rng)
        _private_block(ds, 0x0019, "GEMS_ACQU_01", 70, rng)
        _private_block(ds, 0x0021, "GEMS_RELA_01", 18, rng)
        _private_block(ds, 0x0023, "GEMS_STDY_01", 6, rng)
        _private_block(ds, 0x0027, "GEMS_IMAG_01", 24, rng)
        _private_block(ds, 0x0043, "GEMS_PARM_01", 60, rng)
        _private_block(ds, 0x0045, "GEMS_HELIOS_01", 12, rng)
    elif profile == "siemens":
        _add_sequences(ds, undefined=False, n_refs=2)
        _private_block(ds, 0x0019, "KICC SIEMENS-LIKE CT 01", 40, rng)
        _private_block(ds, 0x0021, "KICC SIEMENS-LIKE MED 01", 20, rng)
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        ds.add_new(0x00291008, "CS", "IMAGE NUM 4")
        ds.add_new(0x00291010, "OB", b"SV10\x04\x03\x02\x01" + rng.bytes(8184))
        ds.add_new(0x00291018, "CS", "CT")
        ds.add_new(0x00291020, "OB", b"SV10\x04\x03\x02\x01" + rng.bytes(40952))
    else:  # philips
        _add_sequences(ds, undefined=True, n_refs=4)
        _private_block(ds, 0x0019, "PHILIPS MR IMAGING DD 001", 10, rng)
        _private_block(ds, 0x01F1, "ELSCINT1", 30, rng)
        _private_block(ds, 0x2001, "Philips Imaging DD 001", 40, rng)
        items = []
        for k in range(6):
            it = Dataset()
            it.add_new(0x20050010, "LO", "Philips MR Imaging DD 001")
            it.add_new(0x20051000 + k, "DS", f"{k}.5")
            it.add_new(0x20051080, "LO", f"private item {k}")
            it.is_undefined_length_sequence_item = True
            items.append(it)
        ds.add_new(0x20050010, "LO", "Philips MR Imaging DD 001")
        ds.add_new(0x2005140F, "SQ", Sequence(items))
        ds[0x2005140F].is_undefined_length = True
        shared = Dataset()
        shared.is_undefined_length_sequence_item = True
        pm = Dataset()
        pm.PixelSpacing = ["0.703125", "0.703125"]
        pm.SliceThickness = "1"
        pm.is_undefined_length_sequence_item = True
        _seq(shared, "PixelMeasuresSequence", [pm], True)
        _seq(ds, "SharedFunctionalGroupsSequence", [shared], True)


def _to_bytes(ds: Dataset, implicit: bool) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = _SOP_PLACEHOLDER
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return buf.getvalue()


def _instance_bytes(template: bytes, sop_uid: str, number: int, z: float) -> bytes:
    out = template.replace(_SOP_PLACEHOLDER.encode(), sop_uid.encode())
    out = out.replace(_Z_PLACEHOLDER.encode(), f"{z:+09.3f}".encode())
    return out.replace(_INST_PLACEHOLDER.encode(), f"{number:05d}".encode())


def write_scanner_like_tree(
    out_dir: str | os.PathLike[str],
    n_files: int = 20000,
    *,
    seed: int = 0,
    slices_per_series: tuple[int, int] = (120, 260),
    radiograph_fraction: float = 0.02,
) -> list[Path]:
    """Write a tree of at least ``n_files`` DICOM files with scanner-like headers; return their paths.

    Layout: ``out_dir/P<patient>/ST<study>/SE<series>/<file>``, file names alternating ``IM00001`` (no
    extension) and ``00001.dcm``. Each patient has one CT study with two series (thin sharp-kernel,
    and thick soft-kernel with 40 % as many slices) of one vendor profile, and ~``radiograph_fraction`` of files are CR/DX
    radiographs. Deterministic for a given ``seed``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    profiles = ("ge", "siemens", "philips")
    kernels = {"ge": ("LUNG", "STANDARD"), "siemens": ("B70f", "B30f"), "philips": ("L", "B")}
    patient = 0
    while len(paths) < n_files:
        patient += 1
        pid = f"KICC-S01-{patient:04d}"
        profile = profiles[patient % 3]
        study_uid = f"{_UID_ROOT}.1.{patient}"
        pdir = out / f"P{patient:04d}"
        n_thin = int(rng.integers(*slices_per_series))
        for s, (kernel, thickness) in enumerate(((kernels[profile][0], 1.0), (kernels[profile][1], 2.5)), start=1):
            series_uid = f"{_UID_ROOT}.2.{patient}.{s}"
            n = n_thin if s == 1 else max(2, int(n_thin * 0.4))
            ds = _base(rng, _CT, "CT", profile.upper(), pid, study_uid, series_uid, s, "20200301")
            _ct_geometry(ds, kernel, thickness)
            _profile_ct(profile, ds, rng)
            template = _to_bytes(ds, implicit=profile == "siemens")
            sdir = pdir / "ST1" / f"SE{s}"
            sdir.mkdir(parents=True, exist_ok=True)
            for i in range(1, n + 1):
                sop = f"{_UID_ROOT}.{100_000_000 + patient * 10 + s}.{100_000 + i}"
                name = f"IM{i:05d}" if i % 2 else f"{i:05d}.dcm"
                p = sdir / name
                p.write_bytes(_instance_bytes(template, sop, i, -300.0 + (i - 1) * thickness))
                paths.append(p)
        if rng.random() < radiograph_fraction * 20:
            modality, sop_class = ("CR", _CR) if patient % 2 else ("DX", _DX)
            series_uid = f"{_UID_ROOT}.3.{patient}"
            ds = _base(rng, sop_class, modality, "AGFA", pid, f"{study_uid}.2", series_uid, 1, "20200302")
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.BodyPartExamined = "CHEST"
            ds.ViewPosition = "PA"
            ds.ImagerPixelSpacing = ["0.15", "0.15"]
            _private_block(ds, 0x0019, "AGFA", 20, rng)
            template = _to_bytes(ds, implicit=False)
            sdir = pdir / "ST2" / "SE1"
            sdir.mkdir(parents=True, exist_ok=True)
            p = sdir / "CR00001.dcm"
            p.write_bytes(_instance_bytes(template, f"{_UID_ROOT}.{100_000_000 + patient * 10 + 9}.100001", 1, 0.0))
            paths.append(p)
    return paths


def write_identified_copy(
    src: str | os.PathLike[str] | bytes,
    dst: str | os.PathLike[str] | bytes,
    *,
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_description: str | None = None,
    series_description: str | None = None,
    sop_uid: str | None = None,
) -> None:
    """Copy a DICOM file with identifying header values planted (for the privacy tests of derived files).

    The copy is written in UTF-8 (``SpecificCharacterSet`` ``ISO_IR 192``) so Hangul values are valid; its SOP
    Instance UID is kept unless ``sop_uid`` is given (two copies of one file are otherwise duplicates). Paths may
    be bytes (EUC-KR names).
    """
    import pydicom

    ds = pydicom.dcmread(src)
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in (
        ("PatientID", patient_id),
        ("PatientName", patient_name),
        ("StudyDescription", study_description),
        ("SeriesDescription", series_description),
    ):
        if value is not None:
            setattr(ds, keyword, value)
    if sop_uid is not None:
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.save_as(dst)


def write_deflated_bomb(path: str | os.PathLike[str], inflated_bytes: int = 256 << 20, *, tail: bool = True) -> Path:
    """Write a hostile test file: a Deflated Explicit VR Little Endian CT whose data set inflates to about
    ``inflated_bytes`` (a zero-filled private OB element before the image attributes) from a file of
    ~1/1000 of that size. Used to check that a header read never inflates it whole.

    ``tail`` adds Series Instance UID and Rows/Columns after the bomb (where a header reader would have to
    inflate everything to reach them).
    """
    import struct
    import zlib

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\0" if vr == b"UI" else b" "
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr, len(value)) + value

    sop_uid = "1.2.826.0.1.3680043.8.498.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    head = (
        element(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2")
        + element(0x0008, 0x0018, b"UI", sop_uid.encode())
        + element(0x0008, 0x0060, b"CS", b"CT")
        + element(0x0009, 0x0010, b"LO", b"KICC BOMB")
        + struct.pack("<HH2sHI", 0x0009, 0x1000, b"OB", 0, inflated_bytes)
    )
    rest = b""
    if tail:
        rest = (
            element(0x0020, 0x000E, b"UI", b"1.2.826.0.1.3680043.8.498.2")
            + element(0x0028, 0x0010, b"US", struct.pack("<H", 4))
            + element(0x0028, 0x0011, b"US", struct.pack("<H", 4))
        )
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + buf.getvalue())
        f.write(deflater.compress(head))
        left = inflated_bytes
        while left > 0:
            f.write(deflater.compress(zeros[: min(left, len(zeros))]))
            left -= len(zeros)
        f.write(deflater.compress(rest) + deflater.flush())
    return path
