"""Audit a DICOM repository (and its clinical tables) for identifiers left behind: ``kicc audit``.

Every element of every file, at every sequence depth and in private groups, is checked:

* against PS3.15 Table E.1-1 (:mod:`kicc_analysis.deid.annex_e`) under the options the file claims in its
  De-identification Method Code Sequence (0012,0064): a non-empty value where the profile removes, empties or
  replaces it (``annex_e``), a UID not replaced by a ``2.25.`` UID (``uid_not_replaced``);
* free text (every string VR, private values too) through the package's one identifier detector
  (:func:`kicc_analysis.privacy.scan_text`) and against the file's own identifying values (names, IDs)
  (``free_text:<kind>``, ``known_identifier``);
* private elements (``private_tag``; the Basic Profile removes them), UIDs under an organisation's root or with an embedded date
  (``uid_root``, ``uid_timestamp``), ``PatientIdentityRemoved`` not ``YES`` (``identity_not_removed``);
* file and folder names (``path:<kind>``, ``path_known_identifier``);
* dates not consistent within a study or a patient (``date_inconsistent``);
* the clinical tables (``table_column:<kind>``, ``table_text:<kind>``) through :mod:`kicc_analysis.privacy`.

Findings never hold a value: a masked preview (:func:`kicc_analysis.privacy.mask_identifier`) and a keyed hash
(:func:`kicc_analysis.deid.keys.keyed_hash`) only, unless ``unmasked=True``. A per-tag review table lists every
tag's distinct values (counted, hashed, masked) as TCIA's Posda does.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import secrets
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.datadict import dictionary_keyword, dictionary_VR
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from kicc_analysis.deid import annex_e
from kicc_analysis.deid.keys import keyed_hash
from kicc_analysis.privacy import find_identifier_columns, is_pseudonym, mask_identifier, scan_text
from kicc_analysis.progress import progress_bar
from kicc_analysis.repository.header import _quiet_pydicom

#: String VRs whose values are scanned as free text.
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "DS", "IS", "AS", "UN", "OB"})
#: Values the de-identifier writes for ``D`` actions (accepted by the audit as de-identified).
DUMMY_VALUES = frozenset(
    {"", "ANONYMIZED", "ANON", "REMOVED", "0", "00000000", "000000", "19000101", "19000101000000", "000Y"}
)
#: UID roots that are not an organisation's (standard UIDs, UUID-derived UIDs).
NEUTRAL_UID_ROOTS = ("1.2.840.10008.", "2.25.")
_UID_DATE = re.compile(r"(?:^|\.)((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))")
SEVERITIES = ("high", "medium", "low", "info")
_BINARY_VRS = frozenset({"OB", "OW", "OF", "UN", "OD", "OL", "OV"})
CLINICAL_SUFFIXES = (".csv", ".xlsx", ".tsv", ".txt")


@dataclass
class AuditResult:
    """Everything :func:`audit_repository` found.

    Attributes
    ----------
    findings : pandas.DataFrame
        One row per finding: file, element_path, tag, keyword, vr, rule, severity, preview, value_hash, bbox.
    review : pandas.DataFrame
        Per tag (keyword, VR, Annex E action): files, distinct values, masked examples with keyed hashes.
    n_files, n_dicom : int
        Files looked at and DICOM files among them.
    warnings : list of str
        Checks skipped and why (e.g. OCR without tesseract).
    """

    findings: pd.DataFrame
    review: pd.DataFrame
    n_files: int
    n_dicom: int
    warnings: list[str] = field(default_factory=list)

    @property
    def n_high(self) -> int:
        return int((self.findings["severity"] == "high").sum()) if len(self.findings) else 0

    def summary(self) -> str:
        """A few lines: files, findings by severity and by rule."""
        lines = [f"audit: {self.n_files} files ({self.n_dicom} DICOM), {len(self.findings)} findings"]
        if len(self.findings):
            by_sev = self.findings["severity"].value_counts()
            lines.append("  " + ", ".join(f"{s}: {int(by_sev.get(s, 0))}" for s in SEVERITIES))
            for rule, n in self.findings["rule"].value_counts().head(25).items():
                lines.append(f"  {rule:32s} {n}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@lru_cache(maxsize=65536)
def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _value_text(elem: Any) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        if len(value) > 65536:
            return ""
        return bytes(value).decode("utf-8", errors="replace").replace("\x00", " ").strip()
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


@lru_cache(maxsize=65536)
def _keyword(tag: int) -> str:
    try:
        return dictionary_keyword(tag)
    except KeyError:
        return ""


@lru_cache(maxsize=65536)
def _plain_vr(tag: int) -> str | None:
    """The dictionary VR of a public tag when it is one plain VR (not ``US or SS``...), else ``None``."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if len(vr) == 2 and vr not in ("UN", "SQ") else None


