"""Fast DICOM header reader: the few attributes the repository scanner needs, without pixel data.

Why a hand-written parser?
    ``pydicom.dcmread(path, stop_before_pixels=True)`` builds a full ``Dataset`` of every element up to
    the pixel data, including hundreds of private vendor tags (GE groups 0009/0019/0043, Siemens CSA
    blocks in 0029, ...) and nested sequences. The scanner needs ~35 attributes that all live in groups
    0002-0028, so this module reads only the first few KiB of each file (bounded ``read(n)``, growing
    when needed), walks the elements with ``struct`` and stops at the first tag past (0028,1053).
    Elements it does not need are skipped by their length (and undefined-length sequences by scanning
    item / delimiter tags) without decoding. It handles the two uncompressed little-endian encodings used
    by every modern scanner (explicit and implicit VR) and every encapsulated transfer syntax (JPEG,
    JPEG 2000, RLE...), whose data set is explicit VR little endian.

    A deflated data set is inflated in a stream, at most :data:`MAX_INFLATED_BYTES` (a decompression bomb is
    reported as corrupt, never inflated whole), and walked by the same parser.

    Anything unusual (big endian, missing file meta, a malformed element) falls back to
    ``pydicom.dcmread(stop_before_pixels=True, specific_tags=...)``, so the result never depends on which
    path read the file. ``tests/test_repository_header.py`` checks both paths give identical values on all
    the real DICOM files in ``../shared`` and on the benchmark's synthetic scanner-like tree.

Public API
    :func:`read_header` returns a :class:`HeaderResult` (``record`` dict or ``error`` reason string),
    never raising for a bad file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._cache import HEADER_BYTES

__all__ = [
    "HEADER_FIELDS",
    "HeaderResult",
    "NATIVE_TRANSFER_SYNTAXES",
    "read_header",
    "read_header_pydicom",
]

#: First read of each file (bytes). Most CT headers up to group 0028 fit; the reader grows when needed.
FIRST_READ = 8192
#: Size of later reads when an element goes past the current window.
GROW_READ = 16384
#: Most bytes a deflated data set may inflate to while its header is read (a larger header is reported as
#: corrupt: a 2 MB deflated "bomb" must not take gigabytes of memory).
MAX_INFLATED_BYTES = 16 << 20
#: Most compressed bytes read from a deflated file while looking for its header.
MAX_DEFLATED_INPUT = 64 << 20

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
#: Transfer syntaxes whose pixel data is stored uncompressed (native).
NATIVE_TRANSFER_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE})
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: Image storage SOP classes (CT, enhanced CT, CR, DX, MR, secondary capture) -> modality they imply.
IMAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.7": "OT",
}

# (tag, field name, VR used to decode the value, number kind)
# kind: "text" (stripped string, multiple values kept as DICOM backslash-joined text), "uid", "int",
# "float", "floats" (tuple of floats), "us" (unsigned short binary).
_WANTED: tuple[tuple[int, str, str], ...] = (
    (0x00020002, "media_sop_class_uid", "UI"),
    (0x00020003, "media_sop_uid", "UI"),
    (0x00020010, "transfer_syntax", "UI"),
    (0x00080005, "specific_character_set", "CS"),
    (0x00080008, "image_type", "CS"),
    (0x00080016, "sop_class_uid", "UI"),
    (0x00080018, "sop_uid", "UI"),
    (0x00080020, "study_date", "DA"),
    (0x00080060, "modality", "CS"),
    (0x00080070, "manufacturer", "LO"),
    (0x00081030, "study_description", "LO"),
    (0x0008103E, "series_description", "LO"),
    (0x00100020, "patient_id", "LO"),
    (0x00180015, "body_part", "CS"),
    (0x00180050, "slice_thickness", "DS"),
    (0x00180088, "spacing_between_slices", "DS"),
    (0x00181164, "imager_pixel_spacing", "DS"),
    (0x00181210, "kernel", "SH"),
    (0x00185101, "view_position", "CS"),
    (0x0020000D, "study_uid", "UI"),
    (0x0020000E, "series_uid", "UI"),
    (0x00200011, "series_number", "IS"),
    (0x00200012, "acquisition_number", "IS"),
    (0x00200013, "instance_number", "IS"),
    (0x00200032, "image_position", "DS"),
    (0x00200037, "image_orientation", "DS"),
    (0x00200052, "frame_of_reference_uid", "UI"),
    (0x00280002, "samples_per_pixel", "US"),
    (0x00280004, "photometric_interpretation", "CS"),
    (0x00280008, "number_of_frames", "IS"),
    (0x00280010, "rows", "US"),
    (0x00280011, "columns", "US"),
    (0x00280030, "pixel_spacing", "DS"),
    (0x00280100, "bits_allocated", "US"),
    (0x00280103, "pixel_representation", "US"),
    (0x00280120, "pixel_padding_value", "xs"),  # US or SS, by Pixel Representation
    (0x00281052, "rescale_intercept", "DS"),
    (0x00281053, "rescale_slope", "DS"),
)
_WANTED_BY_TAG: dict[int, tuple[str, str]] = {tag: (name, vr) for tag, name, vr in _WANTED}
#: Parsing stops at the first data-set tag greater than this one.
STOP_TAG = max(tag for tag, _, _ in _WANTED)
#: Text attributes that may carry non-ASCII characters (decoded with Specific Character Set).
_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "PN", "UC"})
#: The multi-valued numeric attributes (tuple of floats); other DS/IS are single numbers.
_MULTI_NUMBERS = frozenset({"image_position", "image_orientation", "pixel_spacing", "imager_pixel_spacing"})

#: Output fields of one parsed header, in order (the instance table's DICOM columns).
HEADER_FIELDS: tuple[str, ...] = tuple(name for _, name, _ in _WANTED) + ("parser",)

# Explicit VR little endian: VRs with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset(
    {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FL",
        b"FD",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD

_TAG = struct.Struct("<HH")
_TAG_BE = struct.Struct(">HH")
_U16 = struct.Struct("<H")
_S16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_TAG_LEN = struct.Struct("<HHI")  # implicit VR element header / item header
_TAG_VR_LEN16 = struct.Struct("<HH2sH")  # explicit VR element header with short length


@dataclass(frozen=True, slots=True)
class HeaderResult:
    """Outcome of reading one file: ``record`` (field -> value) when it is DICOM, else ``error`` (reason).

    ``header_hash``: hex SHA-1 of the file's first :data:`kicc_analysis._cache.HEADER_BYTES` bytes (the same
    value as :func:`kicc_analysis._cache.header_hash`), None when the file could not be opened.
    """

    record: dict[str, Any] | None
    error: str | None
    header_hash: str | None = None


class _Fallback(Exception):
    """The fast parser met something legal but unusual: let pydicom read the file."""


class _Corrupt(Exception):
    """The file is definitely unusable (e.g. truncated inside the header)."""


class _Window:
    """A forward-only window on an open file: ``need(offset, n)`` guarantees bytes [offset, offset+n)."""

    __slots__ = ("f", "buf", "base", "end", "size", "capped")

    def __init__(self, f: Any, size: int) -> None:
        self.capped = False  # an inflated window cut at MAX_INFLATED_BYTES
        self.f = f
        self.size = size
        self.buf = f.read(FIRST_READ)
        self.base = 0
        self.end = len(self.buf)

    def need(self, offset: int, n: int) -> None:
        if offset + n > self.size:
            raise _Corrupt(f"truncated: needs bytes {offset}..{offset + n} but the file has {self.size} bytes")
        if offset >= self.base and offset + n <= self.end:
            return
        self.f.seek(offset)
        self.buf = self.f.read(max(n, GROW_READ))
        self.base = offset
        self.end = offset + len(self.buf)
        if len(self.buf) < n:
            raise _Corrupt(f"truncated: could only read {len(self.buf)} of {n} bytes at offset {offset}")


def _skip_sequence(w: _Window, pos: int, implicit: bool, depth: int) -> int:
    """Skip an undefined-length sequence starting at ``pos`` (first item tag); return the offset after it."""
    if depth > 16:
        raise _Fallback("sequences nested deeper than 16 levels")
    while True:
        w.need(pos, 8)
        g, e, length = _TAG_LEN.unpack_from(w.buf, pos - w.base)
        tag = (g << 16) | e
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM:
            raise _Fallback(f"expected an item tag at byte {pos}, found ({g:04X},{e:04X})")
        if length == _UNDEFINED:
            pos = _walk(w, pos + 8, implicit, None, depth + 1)
        else:
            pos += 8 + length


def _walk(w: _Window, pos: int, implicit: bool, out: dict[str, bytes] | None, depth: int) -> int:
    """Walk data-set elements from ``pos``.

    At top level (``out`` given) stop before the first tag past :data:`STOP_TAG` (or at end of file)
    and collect raw values of wanted tags into ``out`` as ``name -> (vr, bytes)``. Inside an
    undefined-length item (``out`` is None) stop after the item delimitation tag. Returns the offset
    where the walk stopped.
    """
    size = w.size
    top = out is not None
    while True:
        if top and pos >= size:
            return pos
        w.need(pos, 8)
        rel = pos - w.base
        buf = w.buf
        g, e = _TAG.unpack_from(buf, rel)
        tag = (g << 16) | e
        if top:
            if tag > STOP_TAG:
                return pos
        elif tag == _ITEM_END:
            return pos + 8
        if g == 0xFFFE:
            raise _Fallback(f"unexpected delimiter ({g:04X},{e:04X}) at byte {pos}")
        if implicit:
            length = _U32.unpack_from(buf, rel + 4)[0]
            vr = None
            start = pos + 8
            nested_implicit = True
        else:
            vr = buf[rel + 4 : rel + 6]
            if vr in _LONG_VRS:
                w.need(pos, 12)
                length = _U32.unpack_from(w.buf, pos - w.base + 8)[0]
                start = pos + 12
            elif vr in _SHORT_VRS:
                length = _U16.unpack_from(buf, rel + 6)[0]
                start = pos + 8
            else:
                raise _Fallback(f"unknown VR {vr!r} for ({g:04X},{e:04X}) at byte {pos}")
            nested_implicit = vr == b"UN"
        if length == _UNDEFINED:
            if implicit or vr in (b"SQ", b"UN"):
                pos = _skip_sequence(w, start, nested_implicit, depth)
                continue
            raise _Fallback(f"undefined length for ({g:04X},{e:04X}) VR {vr!r} at byte {pos}")
        if start + length > size:
            raise _Corrupt(
                f"truncated: element ({g:04X},{e:04X}) at byte {pos} declares {length} bytes "
                f"but the file ends at byte {size}"
            )
        if top and tag in _WANTED_BY_TAG:
            name, want_vr = _WANTED_BY_TAG[tag]
            if vr is not None and vr not in (b"UN", b"US", b"SS") and vr.decode("ascii") != want_vr:
                raise _Fallback(f"({g:04X},{e:04X}) has VR {vr!r}, expected {want_vr}")
            w.need(start, length)
            r = start - w.base
            out[name] = w.buf[r : r + length]
        pos = start + length


def _read_meta(w: _Window) -> tuple[dict[str, bytes], int]:
    """Read the file meta group (0002,xxxx), always explicit VR little endian; return raw values, end offset."""
    out: dict[str, bytes] = {}
    pos = 132
    while True:
        if pos >= w.size:
            return out, pos
        w.need(pos, 8)
        rel = pos - w.base
        g, e = _TAG.unpack_from(w.buf, rel)
        if g != 0x0002:
            return out, pos
        vr = w.buf[rel + 4 : rel + 6]
        if vr in _LONG_VRS:
            w.need(pos, 12)
            length = _U32.unpack_from(w.buf, pos - w.base + 8)[0]
            start = pos + 12
        elif vr in _SHORT_VRS:
            length = _U16.unpack_from(w.buf, rel + 6)[0]
            start = pos + 8
        else:
            raise _Fallback(f"file meta element (0002,{e:04X}) has no explicit VR")
        if length == _UNDEFINED:
            raise _Fallback("undefined length in file meta")
        if start + length > w.size:
            raise _Corrupt(
                f"truncated: file meta element (0002,{e:04X}) declares {length} bytes but the file ends at byte {w.size}"
            )
        tag = (g << 16) | e
        if tag in _WANTED_BY_TAG:
            w.need(start, length)
            r = start - w.base
            out[_WANTED_BY_TAG[tag][0]] = w.buf[r : r + length]
        pos = start + length


def _clean(s: str) -> str | None:
    s = s.strip(" \x00")
    return s or None


def _number(s: str, as_int: bool) -> float | int | None:
    s = s.strip(" \x00")
    if not s:
        return None
    try:
        return int(s) if as_int else float(s)
    except ValueError:
        try:
            v = float(s)
        except ValueError:
            return None
        if as_int:
            return int(v) if v.is_integer() else None
        return v


def _numbers(s: str) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(p) for p in (q.strip(" \x00") for q in s.split("\\")) if p)
    except ValueError:
        return None
    return vals or None


def _from_text(name: str, vr: str, s: str) -> Any:
    """Convert the text of one element (values joined by backslashes) to the record's Python value."""
    if vr == "DS":
        return _numbers(s) if name in _MULTI_NUMBERS else _number(s.split("\\")[0], as_int=False)
    if vr == "IS":
        return _number(s.split("\\")[0], as_int=True)
    return _clean(s)


