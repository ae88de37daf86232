"""Keyed de-identification of a DICOM repository and its clinical table: ``kicc deidentify``.

What is done to each DICOM file (PS3.15 2026c Table E.1-1, :mod:`kicc_analysis.deid.annex_e`):

* the Basic Profile, with the options Clean Pixel Data, Clean Descriptors, Retain Longitudinal Temporal
  Information with Modified Dates and Retain Patient Characteristics (ages above 89 years written as ``090Y``);
  ``D`` rows get a dummy value (:data:`DUMMY_BY_VR`), ``Z`` rows are emptied, ``X`` rows removed; sequences are
  processed item by item at every depth;
* PatientID and PatientName = the patient pseudonym, HMAC of ``--site`` and the local PatientID
  (:func:`kicc_analysis.deid.keys.pseudonym`), the same one :func:`deidentify_table` writes;
* every UID outside the standard's root ``1.2.840.10008`` (so SOP Class and Transfer Syntax UIDs are kept) is
  replaced by ``2.25.`` + an HMAC-derived integer (references between files stay intact);
* every DA/DT value is shifted by the patient's keyed offset (-3650 to -1 days); TM values are kept;
* every other free-text value is cleaned of what :func:`kicc_analysis.privacy.scan_text` finds and of the
  file's own identifying values (names, IDs), which are overwritten with ``*``;
* every private element is removed except :data:`SAFE_PRIVATE` (empty: no private attribute has been verified
  safe for this repository's vendors yet);
* Clean Pixel Data: radiographs and secondary captures (:data:`kicc_analysis.deid.ocr.OCR_MODALITIES`) and
  every file whose Burned In Annotation is ``YES`` are read by OCR (:mod:`kicc_analysis.deid.ocr`, both
  polarities, English and Korean); each identifying line (the file's own names and IDs, what the privacy
  detector finds) and, in a file flagged ``YES``, every line of three or more letters or digits read with
  confidence 60 or more, is covered by a black box grown by a margin (:func:`~kicc_analysis.deid.ocr.blank`);
  the blanked image is read again and must hold no identifying line. Such a file is written with Burned In
  Annotation ``NO`` and its boxes in the manifest; compressed pixel data is written decompressed (Explicit VR
  Little Endian) then. A file is quarantined (not written; its reason in the manifest) only when its text
  cannot be localised: flagged ``YES`` with OCR off or tesseract absent, flagged with no text read, several
  frames with text, pixels that cannot be decoded, or identifying text still read after blanking;
* PatientIdentityRemoved ``YES``, De-identification Method and its Code Sequence, and Longitudinal Temporal
  Information Modified ``MODIFIED`` are recorded.

The input is never modified; OUT may not be inside IN (nor IN inside OUT); the key file may not be under OUT.
Every output file is written to a temporary name and renamed (atomic); ``manifest.partial.jsonl`` records each
file as it is done, so an interrupted run resumes; the final ``manifest.json`` (input and output SHA-256, key
fingerprint, profile) lets :func:`verify_output` prove the output matches it. Output paths hold only
pseudonyms and new UIDs: ``OUT/dicom/<pseudonym>/<study>/<series>/<instance>.dcm``. Elements kept unchanged
are written back byte for byte (:mod:`kicc_analysis.deid.encode`); the preamble is zeros. The optional
re-identification table (``reid_table``) is encrypted and written only where asked, never inside OUT or IN
(:mod:`kicc_analysis.deid.reid`).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from kicc_analysis._cache import file_content_hash
from kicc_analysis.deid import annex_e
from kicc_analysis.deid.audit import _known_values, safe_int
from kicc_analysis.deid.encode import encode_file
from kicc_analysis.deid.keys import (
    DeidError,
    date_offset_days,
    fingerprint,
    load_key,
    new_uid,
    normalise_site,
    pseudonym,
)
from kicc_analysis.deid.reid import COLUMNS as REID_COLUMNS
from kicc_analysis.deid.reid import check_reid_path, write_reid_table
from kicc_analysis.privacy import find_identifier_columns, scan_text
from kicc_analysis.progress import progress_bar
from kicc_analysis.repository.header import _quiet_pydicom

#: Private attributes kept: (private creator, element offset). None verified safe yet, so none kept.
SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()
#: Dummy values for ``D`` actions, by VR (anything else: ``ANONYMIZED``).
DUMMY_BY_VR = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y", "IS": "0", "DS": "0"}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}
_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
PROFILE = f"PS3.15 {annex_e.EDITION} Basic Application Level Confidentiality Profile"


def _shift_da(value: str, days: int) -> str:
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        return ""
    try:
        d = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return ""
    return (d + timedelta(days=days)).strftime("%Y%m%d")


def _shift_dt(value: str, days: int) -> str:
    value = value.strip()
    if len(value) < 8:
        return ""
    head = _shift_da(value[:8], days)
    return head + value[8:] if head else ""


def _known_pattern(known: set[str] | frozenset[str]) -> re.Pattern[str] | None:
    """A case-insensitive lookahead over the known identifying values, longest first, that matches at every
    position (overlapping occurrences included); ``None`` when there are none."""
    if not known:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(known, key=lambda v: (-len(v), v)))
    return re.compile(f"(?=({alternatives}))", re.IGNORECASE)


def _scrub(text: str, known: set[str], pattern: re.Pattern[str] | None = None) -> str:
    """``text`` with identifier spans (privacy detector) and known identifying values overwritten by ``*``.

    ``pattern`` is :func:`_known_pattern` of ``known``, compiled once per file by the caller (built here when
    omitted).
    """
    chars = list(text)
    for f in scan_text(text):
        if f.start is not None and f.end is not None:
            chars[f.start : f.end] = "*" * (f.end - f.start)
    pattern = _known_pattern(known) if pattern is None else pattern
    if pattern is not None:
        for m in pattern.finditer(text):  # every occurrence, overlapping ones too, is overwritten
            chars[m.start(1) : m.end(1)] = "*" * (m.end(1) - m.start(1))
    return "".join(chars)


def _cap_age(value: str) -> str:
    m = re.fullmatch(r"(\d{3})Y", value.strip())
    return "090Y" if m and int(m.group(1)) > 89 else value


@dataclass
class _Context:
    key: bytes
    pseudonym: str
    offset: int
    known: set[str]
    options: tuple[str, ...]
    pattern: re.Pattern[str] | None = None


@lru_cache(maxsize=65536)
def _uid_for(key: bytes, uid: str) -> str:
    """The new UID of ``uid`` (cached: a study's UIDs recur in every one of its files)."""
    return uid if not uid or uid.startswith("1.2.840.10008.") else new_uid(key, uid)


def _map_uids(value: Any, key: bytes) -> Any:
    def one(uid: str) -> str:
        return _uid_for(key, str(uid).strip().rstrip("\0"))

    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return [one(u) for u in value]
    return one(value) if value is not None else value


@lru_cache(maxsize=65536)
def _dictionary_vr(tag: int) -> str:
    """The data dictionary's VR of ``tag`` (``UN`` when unknown): raw elements of implicit-VR files carry none."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


#: VRs whose values are looked at (scrubbed, shifted, replaced) when the table keeps or cleans them.
_LOOKED_AT = _TEXT_VRS | {"DA", "DT", "UI", "SQ"}


def _process(ds: Dataset, ctx: _Context) -> None:
    """Apply the profile to every element of ``ds`` and its sequence items, in place.

    Elements are judged on their raw form (tag, VR) first: an element the profile keeps and whose VR cannot
    hold text (numbers, pixel data...) is never decoded, so it is written back byte for byte.
    """
    for tag in list(ds.keys()):
        t = int(tag)
        if t >> 16 & 1:  # private group (odd)
            if not SAFE_PRIVATE:
                del ds[tag]
                continue
            try:
                creator = getattr(ds[tag], "private_creator", None)
            except Exception:  # unconvertible value: nothing safe to keep
                creator = None
            if (creator, t & 0xFF) not in SAFE_PRIVATE:
                del ds[tag]
            continue
        if t >> 16 == 0x0002:
            continue
        raw = ds.get_item(tag)
        # the VR the file gives, or the dictionary's when it gives none (implicit VR) or UN (pydicom converts such
        # a public element to its dictionary VR, so a text element written as UN is still scrubbed)
        vr = "UN" if raw is None else raw.VR if raw.VR not in (None, "UN") else _dictionary_vr(t)
        code = annex_e.action(t, ctx.options)
        kept = code in (None, "C", "K") and t not in (0x00100010, 0x00100020, 0x00101010)
        if kept and vr not in _LOOKED_AT:
            continue  # kept as read, never decoded
        if kept and vr in _TEXT_VRS and raw is not None and raw.is_raw:
            value = raw.value or b""
            # plain ASCII (no ISO 2022 escape) decodes the same under every DICOM character set: scrub it here,
            # and leave the element raw when nothing in it identifies anyone
            if value.isascii() and b"\x1b" not in value:
                text = value.decode("ascii").rstrip("\0 ")
                if not text.strip() or _scrub(text, ctx.known, ctx.pattern) == text:
                    continue
        if (
            raw is not None
            and raw.is_raw
            and not raw.value
            and code is not None
            and code not in ("C", "K", "U")
            and t not in (0x00100010, 0x00100020)
        ):
            if code.startswith("X"):
                del ds[tag]
            continue  # empty already
        try:
            elem = ds[tag]
        except Exception:  # unconvertible value: nothing safe to keep
            del ds[tag]
            continue
        vr = elem.VR
        if t in (0x00100010, 0x00100020):
            elem.value = ctx.pseudonym
            continue
        if vr == "SQ":
            if code == "X":
                del ds[tag]
            elif code == "Z":
                elem.value = []
            else:
                for item in elem.value or []:
                    _process(item, ctx)
            continue
        if vr == "UI":
            if code == "X":
                del ds[tag]
            else:
                elem.value = _map_uids(elem.value, ctx.key)
            continue
        if elem.value in (None, "", b"") or (code is None and vr not in _TEXT_VRS | {"DA", "DT"}):
            continue
        if code == "K" and t == 0x00101010:
            elem.value = _cap_age(str(elem.value))
            continue
        if code is None or code in ("C", "K"):
            if vr == "DA":
                elem.value = _shift_da(str(elem.value), ctx.offset)
            elif vr == "DT":
                elem.value = _shift_dt(str(elem.value), ctx.offset)
            elif vr in _TEXT_VRS:
                text = (
                    "\\".join(map(str, elem.value))
                    if isinstance(elem.value, pydicom.multival.MultiValue)
                    else str(elem.value)
                )
                cleaned = _scrub(text, ctx.known, ctx.pattern)
                if cleaned != text:
                    elem.value = cleaned.split("\\") if "\\" in cleaned and vr not in ("LT", "ST", "UT") else cleaned
            continue
        if code == "X":
            del ds[tag]
        elif "D" in code.split("/"):
            if vr in _BINARY_VRS:
                elem.value = b""
            elif vr in _NUMERIC_VRS:
                elem.value = 0
            else:
                elem.value = DUMMY_BY_VR.get(vr, "ANONYMIZED")
        else:  # Z, X/Z, X/Z/U* on a non-sequence
            elem.value = b"" if vr in _BINARY_VRS else ("" if vr not in _NUMERIC_VRS else None)


def deidentify_dataset(
    ds: Dataset, key: bytes, site: str, *, options: tuple[str, ...] = annex_e.OPTIONS
) -> tuple[Dataset, str]:
    """De-identify ``ds`` in place (see the module docstring); return it and the patient pseudonym.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.PatientID = "12345678"; ds.PatientName = "HONG^GILDONG"; ds.StudyDate = "20200301"
    >>> ds.StudyInstanceUID = "1.2.410.200010.1.20200301"; ds.SeriesDescription = "CHEST HONG"
    >>> out, p = deidentify_dataset(ds, b"k" * 32, "S03")
    >>> str(out.PatientName) == p == out.PatientID, out.StudyDate, out.SeriesDescription, out.PatientIdentityRemoved
    (True, '20150806', 'CHEST ****', 'YES')
    """
    local_id = str(ds.get("PatientID", "")).strip()
    pseudo = pseudonym(key, site, local_id)
    known = _known_values(ds)
    ctx = _Context(key, pseudo, date_offset_days(key, pseudo), known, tuple(options), _known_pattern(known))
    _process(ds, ctx)  # removes private elements at every depth too
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = f"kicc deidentify; PS3.15 {annex_e.EDITION} Basic Profile + {len(options)} options"
    items = []
    for name in ("basic", *options):
        code, meaning = annex_e.PROFILE_CODES[name]
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    if "longitudinal_modified_dates" in options:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    return ds, pseudo


#: Output folders this process has made (saves a ``mkdir`` per file).
_MADE: set[Path] = set()


def _atomic_write(path: Path, data: bytes) -> None:
    if path.parent not in _MADE or not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE.add(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class DeidRun:
    """What :func:`deidentify_repository` did (counts only; no input path or value)."""

    out: Path
    written: int = 0
    resumed: int = 0
    quarantined: int = 0
    blanked: int = 0
    not_dicom: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reid_table: Path | None = None

    def summary(self) -> str:
        return (
            f"deidentify: {self.written} files written, {self.resumed} already done (resumed), "
            f"{self.blanked} with burned-in text blanked, {self.quarantined} quarantined for manual review "
            f"(burned-in text not localised), {self.not_dicom} not DICOM (not copied), "
            f"{len(self.problems)} problems; manifest {self.out / 'manifest.json'}"
            + (f"; encrypted re-identification table {self.reid_table}" if self.reid_table else "")
            + "".join(f"\n  warning: {w}" for w in self.warnings)
        )


def _check_paths(inp: Path, out: Path, key_path: Path) -> None:
    if not inp.is_dir():
        raise DeidError(f"{inp}: not a folder (expected the repository to de-identify)")
    if out.is_relative_to(inp) or inp.is_relative_to(out):
        raise DeidError(f"OUT {out} is inside IN {inp} (or IN inside OUT): choose an output folder outside the input")
    if key_path.is_relative_to(out):
        raise DeidError(f"key file {key_path} is under OUT {out}: keep the key outside the output")


def deidentify_repository(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    site: str,
    *,
    options: tuple[str, ...] = annex_e.OPTIONS,
    workers: int | None = None,
    ocr: bool | None = None,
    reid_table: str | os.PathLike[str] | None = None,
    show: bool | None = None,
) -> DeidRun:
    """De-identify every DICOM file under ``inp`` into ``out`` (see the module docstring).

    Parameters
    ----------
    inp, out : path
        Input repository (read only) and output folder (created; may hold an interrupted run to resume).
    key_file : path
        The secret key (:func:`kicc_analysis.deid.keys.load_key`); never written under ``out``.
    site : str
        The contributing site, ``S01``-``S99`` (part of every pseudonym).
    workers : int, optional
        Processes (a fork pool on Linux, from 16 files); the output does not depend on it. Default:
        :func:`kicc_analysis.deid.audit.default_workers` of the number of files (one process below 1,000).
    ocr : bool, optional
        Read burned-in text (Clean Pixel Data, see the module docstring). Default: when tesseract is installed;
        without it, a warning, and files flagged Burned In Annotation ``YES`` are quarantined.
    reid_table : path, optional
        Write the encrypted re-identification table there (:mod:`kicc_analysis.deid.reid`); refused inside
        ``out`` and inside ``inp``.
    """
    inp, out, key_path = Path(inp).resolve(), Path(out).resolve(), Path(key_file).resolve()
    _check_paths(inp, out, key_path)
    reid_path = check_reid_path(reid_table, inp, out) if reid_table is not None else None
    key = load_key(key_path)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "manifest.partial.jsonl"
    done: dict[str, dict] = {}
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the interruption
                continue
            done[entry["input_sha256"]] = entry
    run = DeidRun(out)
    if ocr is None or ocr:
        from kicc_analysis.deid.ocr import tesseract_available

        if not tesseract_available() and "clean_pixel" in options:
            message = (
                "burned-in text not read: the tesseract program is not installed (apt: tesseract-ocr); "
                "radiographs are written unread and files flagged Burned In Annotation YES are quarantined"
            )
            warnings.warn(message, stacklevel=2)
            run.warnings.append(message)
            ocr = False
        ocr = ocr is not False
    files = sorted(p for p in inp.rglob("*") if p.is_file())
    entries: dict[str, dict] = {}
    reid_rows: set[tuple] = set()
    chunks = [files[i : i + 16] for i in range(0, len(files), 16)]
    bar = progress_bar(total=len(files), show=show, desc="deidentify", unit="file")
    with open(partial, "a", encoding="utf-8") as log:

        def record(part: tuple[list[tuple[dict, bool]], int, list[str], list[tuple]]) -> None:
            done_entries, not_dicom, problems, rows = part
            reid_rows.update(rows)
            run.not_dicom += not_dicom
            run.problems += problems
            for entry, resumed in done_entries:
                entries[entry["input_sha256"]] = entry
                if resumed:
                    run.resumed += 1
                    continue
                run.written += entry["status"] == "written"
                log.write(json.dumps(entry, sort_keys=True) + "\n")
            log.flush()
            bar.update(len(done_entries) + not_dicom + len(problems))

        if workers is None:
            from kicc_analysis.deid.audit import default_workers

            workers = default_workers(len(files))
        if workers > 1 and len(files) >= 16:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context(method), initializer=_set_resume, initargs=(done,)
            ) as pool:
                for part in pool.map(
                    _chunk,
                    chunks,
                    [out] * len(chunks),
                    [key] * len(chunks),
                    [site] * len(chunks),
                    [tuple(options)] * len(chunks),
                    [ocr] * len(chunks),
                    [reid_path is not None] * len(chunks),
                ):
                    record(part)
        else:
            _set_resume(done)
            try:
                for chunk in chunks:
                    record(_chunk(chunk, out, key, site, tuple(options), ocr, reid_path is not None))
            finally:
                _set_resume({})
    bar.close()
    manifest = {
        "profile": PROFILE,
        "options": list(options),
        "table_edition": annex_e.EDITION,
        "key_fingerprint": fingerprint(key),
        "site": site,
        "files": sorted(entries.values(), key=lambda e: (e.get("output") or "", e["input_sha256"])),
    }
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    partial.unlink(missing_ok=True)
    run.quarantined = sum(1 for e in entries.values() if e.get("status") == "quarantined")
    run.blanked = sum(1 for e in entries.values() if e.get("pixels") == "blanked")
    if reid_path is not None:
        run.reid_table = write_reid_table(
            pd.DataFrame(sorted(reid_rows), columns=list(REID_COLUMNS)), reid_path, key_path
        )
    return run


#: Manifest entries of an interrupted run, by input SHA-256 (set in each worker by :func:`_set_resume`).
_RESUME: dict[str, dict] = {}


def _set_resume(done: dict[str, dict]) -> None:
    global _RESUME
    _RESUME = done


def _already_done(digest: str, out: Path) -> dict | None:
    """The interrupted run's entry for this input when its output is still there, intact."""
    previous = _RESUME.get(digest)
    if previous is None:
        return None
    if previous.get("output") is None:
        return previous
    path = out / previous["output"]
    return previous if path.is_file() and file_content_hash(path) == previous["output_sha256"] else None


def _reid_row(ds: Dataset, key: bytes, site: str) -> tuple:
    """The re-identification table's row of a file's study (before its header is de-identified)."""
    local_id = str(ds.get("PatientID", "")).strip()
    pseudo = pseudonym(key, site, local_id)
    study = str(ds.get("StudyInstanceUID", "")).strip().rstrip("\0")
    return (
        normalise_site(site),
        local_id,
        pseudo,
        str(date_offset_days(key, pseudo)),
        study,
        str(ds.get("AccessionNumber", "") or "").strip(),
        _uid_for(key, study) if study else "",
    )


def _chunk(
    items: list[Path],
    out: Path,
    key: bytes,
    site: str,
    options: tuple[str, ...],
    ocr: bool = False,
    reid: bool = False,
) -> tuple[list[tuple[dict, bool]], int, list[str], list[tuple]]:
    """Worker: de-identify a chunk of files; ((manifest entry, resumed), files not DICOM, problems,
    re-identification rows when ``reid``).

    Each file is read once: its bytes are hashed (manifest, resume) and parsed from memory.
    """
    run = DeidRun(out)
    entries = []
    rows: list[tuple] = []
    for path in items:
        try:
            data = path.read_bytes()
        except OSError as exc:
            run.problems.append(f"input file unreadable: {type(exc).__name__}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        previous = _already_done(digest, out)
        if previous is not None:
            entries.append((previous, True))
            if reid and previous.get("output"):  # the row of a file an interrupted run wrote
                with _quiet_pydicom():
                    rows.append(
                        _reid_row(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True), key, site)
                    )
            continue
        entry = _one_file(path, data, out, key, site, options, digest, run, ocr, rows if reid else None)
        if entry is not None:
            entries.append((entry, False))
    return entries, run.not_dicom, run.problems, rows


def _one_file(
    path: Path,
    data: bytes,
    out: Path,
    key: bytes,
    site: str,
    options: tuple[str, ...],
    digest: str,
    run: DeidRun,
    ocr: bool = False,
    reid_rows: list[tuple] | None = None,
) -> dict | None:
    try:
        with _quiet_pydicom():
            ds = pydicom.dcmread(
                io.BytesIO(data), force=path.suffix.lower() in (".dcm", ".dicom", ".ima") or not path.suffix
            )
            if "SOPClassUID" not in ds or "PixelData" not in ds and ds.get("DirectoryRecordSequence") is not None:
                raise InvalidDicomError("not an image instance (DICOMDIR or not DICOM)")
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError):
        run.not_dicom += 1
        return None
    if reid_rows is not None:
        reid_rows.append(_reid_row(ds, key, site))
    pixels: dict[str, Any] = {}
    if "clean_pixel" in options:
        pixels = clean_pixels(ds, ocr)
        if pixels.get("pixels") == "quarantined":
            return {
                "input_sha256": digest,
                "output": None,
                "output_sha256": None,
                "status": "quarantined",
                "reason": pixels["reason"],
            }
    try:
        with _quiet_pydicom():
            ds, pseudo = deidentify_dataset(ds, key, site, options=options)
            sop_class = ds.get("SOPClassUID")
            transfer = ds.file_meta.get("TransferSyntaxUID") if ds.get("file_meta") is not None else None
            transfer = transfer or getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = transfer or pydicom.uid.ExplicitVRLittleEndian
            data = encode_file(ds, meta)
    except Exception as exc:  # one bad file never stops the run
        run.problems.append(f"input sha256 {digest[:12]}: {type(exc).__name__}")
        return None
    rel = Path(
        "dicom",
        pseudo,
        str(ds.get("StudyInstanceUID", "nostudy")),
        str(ds.get("SeriesInstanceUID", "noseries")),
        f"{ds.SOPInstanceUID}.dcm",
    )
    _atomic_write(out / rel, data)
    return {
        "input_sha256": digest,
        "output": rel.as_posix(),
        "output_sha256": hashlib.sha256(data).hexdigest(),
        "status": "written",
        **pixels,
    }


