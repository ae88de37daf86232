"""De-identification problems planted on request in the demo repository (``generate_demo(deid_problems=True)``).

Off by default, so that every other test, notebook and benchmark sees the clean demo. When asked for, five
problems a de-identification audit (:func:`kicc_analysis.deid.audit.audit_repository`) must report are put into
the written ``dicom/`` tree, each on its own series, and listed in ``manifest.json`` (``deid_problems``: the
problem, the audit rule that reports it, the series UID and the masked path -- the manifest never holds the planted
values themselves):

* ``identity_not_removed``: a CT series whose files lack Patient Identity Removed (0012,0062);
* ``free_text:person_name``: a CT series whose Series Description holds a DICOM person name although its files
  claim the Clean Descriptors option (DCM 113105) in the De-identification Method Code Sequence;
* ``burned_in:*``: a radiograph with a name and a registration number burned into the pixels (Burned In
  Annotation ``YES``), found by OCR;
* ``path:rrn``: a CT file renamed after a patient (Hangul name and resident registration number);
* ``date_inconsistent``: a CT study whose second series was date-shifted by another offset (Study Date differs).

The planted values are the Korean "John Doe" (홍길동 / HONG^GILDONG) and a made-up registration number.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from kicc_analysis.privacy import mask_path

__all__ = ["PLANTED_NAME", "PLANTED_RRN", "plant_deid_problems"]

#: The planted identifying values (fictional).
PLANTED_NAME = ("홍길동", "HONG^GILDONG")
PLANTED_RRN = "900101-1234568"
_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _files(instances: pd.DataFrame, series_uid: str) -> list[Path]:
    return [Path(p) for p in instances.loc[instances["series_uid"] == series_uid, "path"].sort_values()]


def _rewrite(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


def _burn_text(ds: Dataset) -> None:
    from PIL import Image, ImageDraw, ImageFont

    pixels = ds.pixel_array.astype(np.uint16)
    rows, cols = pixels.shape
    size = max(12, cols // 18)
    font = ImageFont.truetype(str(_FONT), size) if _FONT.exists() else ImageFont.load_default(size)
    bright = 4095 if ds.PhotometricInterpretation == "MONOCHROME2" else 0  # white as displayed
    dark = 4095 - bright
    overlay = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(overlay)
    box = (size // 2, size // 2, min(cols - 1, size // 2 + 15 * size), size // 2 + int(2.8 * size))
    draw.rectangle(box, fill=1)
    draw.text((size, size // 2 + size // 5), "HONG GILDONG", fill=2, font=font)
    draw.text((size, size // 2 + int(1.4 * size)), PLANTED_RRN, fill=2, font=font)
    mask = np.asarray(overlay)
    pixels[mask == 1] = dark
    pixels[mask == 2] = bright
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.BurnedInAnnotation = "YES"


def _clean_descriptors(ds: Dataset) -> None:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113105", "DCM", "Clean Descriptors Option"
    ds.DeidentificationMethodCodeSequence = Sequence([item])
    ds.SeriesDescription = f"CHEST CT {PLANTED_NAME[1]}"


def _shift_dates(days: int):
    def change(ds: Dataset) -> None:
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            if keyword in ds and ds.data_element(keyword).value:
                shifted = dt.datetime.strptime(str(ds.data_element(keyword).value), "%Y%m%d") + dt.timedelta(days)
                setattr(ds, keyword, shifted.strftime("%Y%m%d"))

    return change


def plant_deid_problems(dicom_root: str | Path) -> list[dict[str, Any]]:
    """Plant the five problems of the module notes into a written demo ``dicom/`` tree; return what was planted.

    Each problem is put on a different series, chosen deterministically (sorted UIDs) among the demo's CT series
    and radiographs. Problems that the tree is too small for (e.g. no CT study with two series) are left out and
    not listed.
    """
    from kicc_analysis.repository import scan_repository

    root = Path(dicom_root).resolve()
    scan = scan_repository(root, use_index=False, workers=1, show_progress=False)
    inst = scan.instances
    series = scan.series.sort_values("series_uid")
    ct = series[series["modality"] == "CT"]
    two_series = ct.groupby("study_uid")["series_uid"].transform("size") >= 2
    used: set[str] = set()
    planted: list[dict[str, Any]] = []

    def record(problem: str, rule: str, uid: str, path: Path) -> None:
        used.add(uid)
        rel = str(path.relative_to(root.parent))
        planted.append({"problem": problem, "audit_rule": rule, "series_uid": uid, "path": mask_path(rel)})

    # dates first: it needs a study with two series (the second series is shifted by another offset)
    multi = ct[two_series]
    if len(multi):
        study = multi["study_uid"].iloc[0]
        uid = multi.loc[multi["study_uid"] == study, "series_uid"].iloc[1]
        for f in _files(inst, uid):
            _rewrite(f, _shift_dates(7))
        record("dates not shifted consistently within a study", "date_inconsistent", uid, f.parent)
    single = [u for u in ct["series_uid"] if u not in used and not ct.loc[ct["series_uid"] == u, "study_uid"].isin(
        multi["study_uid"]).any()]  # fmt: skip
    others = single + [u for u in ct["series_uid"] if u not in used and u not in single]
    if others:
        uid = others.pop(0)
        for f in _files(inst, uid):
            _rewrite(f, lambda ds: delattr(ds, "PatientIdentityRemoved"))
        record("Patient Identity Removed missing", "identity_not_removed", uid, f.parent)
    if others:
        uid = others.pop(0)
        for f in _files(inst, uid):
            _rewrite(f, _clean_descriptors)
        record("a name in the series description", "free_text:person_name", uid, f.parent)
    if others:
        uid = others.pop(0)
        rows = inst[inst["series_uid"] == uid].sort_values(["instance_number", "relpath"], na_position="last")
        first = Path(rows["path"].iloc[0])
        renamed = first.with_name(f"{PLANTED_NAME[0]}_{PLANTED_RRN}.dcm")
        first.rename(renamed)
        record("an identifier in a file name", "path:rrn", uid, renamed)
    radiographs = series[series["modality"].isin(["CR", "DX"])]
    if len(radiographs):
        uid = radiographs["series_uid"].iloc[0]
        target = _files(inst, uid)[0]
        _rewrite(target, _burn_text)
        record("text burned into a radiograph", "burned_in", uid, target)
    return planted