def _xs(raw: bytes, pixel_representation: int | None) -> int | None:
    """A US-or-SS value: signed when Pixel Representation is 1 (two's complement pixels)."""
    if len(raw) < 2:
        return None
    return (_S16 if pixel_representation == 1 else _U16).unpack_from(raw, 0)[0]


def _encodings(raw_charset: bytes | None) -> list[str] | None:
    """Python codecs for the Specific Character Set, or None for the default/Latin-1 repertoire."""
    charset = _clean(raw_charset.decode("latin-1")) if raw_charset else None
    if not charset or charset.upper() in ("ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"):
        return None
    from pydicom.charset import convert_encodings

    return convert_encodings([c.strip() for c in charset.split("\\")])


def _decode(raw: dict[str, bytes]) -> dict[str, Any]:
    """Turn raw little-endian element bytes into the record's Python values."""
    encodings = _encodings(raw.get("specific_character_set"))
    rec: dict[str, Any] = {}
    for _, name, vr in _WANTED:
        b = raw.get(name)
        if not b:
            rec[name] = None
        elif vr == "US":
            rec[name] = _U16.unpack_from(b, 0)[0] if len(b) >= 2 else None
        elif vr == "xs":
            rec[name] = _xs(b, rec.get("pixel_representation"))
        elif encodings and vr in _TEXT_VRS:
            from pydicom.charset import decode_bytes

            rec[name] = _clean(decode_bytes(b, encodings, set()))
        else:
            rec[name] = _from_text(name, vr, b.decode("latin-1"))
    rec["parser"] = "fast"
    return rec