#: Texts of raw values already converted in this process, by (VR, byte order, character set, bytes): a
#: repository repeats the same values (rows, columns, modality, UIDs of a series...) in every file.
_TEXTS: dict[tuple, str] = {}
_MAX_CACHED_BYTES = 1024  # and at most 100,000 entries (emptied when full)


def _text_of(ds: pydicom.Dataset, tag: BaseTag, raw: Any, charset: str | tuple) -> tuple[str, str, Any]:
    """(VR, value text as :func:`_value_text` gives it, the converted element or ``None``) of element ``tag``.

    A raw element whose VR is settled without the dataset's context (explicit and not ``UN``, or a public tag
    of one plain dictionary VR) is converted once per distinct value and process (:data:`_TEXTS`); anything
    else through pydicom every time, as before.
    """
    vr = raw.VR if raw.VR is not None else (None if tag.is_private else _plain_vr(int(tag)))
    value = raw.value
    if vr is None or vr in ("UN", "SQ") or len(vr) != 2 or value is None or len(value) > _MAX_CACHED_BYTES:
        return _converted(ds, tag)
    cache_key = (vr, raw.is_little_endian, charset, value)
    text = _TEXTS.get(cache_key)
    if text is None:
        vr_converted, text, _ = _converted(ds, tag)
        if vr_converted != vr:  # pydicom settled another VR: not cacheable
            return vr_converted, text, None
        if len(_TEXTS) >= 100_000:
            _TEXTS.clear()
        _TEXTS[cache_key] = text
    return vr, text, None


def _converted(ds: pydicom.Dataset, tag: BaseTag) -> tuple[str, str, Any]:
    try:
        elem = ds[tag]
    except Exception:  # an element pydicom cannot convert (bad VR/length): its raw bytes are checked
        elem = ds.get_item(tag)
    return str(getattr(elem, "VR", "") or ""), _value_text(elem), elem


def _walk(ds: pydicom.Dataset, prefix: str = "") -> Iterator[tuple[str, int, str, str, Any]]:
    """(path prefix, tag, VR, value text, sequence items or ``None``) for every element at every depth (the
    element's path is the prefix + its tag, :func:`_tag_text`); unreadable elements are skipped."""
    try:
        charset = ds._character_set
    except Exception:  # an unreadable Specific Character Set: every value through pydicom
        charset = None
    charset = charset if isinstance(charset, str) or charset is None else tuple(charset)
    for tag, raw in list(ds._dict.items()):  # the elements as read: raw until something converts them
        t = int(tag)
        if raw.is_raw and charset is not None and raw.VR != "SQ":
            if raw.VR is not None or tag.is_private or _plain_vr(t) is not None:
                try:
                    vr, text, _ = _text_of(ds, tag, raw, charset)
                except Exception:
                    continue
                if vr != "SQ":  # (a sequence written as UN, settled by pydicom, is walked below)
                    yield prefix, t, vr, text, None
                    continue
        try:
            elem = ds[tag]
        except Exception:
            try:
                elem = ds.get_item(tag)
            except Exception:
                continue
            if elem is None:
                continue
        vr = str(getattr(elem, "VR", "") or "")
        if vr == "SQ":
            try:
                items = list(elem.value) if elem.value is not None else []
            except Exception:
                continue
            yield prefix, t, vr, "", items
            path = prefix + _tag_text(t)
            for i, item in enumerate(items):
                yield from _walk(item, f"{path}[{i}]>")
        else:
            yield prefix, t, vr, _value_text(elem), None


@lru_cache(maxsize=65536)
def _keyword_of(tag: int) -> str:
    """The element's keyword as reports show it (``""`` for private tags)."""
    return "" if tag >> 16 & 1 else _keyword(tag)