def _fill_value(ds: Dataset, pixels: np.ndarray) -> float:
    """The stored value that displays black: the image's maximum for MONOCHROME1, else its minimum."""
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        return float(pixels.max())
    return float(pixels.min())


def clean_pixels(ds: Dataset, ocr: bool) -> dict[str, Any]:
    """Clean Pixel Data on ``ds`` (before its header is de-identified: the header's names and IDs are what the
    OCR'd text is matched against); see the module docstring.

    Returns the manifest fields: ``{}`` (not read), ``{"pixels": "read"}`` (read, nothing to blank),
    ``{"pixels": "blanked", "boxes": [[x, y, width, height], ...]}`` (the grown boxes, in pixels; the pixel
    data replaced and Burned In Annotation set to ``NO``) or ``{"pixels": "quarantined", "reason": ...}``.
    """
    from kicc_analysis.deid import ocr as ocr_module

    flagged = str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"
    modality = str(ds.get("Modality", "")).strip().upper()
    if not flagged and (modality not in ocr_module.OCR_MODALITIES or not ocr):
        return {}
    if not ocr:
        return {"pixels": "quarantined", "reason": "burned-in annotation YES, text not read (OCR off)"}
    if "PixelData" not in ds:
        return {"pixels": "quarantined", "reason": "burned-in annotation YES, no pixel data"} if flagged else {}
    known = _known_values(ds)
    try:
        with _quiet_pydicom():
            image = ds.pixel_array
    except Exception as exc:  # undecodable pixels: the text cannot be localised
        return {"pixels": "quarantined", "reason": f"pixel data not decoded ({type(exc).__name__})"}
    frames, samples = safe_int(ds, "NumberOfFrames", 1), safe_int(ds, "SamplesPerPixel", 1)
    first = image[0] if frames > 1 else image
    lines = ocr_module.read_lines(first)
    targets = ocr_module.targets_of(known)
    boxes = [
        line.box for line in lines if ocr_module.identifying(line, targets) or (flagged and ocr_module.is_word(line))
    ]
    if not boxes:
        if flagged:
            return {"pixels": "quarantined", "reason": "burned-in annotation YES, no text read to localise"}
        if frames == 1:  # every frame read
            ds.BurnedInAnnotation = "NO"
        return {"pixels": "read"}
    if frames > 1:
        return {"pixels": "quarantined", "reason": f"burned-in text in a {frames}-frame image"}
    transfer = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if transfer is not None and pydicom.uid.UID(transfer).is_compressed:
        try:
            with _quiet_pydicom():
                ds.decompress(generate_instance_uid=False)  # the blanked pixels are written uncompressed
                image = ds.pixel_array
        except Exception as exc:
            return {"pixels": "quarantined", "reason": f"pixel data not re-encoded ({type(exc).__name__})"}
    blanked = ocr_module.blank(image, boxes, _fill_value(ds, image))
    if any(ocr_module.identifying(line, targets) for line in ocr_module.read_lines(blanked)):
        return {"pixels": "quarantined", "reason": "identifying text still read after blanking"}
    if samples > 1 and safe_int(ds, "PlanarConfiguration", 0) == 1:
        blanked = np.moveaxis(blanked, -1, 0)  # colour-by-plane storage
    ds.PixelData = np.ascontiguousarray(blanked, dtype=image.dtype).tobytes()
    ds.BurnedInAnnotation = "NO"
    grown = [list(ocr_module.grown(box, image.shape)) for box in sorted(set(boxes))]
    return {"pixels": "blanked", "boxes": grown}