def read_header(path: str | os.PathLike[str], size: int | None = None) -> HeaderResult:
    """Read the scanner's attributes from one file, never raising for a bad file.

    Parameters
    ----------
    path
        File to read.
    size
        File size in bytes when already known (saves a ``stat``).

    Returns
    -------
    HeaderResult
        ``record`` maps every name of :data:`HEADER_FIELDS` to a value (``None`` when absent): text and
        UIDs as ``str``, DS as ``float`` (mm for spacings and positions), IS/US as ``int``, multi-valued
        DS (positions, orientation, spacings) as ``tuple[float, ...]``; ``parser`` is ``"fast"`` or
        ``"pydicom"``. For a DICOMDIR, a non-DICOM or a corrupt file, ``record`` is None and ``error``
        says why. ``header_hash`` is the SHA-1 of the first 4 KiB (None when the file cannot be opened).
    """
    digest: list[str] = []
    result = _read_header(path, size, digest)
    return HeaderResult(result.record, result.error, digest[0]) if digest else result


def _inflated_window(w: _Window, pos: int) -> _Window:
    """A window on the inflated data set of a deflated file (data set from byte ``pos``), inflated in a stream
    up to :data:`MAX_INFLATED_BYTES`."""
    w.f.seek(pos)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    read = 0
    while len(out) < MAX_INFLATED_BYTES and read < MAX_DEFLATED_INPUT:
        chunk = inflater.unconsumed_tail or w.f.read(1 << 16)
        if not inflater.unconsumed_tail:
            read += len(chunk)
        if not chunk:
            break
        try:
            out += inflater.decompress(chunk, MAX_INFLATED_BYTES - len(out))
        except zlib.error as exc:
            raise _Corrupt(f"deflated data set cannot be inflated ({exc})") from None
        if inflater.eof:
            break
    # not inflated to its end within the limits (a truncated stream, whose input ran out, is not "capped")
    capped = not inflater.eof and (len(out) >= MAX_INFLATED_BYTES or read >= MAX_DEFLATED_INPUT)
    inner = _Window(io.BytesIO(out), len(out))
    del out
    inner.capped = capped
    return inner