def _known_values(ds: pydicom.Dataset) -> set[str]:
    """The file's own identifying values (names and their parts, IDs) that must not appear elsewhere."""
    known: set[str] = set()
    for keyword in (
        "PatientName",
        "PatientID",
        "OtherPatientIDs",
        "PatientBirthName",
        "PatientMotherBirthName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "AccessionNumber",
        "InstitutionName",
        "IssuerOfPatientID",
    ):
        value = ds.get(keyword)
        if value in (None, ""):
            continue
        text = str(value).strip()
        if not text or is_pseudonym(text) or text.upper() in DUMMY_VALUES:
            continue
        for part in [text, *re.split(r"[\^\\ =]+", text)]:
            if len(part) >= 4 or (len(part) >= 2 and not part.isascii()):
                known.add(part)
    return known


def _claimed_options(ds: pydicom.Dataset) -> tuple[str, ...]:
    codes = {str(item.get("CodeValue", "")) for item in ds.get("DeidentificationMethodCodeSequence", []) or []}
    return tuple(name for name, (code, _) in annex_e.PROFILE_CODES.items() if code in codes and name != "basic")


class _Collector:
    def __init__(self, key: bytes, file: str, unmasked: bool) -> None:
        self.key, self.file, self.unmasked = key, file, unmasked
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        rule: str,
        severity: str,
        value: str = "",
        *,
        path: str = "",
        tag: int | None = None,
        keyword: str = "",
        vr: str = "",
        bbox: str = "",
    ) -> None:
        self.rows.append(
            {
                "file": self.file,
                "element_path": path,
                "tag": _tag_text(tag) if tag is not None else "",
                "keyword": keyword,
                "vr": vr,
                "rule": rule,
                "severity": severity,
                "preview": (value if self.unmasked else _mask(value)) if value else "",
                "value_hash": _hash(self.key, value) if value else "",
                "bbox": bbox,
            }
        )


def masked_name(part: str, key: bytes) -> str:
    """A file or folder name as reports show it: masked, plus 8 characters of its keyed hash (distinct names
    stay distinct)."""
    return f"{mask_identifier(part)}#{keyed_hash(key, part)[:8]}"


def audit_path_names(rel: str, known: set[str], c: _Collector) -> str:
    """Identifiers in the folder and file names of ``rel`` (one finding per component); return ``rel`` with
    those components masked (as every report shows it, unless unmasked)."""
    shown = []
    for part in Path(rel).parts:
        stem = re.sub(r"\.(dcm|dicom|ima|csv|xlsx)$", "", part, flags=re.IGNORECASE)
        spaced = re.sub(r"[_]+", " ", stem)
        found = scan_text(spaced)
        rule = f"path:{found[0].kind}" if found else ("path_known_identifier" if any(k in part for k in known) else "")
        masked = part if (not rule or c.unmasked) else masked_name(part, c.key)
        if rule:
            c.add(rule, "high", part, path=masked)
        shown.append(masked)
    return "/".join(shown)


def audit_dataset(ds: pydicom.Dataset, c: _Collector, review: dict | None = None) -> dict[str, Any]:
    """Check every element of ``ds`` into collector ``c``; return the file's facts for cross-file checks."""
    options = _claimed_options(ds)
    known = _known_values(ds)
    if str(ds.get("PatientIdentityRemoved", "")).strip().upper() != "YES":
        c.add(
            "identity_not_removed",
            "high",
            path="(0012,0062)",
            tag=0x00120062,
            keyword="PatientIdentityRemoved",
            vr="CS",
        )
    for prefix, tag, vr, text, items in _walk(ds):
        if vr == "SQ":
            code = annex_e.action(tag, options)
            if code in ("X", "Z") and items:
                path, keyword = prefix + _tag_text(tag), _keyword_of(tag)
                c.add(f"annex_e:{code}", "high", path=path, tag=tag, keyword=keyword, vr=vr)
            continue
        if tag in (0x7FE00010,) or (tag >> 16) in (0x0002,) and tag != 0x00020003:
            continue
        if not text:
            continue
        if review is not None and vr not in _BINARY_VRS:
            key = (_tag_text(tag), _keyword_of(tag), vr)
            review.setdefault(key, {}).setdefault(_hash(c.key, text), [text, 0])[1] += 1
        path, keyword = prefix + _tag_text(tag), _keyword_of(tag)
        private = bool(tag >> 16 & 1)
        if private:
            if tag & 0xFFFF < 0x0100:  # private creator: the vendor's block name
                continue
            c.add("private_tag", "high", text, path=path, tag=tag, keyword=keyword, vr=vr)
        code = None if private else annex_e.action(tag, options)
        if vr == "UI" or code == "U":
            _check_uid(text, code, c, path, tag, keyword, vr)
            continue
        if code is not None and code != "K":
            if code == "C":
                if options and "longitudinal_modified_dates" in options and vr in ("DA", "DT", "TM"):
                    continue
            elif not (is_pseudonym(text) or text.upper() in DUMMY_VALUES or text.startswith("KICC-")):
                c.add(f"annex_e:{code}", "high", text, path=path, tag=tag, keyword=keyword, vr=vr)
                continue
        if vr in TEXT_VRS or private:
            kind = _first_kind(text)
            if kind:
                c.add(f"free_text:{kind}", "high", text, path=path, tag=tag, keyword=keyword, vr=vr)
            elif tag not in (0x00100010, 0x00100020) and any(k in text for k in known):
                c.add("known_identifier", "high", text, path=path, tag=tag, keyword=keyword, vr=vr)
    return {
        "patient": str(ds.get("PatientID", "")),
        "birth": str(ds.get("PatientBirthDate", "")),
        "study": str(ds.get("StudyInstanceUID", "")),
        "study_date": str(ds.get("StudyDate", "")),
        "known": known,
    }