def verify_output(out: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> list[str]:
    """Problems between ``out`` and its manifest (empty list = the output is exactly what the manifest says)."""
    out = Path(out)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: no manifest (run kicc deidentify first, or it was interrupted)"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = []
    if manifest.get("key_fingerprint") != fingerprint(load_key(key_file)):
        problems.append("key fingerprint differs from the manifest's (another key made this output)")
    listed = set()
    for entry in manifest["files"]:
        if entry.get("output") is None:
            continue
        listed.add(entry["output"])
        path = out / entry["output"]
        if not path.is_file():
            problems.append(f"{entry['output']}: missing")
        elif file_content_hash(path) != entry["output_sha256"]:
            problems.append(f"{entry['output']}: content differs from the manifest")
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in listed and rel != "manifest.json" and not rel.startswith("clinical/"):
            problems.append(f"{rel}: not in the manifest")
    return problems


_DATE_FORMATS = (
    (re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$"), (1, 2, 3)),
    (re.compile(r"^\s*(\d{4})[./](\d{1,2})[./](\d{1,2})\.?\s*$"), (1, 2, 3)),
    (re.compile(r"^\s*(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일\s*$"), (1, 2, 3)),
    (re.compile(r"^\s*(\d{4})(\d{2})(\d{2})\s*$"), (1, 2, 3)),
)


def _parse_date(text: str) -> date | None:
    for pattern, (y, m, d) in _DATE_FORMATS:
        match = pattern.match(text)
        if match:
            try:
                return date(int(match.group(y)), int(match.group(m)), int(match.group(d)))
            except ValueError:
                return None
    return None


def _free_text(values: pd.Series) -> bool:
    """True when most values hold several words (notes), not one value each (a name, a number)."""
    texts = [str(v) for v in values if str(v).strip()]
    return bool(texts) and sum(len(t.split()) >= 3 for t in texts) >= 0.5 * len(texts)


def deidentify_table(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    *,
    site: str | None = None,
    id_column: str = "patient_id",
    site_column: str | None = None,
) -> pd.DataFrame:
    """De-identify a clinical export with the same key as the DICOM: ``kicc deidentify-table``.

    The ``id_column`` (local patient IDs) becomes ``subjid`` = the same pseudonym the DICOM gets; identifier
    columns (:func:`kicc_analysis.privacy.find_identifier_columns`) are dropped, except free-text columns flagged
    for their content, which are cleaned; date columns (80 % or more of
    the values dates as ``YYYY-MM-DD``, ``YYYY.MM.DD``, ``YYYY년 MM월 DD일`` or ``YYYYMMDD``) are shifted by the
    patient's offset and written ``YYYY-MM-DD``; other text is cleaned of identifiers and of the dropped
    columns' values. Written atomically as UTF-8 CSV; returns the written table.
    """
    from kicc_analysis.clinical_io import read_clinical_table

    key = load_key(key_file)
    table = read_clinical_table(path)
    if id_column not in table.columns:
        raise DeidError(f"{path}: no column {id_column!r} (expected the local patient ID column; see --id-column)")
    if site_column is None and site is None:
        raise DeidError("give --site or --site-column (the site is part of every pseudonym)")
    sites = table[site_column] if site_column else pd.Series([site] * len(table), index=table.index)
    pseudos = [pseudonym(key, s, i) for s, i in zip(sites, table[id_column], strict=True)]
    offsets = [date_offset_days(key, p) for p in pseudos]
    keep = {id_column} | ({site_column} if site_column else set())
    flagged = find_identifier_columns(table, exclude=keep)
    # identifier columns go; a column flagged for its content alone (free text with an identifier in it) is
    # kept and cleaned, with every identifying value of the dropped columns
    drop = [f.where for f in flagged if f.reason == "column name" or not _free_text(table[f.where])]
    known = {str(v).strip() for c in drop + [id_column] for v in table[c] if len(str(v).strip()) >= 2}
    result = pd.DataFrame({"subjid": pseudos}, index=table.index)
    for column in table.columns:
        if column in drop or column == id_column:
            continue
        values = table[column].astype(str)
        non_empty = [v for v in values if v.strip()]
        parsed = [_parse_date(v) for v in non_empty]
        if non_empty and sum(p is not None for p in parsed) >= 0.8 * len(non_empty):
            shifted = []
            for v, offset in zip(values, offsets, strict=True):
                d = _parse_date(v)
                shifted.append((d + timedelta(days=offset)).isoformat() if d else "")
            result[column] = shifted
        elif column == site_column:
            result[column] = values
        else:
            result[column] = [_scrub(v, known) if v.strip() else v for v in values]
    out_path = Path(out_path)
    _atomic_write(out_path, result.to_csv(index=False).encode("utf-8"))
    return result