def _read_header(path: str | os.PathLike[str], size: int | None, digest: list[str]) -> HeaderResult:
    """The work of :func:`read_header`; appends the header hash to ``digest`` once the file is open."""
    path = os.fspath(path)
    ts: str | None = None
    try:
        if size is None:
            size = os.stat(path).st_size
        with open(path, "rb") as f:
            w = _Window(f, size)
            head = w.buf
            digest.append(hashlib.sha1(head[:HEADER_BYTES]).hexdigest())
            if len(head) < 132 or head[128:132] != b"DICM":
                return _no_preamble(path, head, size)
            try:
                meta, pos = _read_meta(w)
                if _clean(meta.get("media_sop_class_uid", b"").decode("latin-1")) == MEDIA_STORAGE_DIRECTORY:
                    return _finish(_decode(meta), size)  # DICOMDIR: no need to walk its record sequence
                ts = _clean(meta.get("transfer_syntax", b"").decode("latin-1"))
                raw: dict[str, bytes] = dict(meta)
                if ts == DEFLATED_LE:
                    inner = _inflated_window(w, pos)
                    try:
                        end = _walk(inner, 0, False, raw, 0)
                        if inner.capped and end >= inner.size:
                            raise _Corrupt("capped")
                    except (_Fallback, _Corrupt) as exc:
                        if inner.capped:
                            raise _Corrupt(
                                f"deflated data set inflates to more than {MAX_INFLATED_BYTES >> 20} MiB before the "
                                "end of its header (decompression bomb?); not read further"
                            ) from None
                        if isinstance(exc, _Corrupt):
                            raise
                        raise _Fallback(str(exc)) from None
                    header_end = 0  # pixel data size is not checked on inflated data
                else:
                    if ts is None or ts == EXPLICIT_BE:
                        raise _Fallback(f"transfer syntax {ts!r} not handled by the fast parser")
                    header_end = _walk(w, pos, ts == IMPLICIT_LE, raw, 0)
            except _Fallback:
                return read_header_pydicom(path)  # a deflated data set gets here only when it inflated whole
    except _Corrupt as exc:
        return HeaderResult(None, f"corrupt DICOM: {exc}")
    except OSError as exc:
        return HeaderResult(None, f"unreadable: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - an unforeseen byte pattern: let pydicom judge the file
        if ts == DEFLATED_LE:  # never let pydicom inflate a deflated data set of unknown size
            return HeaderResult(None, f"corrupt DICOM: deflated data set not readable ({type(exc).__name__})")
        return read_header_pydicom(path)
    try:
        rec = _decode(raw)
    except Exception:  # noqa: BLE001 - e.g. an unknown character set: pydicom decides
        return read_header_pydicom(path)
    return _finish(rec, size, header_end)


def _finish(rec: dict[str, Any], size: int, header_end: int = 0) -> HeaderResult:
    """Common checks after decoding: DICOMDIR, missing UIDs, file too short for its uncompressed pixel data.

    ``header_end`` is the byte offset where header parsing stopped (pixel data can only start after it).
    """
    sop_class = rec.get("sop_class_uid") or rec.get("media_sop_class_uid")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        return HeaderResult(None, "DICOMDIR: media directory index, ignored (the scanner walks the folders itself)")
    if not any(rec.get(k) for k in ("sop_class_uid", "media_sop_class_uid", "sop_uid", "media_sop_uid", "series_uid")):
        return HeaderResult(
            None, "corrupt DICOM: the header has no SOP Class UID, SOP Instance UID or Series Instance UID"
        )
    if header_end >= size > 0 and rec.get("rows") is None and sop_class in IMAGE_SOP_CLASSES:
        return HeaderResult(
            None,
            f"corrupt DICOM: truncated: the file ends at byte {size}, before the image attributes (Rows, Columns, pixel data)",
        )
    ts = rec.get("transfer_syntax")
    if ts in (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE) and rec.get("rows") and rec.get("columns"):
        frames = rec.get("number_of_frames") or 1
        samples = rec.get("samples_per_pixel") or 1
        bits = rec.get("bits_allocated") or 0
        photometric = (rec.get("photometric_interpretation") or "").upper()
        # YBR_FULL_422 / YBR_PARTIAL_422 store the chroma of two pixels once: 2 samples per pixel, not 3
        per_pixel = 2 if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and samples == 3 else samples
        needed = rec["rows"] * rec["columns"] * frames * per_pixel * bits // 8
        if header_end + needed > size:
            return HeaderResult(
                None,
                f"corrupt DICOM: truncated: uncompressed pixel data needs {needed} bytes "
                f"({rec['rows']}x{rec['columns']}x{frames} frames, {bits} bits) after the header "
                f"(ends at byte {header_end}) but the file has {size} bytes",
            )
    return HeaderResult(rec, None)


def _no_preamble(path: str, head: bytes, size: int) -> HeaderResult:
    """A file without the 'DICM' marker: accept it only if it starts like a raw DICOM data set."""
    if len(head) >= 8:
        g, e = _TAG.unpack_from(head, 0)
        gb, eb = _TAG_BE.unpack_from(head, 0)
        if (g in (0x0002, 0x0008) and e < 0x0100) or (gb in (0x0002, 0x0008) and eb < 0x0100):
            return read_header_pydicom(path, force=True)
    if size == 0:
        return HeaderResult(None, "not DICOM: empty file")
    return HeaderResult(None, "not DICOM: no 'DICM' marker at byte 128 and no DICOM data set at byte 0")


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's per-value warnings and log records while judging a bad file (the reason is reported)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


_SPECIFIC_TAGS = [tag for tag, _, _ in _WANTED if tag >> 16 != 0x0002]


def read_header_pydicom(path: str | os.PathLike[str], force: bool = False) -> HeaderResult:
    """Read the same attributes with ``pydicom.dcmread(stop_before_pixels=True, specific_tags=...)``.

    Used as the fallback of :func:`read_header` for unusual files (big endian, deflated, malformed
    elements) and as the reference in tests. Values are converted through the same decoder as the
    fast path, so both give identical records.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = os.fspath(path)
    try:
        size = os.stat(path).st_size
        with _quiet_pydicom():
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_SPECIFIC_TAGS, force=force)
    except InvalidDicomError as exc:
        return HeaderResult(None, f"not DICOM: {exc}")
    except OSError as exc:
        return HeaderResult(None, f"unreadable: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - any pydicom failure is a per-file report, never fatal
        return HeaderResult(None, f"corrupt DICOM: pydicom could not read the header ({type(exc).__name__}: {exc})")
    rec: dict[str, Any] = {}
    try:
        with _quiet_pydicom():
            for tag, name, vr in _WANTED:
                src = ds.file_meta if tag >> 16 == 0x0002 else ds
                elem = src.get(tag) if src is not None else None
                if elem is None:
                    rec[name] = None
                elif vr == "xs":
                    rec[name] = _xs_pydicom(elem.value, rec.get("pixel_representation"))
                else:
                    rec[name] = _from_pydicom(elem.value, name, vr)
    except Exception as exc:  # noqa: BLE001
        return HeaderResult(None, f"corrupt DICOM: invalid header value ({type(exc).__name__}: {exc})")
    rec["parser"] = "pydicom"
    if force and not (rec.get("sop_uid") or rec.get("series_uid") or rec.get("sop_class_uid")):
        return HeaderResult(None, "not DICOM: no 'DICM' marker and no SOP/series UID in the data set")
    if rec.get("transfer_syntax") is None:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        rec["transfer_syntax"] = IMPLICIT_LE if implicit else (EXPLICIT_LE if little else EXPLICIT_BE)
    return _finish(rec, size)


def _xs_pydicom(value: Any, pixel_representation: int | None) -> int | None:
    if value is None or value == b"" or value == "":
        return None
    if isinstance(value, bytes):
        return _xs(value, pixel_representation)
    if isinstance(value, list | tuple) or hasattr(value, "__len__"):
        value = value[0]
    value = int(value)
    # pydicom may have read an ambiguous US/SS value without knowing Pixel Representation
    if pixel_representation == 1 and value > 32767:
        value -= 65536
    elif pixel_representation != 1 and value < 0:
        value += 65536
    return value


def _from_pydicom(value: Any, name: str, vr: str) -> Any:
    """Normalise a pydicom element value exactly like :func:`_decode` normalises raw bytes."""
    if value is None or value == "" or (isinstance(value, bytes | list) and len(value) == 0):
        return None
    if vr == "US":
        if isinstance(value, bytes):
            return _U16.unpack_from(value, 0)[0] if len(value) >= 2 else None
        return int(value[0] if isinstance(value, list | tuple) or hasattr(value, "__len__") else value)
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, str):
        text = value
    elif hasattr(value, "__iter__"):
        text = "\\".join(_value_text(v) for v in value)
    else:
        text = _value_text(value)
    return _from_text(name, vr, text)


def _value_text(v: Any) -> str:
    original = getattr(v, "original_string", None)
    if original is not None:
        return original
    return "" if v is None else str(v)