@lru_cache(maxsize=65536)
def _first_kind(text: str) -> str | None:
    """The kind of the first identifier :func:`kicc_analysis.privacy.scan_text` finds in ``text`` (cached)."""
    found = scan_text(text)
    return found[0].kind if found else None


@lru_cache(maxsize=65536)
def _mask(text: str) -> str:
    """:func:`kicc_analysis.privacy.mask_identifier` as text, cached."""
    return str(mask_identifier(text))


@lru_cache(maxsize=65536)
def _hash(key: bytes, text: str) -> str:
    """:func:`kicc_analysis.deid.keys.keyed_hash`, cached (the review hashes every value of every file)."""
    return keyed_hash(key, text)


def _check_uid(text: str, code: str | None, c: _Collector, path: str, tag: int, keyword: str, vr: str) -> None:
    for uid in text.split("\\"):
        uid = uid.strip().rstrip("\0")
        if not uid or uid.startswith(NEUTRAL_UID_ROOTS):
            continue
        if code is not None and code != "K":
            c.add("uid_not_replaced", "high", uid, path=path, tag=tag, keyword=keyword, vr=vr)
        else:
            c.add("uid_root", "medium", uid, path=path, tag=tag, keyword=keyword, vr=vr)
        if _UID_DATE.search(uid):
            c.add("uid_timestamp", "medium", uid, path=path, tag=tag, keyword=keyword, vr=vr)


def _ocr_file(full: str, ds: pydicom.Dataset, known: set[str], c: _Collector, *, any_modality: bool = False) -> None:
    """Burned-in text of a radiograph or secondary capture (pixels read only for those modalities, or for any
    modality with ``any_modality``: the sampled slices of a CT series)."""
    from kicc_analysis.deid import ocr

    modality = str(ds.get("Modality", "")).upper()
    if modality not in ocr.OCR_MODALITIES and not any_modality:
        return
    try:
        with _quiet_pydicom():
            pixels = pydicom.dcmread(full).pixel_array
        hits = ocr.burned_in_findings(pixels, known)
    except Exception as exc:  # undecodable pixels: reported, never fatal
        c.add("ocr_failed", "medium", path=f"{type(exc).__name__}")
        return
    for rule, text, box in hits:
        c.add(rule, "high", text, path="(7FE0,0010)", tag=0x7FE00010, keyword="PixelData", vr="", bbox=box)


