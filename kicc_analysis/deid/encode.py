"""Encode a de-identified dataset to the bytes of a DICOM file, writing unchanged elements as they were read.

:func:`encode_file` gives the same bytes as ``pydicom.dcmwrite(..., enforce_file_format=True)`` (a test checks
it on every file it de-identifies), faster: an element that is still raw (read from the input and never
decoded, as :func:`kicc_analysis.deid.deidentify.deidentify_dataset` leaves every element it keeps unchanged)
is written as tag, VR, length and its bytes in one step instead of through pydicom's per-element writer, and
so is a string element the de-identifier set to plain ASCII (new UIDs, shifted dates, cleaned text);
sequences are written item by item the same way; everything else goes through pydicom's
``write_data_element``. Only little-endian, non-deflated transfer syntaxes the dataset was read in are encoded
here; anything else (a change of encoding or character set, deflate, big endian) is left to ``dcmwrite``.

The preamble is always 128 zero bytes: a file's preamble is free for applications to fill (dual-format TIFF
headers, vendor text) and is not part of the dataset the profile cleans, so it is never copied.
"""

from __future__ import annotations

import struct

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import ItemDelimiterTag, ItemTag, SequenceDelimiterTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

#: Explicit-VR VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
PREAMBLE = b"\x00" * 128
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT = struct.Struct("<HHL")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2sHL")
_ITEM_HEAD = struct.Struct("<HHL")


def _raw_bytes(elem: RawDataElement, implicit: bool) -> bytes | None:
    """Tag, VR, length and value of a raw element of defined length; ``None`` when pydicom must write it."""
    value = elem.value
    if value is None or elem.length == _UNDEFINED:
        return None
    tag = elem.tag
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return _IMPLICIT.pack(group, element, len(value)) + value
    vr = elem.VR
    if vr is None or len(vr) != 2:
        return None
    if vr in LONG_LENGTH_VRS:
        return _EXPLICIT_LONG.pack(group, element, vr.encode("ascii"), 0, len(value)) + value
    if len(value) > 0xFFFF:
        return None
    return _EXPLICIT_SHORT.pack(group, element, vr.encode("ascii"), len(value)) + value


#: String VRs whose ASCII values are encoded here as pydicom encodes them (values joined by ``\\``, padded to an
#: even length with a space, UI with a NUL); DS and IS (number objects) and PN go through pydicom.
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


def _string_bytes(elem: DataElement, implicit: bool) -> bytes | None:
    """Tag, VR, length and value of a string element holding ASCII ``str`` values; ``None`` otherwise."""
    vr = elem.VR
    if vr not in _STRING_VRS:
        return None
    value = elem.value
    if value is None or value == "":
        text = ""
    elif type(value) is str or isinstance(value, UID):
        text = str(value)
    elif isinstance(value, list | pydicom.multival.MultiValue) and all(
        type(v) is str or isinstance(v, UID) for v in value
    ):
        text = "\\".join(value)
    else:
        return None
    if not text.isascii():
        return None
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    tag = elem.tag
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return _IMPLICIT.pack(group, element, len(data)) + data
    if vr in LONG_LENGTH_VRS:
        return _EXPLICIT_LONG.pack(group, element, vr.encode("ascii"), 0, len(data)) + data
    if len(data) > 0xFFFF:
        return None
    return _EXPLICIT_SHORT.pack(group, element, vr.encode("ascii"), len(data)) + data


def _write_dataset(fp: DicomBytesIO, ds: Dataset, parent_encoding: str | list[str], compressed: bool) -> None:
    """``pydicom.filewriter.write_dataset`` for a dataset in its original encoding, raw elements in one step."""
    encoding = ds.get("SpecificCharacterSet", parent_encoding)
    implicit = fp.is_implicit_VR
    get_item = ds.get_item
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:  # retired group lengths are not written (PS3.5 7.2)
            continue
        elem = get_item(tag)
        if elem.is_raw:
            if tag == 0x7FE00010 and compressed != (elem.length == _UNDEFINED):
                elem = ds[tag]  # pixel data's length follows the transfer syntax, as dcmwrite makes it
                elem.is_undefined_length = compressed
            else:
                data = _raw_bytes(elem, implicit)
                if data is not None:
                    fp.write(data)
                    continue
                if not implicit and (elem.VR is None or len(elem.VR) != 2):
                    elem = ds[tag]  # a VR the file left out or ambiguous: pydicom's conversion settles it
        elif tag == 0x7FE00010:
            elem.is_undefined_length = compressed
        if not elem.is_raw and elem.VR == "SQ":
            _write_sequence(fp, elem, encoding)
            continue
        data = None if elem.is_raw else _string_bytes(elem, implicit)
        if data is not None:
            fp.write(data)
        else:
            write_data_element(fp, elem, encoding)


def _write_sequence(fp: DicomBytesIO, elem: DataElement, encoding: str | list[str]) -> None:
    """A sequence as pydicom writes it (items of defined length unless read undefined), items encoded here."""
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, fp.is_implicit_VR
    for item in elem.value or []:
        start = body.tell()
        body.write(_ITEM_HEAD.pack(ItemTag >> 16, ItemTag & 0xFFFF, _UNDEFINED))
        _write_dataset(body, item, encoding, False)
        if getattr(item, "is_undefined_length_sequence_item", False):
            body.write(_ITEM_HEAD.pack(ItemDelimiterTag >> 16, ItemDelimiterTag & 0xFFFF, 0))
        else:
            end = body.tell()
            body.seek(start + 4)
            body.write(struct.pack("<L", end - start - 8))
            body.seek(end)
    content = body.getvalue()
    group, element = elem.tag >> 16, elem.tag & 0xFFFF
    undefined = elem.is_undefined_length
    length = _UNDEFINED if undefined else len(content)
    if fp.is_implicit_VR:
        fp.write(_IMPLICIT.pack(group, element, length))
    else:
        fp.write(_EXPLICIT_LONG.pack(group, element, b"SQ", 0, length))
    fp.write(content)
    if undefined:
        fp.write(_ITEM_HEAD.pack(SequenceDelimiterTag >> 16, SequenceDelimiterTag & 0xFFFF, 0))


def _fast_path(ds: Dataset, transfer: UID) -> bool:
    if transfer == DeflatedExplicitVRLittleEndian or not transfer.is_transfer_syntax or transfer.is_private:
        return False
    if not transfer.is_little_endian:
        return False
    return ds.original_encoding == (transfer.is_implicit_VR, True) and (ds.original_character_set == ds._character_set)


def encode_file(ds: Dataset, meta: FileMetaDataset) -> bytes:
    """The bytes of the DICOM file of ``ds`` with File Meta Information ``meta`` (which must hold the Media
    Storage SOP Class and Instance UIDs and the Transfer Syntax UID); a zero preamble."""
    transfer = UID(meta.TransferSyntaxUID)
    ds.file_meta = meta
    ds.preamble = PREAMBLE
    if not _fast_path(ds, transfer):
        buffer = DicomBytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    fp.write(PREAMBLE + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    fp.is_implicit_VR = transfer.is_implicit_VR
    _write_dataset(fp, ds, "iso8859", transfer.is_compressed)
    return fp.getvalue()