def _audit_file(
    root: str, rel: str, key: bytes, unmasked: bool, ocr: bool = False
) -> tuple[list[dict], dict | None, dict]:
    c = _Collector(key, rel, unmasked)
    review: dict = {}
    full = os.path.join(root, rel)
    try:
        with _quiet_pydicom():
            try:
                ds = pydicom.dcmread(full, stop_before_pixels=True, force=False)
            except InvalidDicomError:
                if not rel.lower().endswith((".dcm", ".dicom", ".ima")) and "." in Path(rel).name:
                    raise
                ds = pydicom.dcmread(full, stop_before_pixels=True, force=True)
                if "SOPClassUID" not in ds and "PatientID" not in ds:
                    raise
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        c.file = audit_path_names(rel, set(), c)
        for row in c.rows:
            row["file"] = c.file
        if not rel.lower().endswith(CLINICAL_SUFFIXES):
            c.add("not_dicom", "info", path=f"{type(exc).__name__}")
        return c.rows, None, review
    try:
        with _quiet_pydicom():
            facts = audit_dataset(ds, c, review)
    except Exception as exc:  # one bad file never stops the audit
        c.add("unreadable_element", "medium", path=f"{type(exc).__name__}: {str(exc)[:80]}")
        facts = {"patient": "", "birth": "", "study": "", "study_date": "", "known": set()}
    if ocr:
        _ocr_file(full, ds, facts["known"], c)
    shown = audit_path_names(rel, facts["known"], c)
    for row in c.rows:
        row["file"] = shown
    facts = {k: (keyed_hash(key, v) if isinstance(v, str) and v and k != "study_date" else v) for k, v in facts.items()}
    facts["known"] = set()
    modality = str(ds.get("Modality", "")).strip().upper()
    if "Rows" in ds and modality not in _ocr_modalities() and safe_int(ds, "NumberOfFrames", 1) == 1:
        # a slice of a series: a few of each series are OCR'd after the header pass (see _series_sample)
        facts["series"] = keyed_hash(key, str(ds.get("SeriesInstanceUID", "")) or rel)
        facts["position"] = _slice_position(ds)
        facts["rel"] = rel
    return c.rows, facts, review


def safe_int(ds: pydicom.Dataset, keyword: str, default: int) -> int:
    """An integer element's value, ``default`` when absent, empty or not a number (odd files)."""
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def _ocr_modalities() -> frozenset[str]:
    from kicc_analysis.deid.ocr import OCR_MODALITIES

    return OCR_MODALITIES


def _slice_position(ds: pydicom.Dataset) -> float:
    """Where a slice sits in its series: Image Position (Patient) along the slice normal, else Instance Number."""
    try:
        position = [float(v) for v in ds.ImagePositionPatient]
        row, column = (
            [float(v) for v in ds.ImageOrientationPatient[:3]],
            [float(v) for v in ds.ImageOrientationPatient[3:]],
        )
        normal = (
            row[1] * column[2] - row[2] * column[1],
            row[2] * column[0] - row[0] * column[2],
            row[0] * column[1] - row[1] * column[0],
        )
        return float(sum(p * n for p, n in zip(position, normal, strict=True)))
    except Exception:  # noqa: BLE001 - absent or malformed geometry (odd files): fall back to the number
        try:
            return float(ds.get("InstanceNumber", 0) or 0)
        except Exception:  # noqa: BLE001
            return 0.0


def series_sample(n_slices: int, per_series: int) -> list[int]:
    """Indices of the slices of a series of ``n_slices`` (sorted by position) that are OCR'd: ``per_series``
    evenly spaced ones, first and last included (3: first, middle, last); all of them when the series is short.

    Examples
    --------
    >>> series_sample(120, 3), series_sample(2, 3), series_sample(9, 1), series_sample(9, 0)
    ([0, 60, 119], [0, 1], [4], [])
    """
    if per_series <= 0 or n_slices <= 0:
        return []
    if n_slices <= per_series:
        return list(range(n_slices))
    if per_series == 1:
        return [(n_slices - 1) // 2]
    return sorted({round(k * (n_slices - 1) / (per_series - 1)) for k in range(per_series)})


def _series_sample(facts: list[dict], per_series: int) -> list[str]:
    """The files (relative paths) of the slices :func:`series_sample` picks in every series."""
    by_series: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for f in facts:
        if "series" in f:
            by_series[f["series"]].append((f["position"], f["rel"]))
    chosen = []
    for _, slices in sorted(by_series.items()):
        slices.sort()
        chosen += [slices[i][1] for i in series_sample(len(slices), per_series)]
    return chosen


def _ocr_slice(root: str, rel: str, key: bytes, unmasked: bool) -> list[dict]:
    """Burned-in text findings of one sampled slice."""
    c = _Collector(key, rel, unmasked)
    full = os.path.join(root, rel)
    try:
        with _quiet_pydicom():
            ds = pydicom.dcmread(full, stop_before_pixels=True, force=True)
        known = _known_values(ds)
    except Exception as exc:  # read a moment ago; reported, never fatal
        c.add("ocr_failed", "medium", path=f"{type(exc).__name__}")
        known = set()
    else:
        _ocr_file(full, ds, known, c, any_modality=True)
    shown = audit_path_names(rel, known, _Collector(key, rel, unmasked))  # the path's own findings are in already
    for row in c.rows:
        row["file"] = shown
    return c.rows


def _ocr_slices(root: str, rels: Sequence[str], key: bytes, unmasked: bool) -> list[dict]:
    return [row for rel in rels for row in _ocr_slice(root, rel, key, unmasked)]


def _audit_chunk(root: str, rels: Sequence[str], key: bytes, unmasked: bool, ocr: bool = False) -> list[tuple]:
    return [_audit_file(root, rel, key, unmasked, ocr) for rel in rels]


def _list(root: Path) -> list[str]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            out.append(os.path.relpath(os.path.join(folder, name), root))
    return out


def audit_table(
    path: str | os.PathLike[str], key: bytes, *, rel: str | None = None, unmasked: bool = False
) -> list[dict]:
    """Findings in one clinical export: identifier columns, and identifiers in every other text cell."""
    from kicc_analysis.clinical_io import read_clinical_table

    c = _Collector(key, rel or str(path), unmasked)
    try:
        table = read_clinical_table(path)
    except Exception as exc:
        c.add("table_unreadable", "medium", path=f"{type(exc).__name__}: {str(exc)[:80]}")
        return c.rows
    flagged = set()
    for f in find_identifier_columns(table):
        flagged.add(f.where)
        c.add(f"table_column:{f.kind}", "high", path=f"column {f.where}", keyword=f.where)
    for column in table.columns:
        if column in flagged or table[column].dtype.kind in "biufcM":
            continue
        for row, value in table[column].items():
            if not isinstance(value, str) or not value.strip():
                continue
            found = scan_text(value)
            if found:
                c.add(f"table_text:{found[0].kind}", "high", value, path=f"row {row} column {column}", keyword=column)
    return c.rows


#: Below this many files the audit and the de-identifier run in one process unless ``workers`` is given:
#: docs/benchmarks.md measured a 2-process pool slower than one process at 339 files (cold per-worker caches).
PARALLEL_MIN_FILES = 1000
#: With ``workers`` > 1, the header pool starts from this many files (64-file chunks).
POOL_MIN_FILES = 128


def default_workers(n_files: int) -> int:
    """Processes used when ``workers`` is not given: 1 below :data:`PARALLEL_MIN_FILES` files, else 2.

    >>> default_workers(339), default_workers(20_000)
    (1, 2)
    """
    return 1 if n_files < PARALLEL_MIN_FILES else 2


def audit_repository(
    root: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    tables: Sequence[str | os.PathLike[str]] = (),
    workers: int | None = None,
    unmasked: bool = False,
    ocr: bool = True,
    ocr_slices: int = 3,
    show: bool | None = None,
) -> AuditResult:
    """Audit every file under ``root`` (DICOM headers, file and folder names) and the clinical ``tables``.

    Parameters
    ----------
    root : path
        The repository (never written to).
    key : bytes, optional
        Key for the keyed hashes of values; a random one for this run when omitted (hashes then compare only
        within this report).
    tables : paths
        Clinical exports to audit too; CSV/XLSX files found under ``root`` are audited as tables anyway.
    workers : int, optional
        Processes reading headers in parallel (the scanner's fork pool pattern). Default: one process below
        :data:`PARALLEL_MIN_FILES` files (a pool was measured slower at 339 files: each worker starts with cold
        caches), else 2.
    unmasked : bool
        Write values unmasked in previews (only when explicitly asked).
    ocr : bool
        Look for burned-in text (needs the ``tesseract`` program; skipped with a warning when absent): in every
        radiograph and secondary capture, and in ``ocr_slices`` slices of every other series.
    ocr_slices : int
        Slices OCR'd per series of single-frame slices (CT, MR...), evenly spaced by position, first and last
        included (:func:`series_sample`; 3: first, middle, last; 0: none).
    """
    root = Path(root)
    if not root.is_dir():
        from kicc_analysis.errors import RepositoryError

        raise RepositoryError(f"{root}: not a folder (expected the repository to audit)")
    key = key or secrets.token_bytes(32)
    warns: list[str] = []
    if ocr:
        from kicc_analysis.deid import ocr as ocr_module

        if not ocr_module.tesseract_available():
            message = "burned-in text check skipped: the tesseract program is not installed (apt: tesseract-ocr)"
            warnings.warn(message, stacklevel=2)
            warns.append(message)
            ocr = False
    rels = _list(root)
    workers = default_workers(len(rels)) if workers is None else workers
    rows: list[dict] = []
    facts: list[dict] = []
    review: dict = {}
    chunks = [rels[i : i + 64] for i in range(0, len(rels), 64)]
    bar = progress_bar(total=len(rels), show=show, desc="audit headers", unit="file")
    results: list[list[tuple]]
    if workers > 1 and len(rels) >= POOL_MIN_FILES:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
            results = []
            for part in pool.map(
                _audit_chunk,
                [str(root)] * len(chunks),
                chunks,
                [key] * len(chunks),
                [unmasked] * len(chunks),
                [ocr] * len(chunks),
            ):
                results.append(part)
                bar.update(len(part))
    else:
        results = []
        for chunk in chunks:
            results.append(_audit_chunk(str(root), chunk, key, unmasked, ocr))
            bar.update(len(chunk))
    bar.close()
    n_dicom = 0
    for part in results:
        for file_rows, file_facts, file_review in part:
            rows += file_rows
            if file_facts is not None:
                n_dicom += 1
                facts.append({**file_facts, "file": file_rows[0]["file"] if file_rows else ""})
            for k, values in file_review.items():
                merged = review.setdefault(k, {})
                for h, (text, n) in values.items():
                    merged.setdefault(h, [text, 0])[1] += n
    if ocr and ocr_slices > 0:
        sample = _series_sample(facts, ocr_slices)
        if workers > 1 and len(sample) >= 4:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            parts = [sample[i::workers] for i in range(workers)]
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
                for part in pool.map(_ocr_slices, [str(root)] * workers, parts, [key] * workers, [unmasked] * workers):
                    rows += part
        else:
            rows += _ocr_slices(str(root), sample, key, unmasked)
    for f in facts:
        for k in ("series", "position", "rel"):
            f.pop(k, None)
    for rel in rels:
        if rel.lower().endswith(CLINICAL_SUFFIXES):
            rows += audit_table(root / rel, key, rel=rel, unmasked=unmasked)
    for table in tables:
        rows += audit_table(table, key, rel=str(table), unmasked=unmasked)
    rows += _date_consistency(facts, key)
    columns = ["file", "element_path", "tag", "keyword", "vr", "rule", "severity", "preview", "value_hash", "bbox"]
    findings = pd.DataFrame(rows, columns=columns)
    return AuditResult(findings, _review_table(review, key, unmasked), len(rels), n_dicom, warns)


def _date_consistency(facts: list[dict], key: bytes) -> list[dict]:
    """Studies with more than one Study Date, patients with more than one birth date."""
    c = _Collector(key, "", False)
    study_dates: dict[str, set] = defaultdict(set)
    births: dict[str, set] = defaultdict(set)
    for f in facts:
        if f["study"] and f["study_date"]:
            study_dates[f["study"]].add(f["study_date"])
        if f["patient"] and f["birth"]:
            births[f["patient"]].add(f["birth"])
    for study, dates in sorted(study_dates.items()):
        if len(dates) > 1:
            c.file = f"study {study}"
            c.add("date_inconsistent", "medium", path=f"{len(dates)} Study Dates in one study", keyword="StudyDate")
    for patient, dates in sorted(births.items()):
        if len(dates) > 1:
            c.file = f"patient {patient}"
            c.add(
                "date_inconsistent",
                "medium",
                path=f"{len(dates)} birth dates for one patient",
                keyword="PatientBirthDate",
            )
    return c.rows


def _review_table(review: dict, key: bytes, unmasked: bool) -> pd.DataFrame:
    rows = []
    for (tag, keyword, vr), values in sorted(review.items()):
        code = annex_e.basic_action(int(tag[1:5] + tag[6:10], 16)) or ""
        ranked = sorted(values.items(), key=lambda kv: -kv[1][1])
        examples = "; ".join(
            f"{text if unmasked else mask_identifier(text)} [{h[:8]}] x{n}" for h, (text, n) in ranked[:5]
        )
        rows.append(
            {
                "tag": tag,
                "keyword": keyword,
                "vr": vr,
                "annex_e": code,
                "occurrences": sum(n for _, n in values.values()),
                "distinct": len(values),
                "examples": examples,
            }
        )
    return pd.DataFrame(rows, columns=["tag", "keyword", "vr", "annex_e", "occurrences", "distinct", "examples"])
