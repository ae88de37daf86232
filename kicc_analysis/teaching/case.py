"""Teaching cases: a de-identified case model and a self-contained HTML case page.

:func:`build_case` fills a :class:`TeachingCase` from the cohort table and the repository (age in 5-year bands,
sex, relative days only, key labs, course, the baseline CT with its key image and a scrollable stack, the opacity
quantification of :mod:`kicc_analysis.quantification`, the readers' scores, the baseline radiograph) plus the
educator's own text (question, options, answer, discussion, teaching points; English and Korean) from a small
YAML or Markdown file (:func:`load_educator_text`). :func:`render_case` writes one HTML page (images embedded as
``data:`` URIs, a Content-Security-Policy that forbids every network request, the answer hidden in quiz mode), the
figures as files and a manifest. In JupyterLab a case shows itself inline (:meth:`TeachingCase._repr_html_`: the
same page in a sandboxed ``<iframe srcdoc>``).

Fail closed: every byte to be written (page, figures, the PNG text chunks of every embedded image, the manifest,
the file names) is checked by :func:`kicc_analysis.privacy.assert_no_identifiers` against the pattern detector and
against the case's identifying values (DICOM names, IDs, dates, UIDs, institution, the clinical table's dates and
site code, the pseudonym unless allowed). Nothing is written unless everything passes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk

from .. import __version__
from .._cache import source_files
from ..cohort import build_cohort
from ..imaging import load_ct
from ..privacy import assert_no_identifiers
from .images import KeyImage, TeachingError, apply_window, key_image, save_figure

#: Content-Security-Policy of every case page: no request of any kind leaves the page.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
LANGS = ("en", "ko")


def page_head(title: str, lang: str) -> str:
    """The opening of every teaching page (case pages and the casebook index): doctype, language, the
    :data:`CSP`, a phone viewport, ``title`` (already HTML-escaped) and the start of a ``<style>`` block with the
    shared body rule (Hangul fonts first)."""
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:"NanumGothic","Nanum Gothic","Noto Sans CJK KR",sans-serif;margin:0 auto;max-width:900px;padding:8px;
box-sizing:border-box;overflow-wrap:anywhere}}"""


DICOM_IDENTIFYING = (
    "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "OperatorsName", "AccessionNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "StationName", "StudyID",
)  # fmt: skip
SEX = {1: ("male", "남성"), 2: ("female", "여성")}


def age_band(age: float | None) -> str:
    """Age as a 5-year band (``"55-59"``); ``"90+"`` from 90 years; ``"unknown"`` when missing or implausible.

    Examples
    --------
    >>> age_band(57), age_band(60), age_band(93), age_band(199), age_band(None)
    ('55-59', '60-64', '90+', 'unknown', 'unknown')
    """
    if age is None or pd.isna(age) or not 0 <= float(age) < 120:
        return "unknown"
    if age >= 90:
        return "90+"
    low = int(age) // 5 * 5
    return f"{low}-{low + 4}"


def _bilingual(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {lang: str(value.get(lang, value.get("en", ""))) for lang in LANGS}
    return {lang: "" if value is None else str(value) for lang in LANGS}


@dataclass(repr=False)  # the default repr would print identifying_values and the pseudonym
class TeachingCase:
    """A de-identified teaching case (every text field as ``{"en": ..., "ko": ...}``).

    ``identifying_values`` are the identifying values known from the inputs; they are never shown and every
    rendered byte is checked against them. ``studies`` (:class:`~kicc_analysis.teaching.ComparisonStudy`, one per
    CT or radiograph with its relative day; filled by :func:`build_case`) feed
    :func:`~kicc_analysis.teaching.comparison_figure`; ``comparison`` is that figure
    (:class:`~kicc_analysis.teaching.Comparison`), which :func:`render_case` embeds on the page.
    """

    title: dict[str, str]
    presentation: dict[str, str]
    question: dict[str, str]
    options: list[dict[str, str]]
    answer: dict[str, str]
    discussion: dict[str, str]
    teaching_points: list[dict[str, str]]
    key_images: dict[str, KeyImage] = field(default_factory=dict)
    stack: list[np.ndarray] = field(default_factory=list)  # windowed axial slices (0-1), top to bottom
    stack_window: str = ""
    stack_start: int = 0  # stack position shown first (the key image's slice when the stack has it)
    facts: dict[str, Any] = field(default_factory=dict)
    identifying_values: list[str] = field(default_factory=list)
    allow_pseudonym: bool = False
    subject: str = ""
    studies: list[Any] = field(default_factory=list)
    comparison: Any = None  # Comparison of the studies (build_case, two or more timepoints), embedded by render_case

    def __repr__(self) -> str:
        """What the case holds, without its identifying values or the pseudonym (unless allowed)."""
        shown = f", subject={self.subject!r}" if self.allow_pseudonym else ""
        return (
            f"TeachingCase(title={self.title.get('en', '')!r}{shown}, key_images={list(self.key_images)}, "
            f"stack={len(self.stack)} slices, options={len(self.options)}, "
            f"{len(self.identifying_values)} identifying values withheld)"
        )

    def _repr_html_(self) -> str:
        """JupyterLab shows the case inline: the checked page in a sandboxed iframe (:func:`case_iframe`, quiz mode).

        When the identifier check fails, only the error (which names the kind and position, never the value) is
        shown.
        """
        from ..errors import PrivacyError

        try:
            return case_iframe(self, quiz=True)
        except PrivacyError as exc:
            return f"<p><b>Case not shown</b>: {html.escape(str(exc))}</p>"


#: the educator's fields: scalar text fields and list fields, each item a string or ``{en: ..., ko: ...}``
EDUCATOR_TEXT_FIELDS = ("title", "question", "answer", "discussion")
EDUCATOR_LIST_FIELDS = ("options", "teaching_points")


def load_educator_text(path: str | Path) -> dict[str, Any]:
    """Read the educator's text: a YAML file, or a Markdown file (``.md``) with one ``##`` section per field.

    Fields: ``title``, ``question``, ``answer``, ``discussion`` (text) and ``options``, ``teaching_points``
    (lists). In YAML each value is a string or ``{en: ..., ko: ...}``. In Markdown a section is headed by the
    field's name, with ``(ko)`` for the Korean text (``## Teaching points (ko)``); list fields are ``-`` bullets
    (English and Korean bullets are paired by position)::

        ## Question
        What is the most likely diagnosis?
        ## Question (ko)
        가장 가능성 높은 진단은?
        ## Options
        - COVID-19 pneumonia
        - Pulmonary oedema

    Raises
    ------
    TeachingError
        The file cannot be read, or holds an unknown field or a value of the wrong type (named with the file).
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TeachingError(f"{path.name}: cannot read the educator text ({type(exc).__name__})") from exc
    if path.suffix.lower() in (".md", ".markdown"):
        data: Any = _markdown_fields(raw, path.name)
    else:
        import yaml

        try:
            data = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise TeachingError(f"{path.name}: cannot read the educator text as YAML ({type(exc).__name__})") from exc
    return validate_educator_text(data, path.name)


def validate_educator_text(data: Any, where: str = "educator text") -> dict[str, Any]:
    """Check the educator's fields (names and types); return them unchanged.

    Examples
    --------
    >>> validate_educator_text({"question": {"en": "Diagnosis?", "ko": "진단은?"}, "options": ["A", "B"]})["options"]
    ['A', 'B']
    >>> validate_educator_text({"qestion": "Diagnosis?"}, "week19.yaml")
    Traceback (most recent call last):
    ...
    kicc_analysis.teaching.images.TeachingError: week19.yaml: unknown field 'qestion'; expected title, question, answer, discussion, options, teaching_points
    """
    if not isinstance(data, dict):
        raise TeachingError(f"{where}: expected a mapping of fields, found {type(data).__name__}")
    known = EDUCATOR_TEXT_FIELDS + EDUCATOR_LIST_FIELDS
    for key, value in data.items():
        if key not in known:
            raise TeachingError(f"{where}: unknown field {key!r}; expected {', '.join(known)}")
        items = value if key in EDUCATOR_LIST_FIELDS else [value]
        if key in EDUCATOR_LIST_FIELDS and not isinstance(value, list):
            raise TeachingError(f"{where}: field {key!r} must be a list, found {type(value).__name__}")
        for item in items:
            if isinstance(item, dict):
                extra = sorted(set(item) - set(LANGS))
                if extra:
                    raise TeachingError(f"{where}: field {key!r} has language(s) {extra}; expected {list(LANGS)}")
            elif item is not None and not isinstance(item, str | int | float):
                raise TeachingError(f"{where}: field {key!r} must be text or {{en, ko}}, found {type(item).__name__}")
    return data


def _markdown_fields(text: str, where: str) -> dict[str, Any]:
    import re

    sections: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        heading = re.match(r"^##\s+(.+?)\s*(?:\((en|ko)\))?\s*$", line)
        if heading:
            name = heading.group(1).strip().lower().replace(" ", "_").replace("-", "_")
            if name not in EDUCATOR_TEXT_FIELDS + EDUCATOR_LIST_FIELDS:
                raise TeachingError(f"{where} line {number}: unknown section {heading.group(1)!r}")
            current = (name, heading.group(2) or "en")
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    data: dict[str, Any] = {}
    for (name, lang), lines in sections.items():
        if name in EDUCATOR_LIST_FIELDS:
            bullets = [re.sub(r"^\s*[-*]\s+", "", ln).strip() for ln in lines if re.match(r"^\s*[-*]\s+", ln)]
            items = data.setdefault(name, [])
            while len(items) < len(bullets):
                items.append({})
            for item, bullet in zip(items, bullets, strict=False):
                item[lang] = bullet
        else:
            data.setdefault(name, {})[lang] = "\n".join(lines).strip()
    return data


def _dicom_identifiers(files: list[Path]) -> list[str]:
    values: set[str] = set()
    for path in files:
        try:  # force: files without a preamble still carry identifiers
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(DICOM_IDENTIFYING), force=True)
        except Exception:  # noqa: BLE001 - an unreadable file shows nothing on the page; its bytes are not used
            continue
        for keyword in DICOM_IDENTIFYING:
            value = ds.get(keyword)
            if value not in (None, ""):
                values.add(str(value))
                if keyword == "PatientName":
                    values.update(p for p in str(value).replace("^", " ").split() if len(p) >= 2)
    return sorted(values)


def _date_forms(value: Any) -> list[str]:
    stamp = pd.to_datetime(value, errors="coerce")
    if pd.isna(stamp):
        return []
    return [
        stamp.strftime("%Y-%m-%d"),
        stamp.strftime("%Y%m%d"),
        stamp.strftime("%Y.%m.%d"),
        stamp.strftime("%Y/%m/%d"),
    ]


QUANTIFICATION_FIELDS = {  # cohort column (kicc_analysis.quantification.batch.join_to_cohort) -> results column
    "ct_opacity_pct": "opacity_pct",
    "ct_ggo_pct": "ggo_pct",
    "ct_consolidation_pct": "consolidation_pct",
    "ct_severity_total": "severity_total",
}


def build_case(
    cohort: pd.DataFrame,
    subject: str,
    *,
    repository: str | Path,
    educator: str | Path | dict[str, Any] | None = None,
    allow_pseudonym: bool = False,
    stack_step: int = 1,
    quantification: pd.DataFrame | None = None,
    opacity_labels: sitk.Image | None = None,
    overlay: bool = False,
    radiograph: bool | str | Path = True,
    redaction: Any = None,
    audit: Any = None,
    build: Any = None,
    ct_source: Any = None,
    comparison: bool = True,
) -> TeachingCase:
    """Build a :class:`TeachingCase` for ``subject`` from the cohort table and the repository.

    Parameters
    ----------
    cohort : DataFrame
        The cohort table (:func:`kicc_analysis.cohort.load_cohort`), or the cohort with CT columns from
        :func:`kicc_analysis.pipeline.quantify_cohort` (its ``ct_opacity_pct``... columns are then shown).
    subject : str
        The subject's pseudonym (``subjid``).
    repository : path
        The repository the cohort was built from (read only).
    educator : path or dict, optional
        The educator's text (YAML or Markdown file, :func:`load_educator_text`, or the same as a dict); missing
        fields stay empty.
    allow_pseudonym : bool
        Show the pseudonym on the page (default: no; it is then checked for like any identifier).
    stack_step : int
        Keep every n-th axial slice in the scrollable stack.
    quantification : DataFrame, optional
        Per-series results of :func:`kicc_analysis.quantification.batch.quantify_series_table` (e.g.
        ``QuantificationRun.results``); the subject's ``region == "both"`` rows are shown per timepoint. Without
        it the cohort's ``ct_*`` columns are used when present; nothing is recomputed here.
    opacity_labels : SimpleITK.Image, optional
        Opacity labels of the baseline series (1 GGO, 2 consolidation, on the CT grid) to draw on the key image;
        the key slice is then the one of largest opacity burden.
    overlay : bool
        Compute the labels with the quantification module's own functions (``segment_lungs`` then
        :func:`kicc_analysis.quantification.segment_opacities`, default HU bins) when ``opacity_labels`` is not
        given.
    radiograph : bool or path
        Add the baseline radiograph (first CR/DX study) as a key image, or the radiograph file given (relative to
        the repository or absolute; it must be one of the subject's files). A radiograph whose
        BurnedInAnnotation is YES or unknown is refused (:class:`TeachingError`) unless ``redaction`` boxes are
        given or ``audit`` cleared it.
    redaction : sequence of (row0, col0, row1, col1), optional
        Pixel boxes blacked out on the radiograph before it is drawn.
    audit : kicc_analysis.deid.audit.AuditResult, optional
        An audit of this repository run with OCR: the radiograph is cleared when the audit looked for burned-in
        text and found none (and no OCR failure) in its file (:func:`audit_clears`).
    build : kicc_analysis.cohort.CohortBuild, optional
        The repository's cohort build, whose scan finds the subject's files whatever the folder layout (PACS
        folders such as ``PA000128/ST000002/``); built (incrementally, cached) when not given.
    ct_source : optional
        Where the baseline CT series is, instead of the subject's folder under the repository's ``dicom/``: its
        files, a folder, or a series on a DICOMweb server
        (:func:`kicc_analysis.repository.dicomweb.series_source`, fetched on demand into the local cache).
    comparison : bool
        Fill ``case.studies`` (:func:`case_studies`: every CT study with the cohort's selected series and the
        radiograph of a CT's day) and, when they span two or more days, make ``case.comparison``
        (:func:`~kicc_analysis.teaching.comparison_figure`: matched levels by the ``lung_fraction`` rule, captions
        with the quantification and reader scores) for the case page. ``False`` skips both (each CT is loaded and
        its lungs segmented: about a second per demo CT).
    """
    rows = cohort.loc[cohort["subjid"] == subject]
    if rows.empty:
        raise TeachingError(f"subject {subject!r}: not in the cohort table ({len(cohort)} subjects)")
    row = rows.iloc[0]
    text = validate_educator_text(educator) if isinstance(educator, dict) else (
        load_educator_text(educator) if educator else {}
    )  # fmt: skip
    sex_en, sex_ko = SEX.get(
        int(row["demog_sex"]) if pd.notna(row.get("demog_sex")) else -1, ("sex unknown", "성별 미상")
    )
    band = age_band(row.get("demog_age"))
    onset = row.get("pres_onset_days")
    onset_en = f", {int(onset)} day{'' if int(onset) == 1 else 's'} after symptom onset" if pd.notna(onset) else ""
    onset_ko = f", 증상 발현 {int(onset)}일 후" if pd.notna(onset) else ""
    labs = []
    for column, label in (("labs_crp_mgl", "CRP {:g} mg/L"), ("labs_lymphocyte_109l", "lymphocytes {:g} x10^9/L"),
                          ("labs_ldh", "LDH {:g} U/L"), ("vital_spo2room", "SpO2 {:g} % on room air")):  # fmt: skip
        if pd.notna(row.get(column)):
            labs.append(label.format(float(row[column])))
    presentation = {
        "en": f"Patient aged {band} years, {sex_en}, presenting{onset_en}. " + "; ".join(labs),
        "ko": f"{band}세 {sex_ko} 환자{onset_ko} 내원. " + "; ".join(labs),
    }
    identifying: list[str] = []
    for column in cohort.columns:
        if "date" in column.lower():
            identifying += _date_forms(row[column])
    if pd.notna(row.get("kicc_site")):
        identifying.append(str(row["kicc_site"]))
    case = TeachingCase(
        title=_bilingual(text.get("title", {"en": "Chest imaging case", "ko": "흉부 영상 증례"})),
        presentation=presentation,
        question=_bilingual(text.get("question")),
        options=[_bilingual(o) for o in text.get("options") or []],
        answer=_bilingual(text.get("answer")),
        discussion=_bilingual(text.get("discussion")),
        teaching_points=[_bilingual(p) for p in text.get("teaching_points") or []],
        allow_pseudonym=allow_pseudonym,
        subject=subject,
        facts={
            "age_band": band,
            "sex": sex_en,
            "baseline_ct_day": _day(row.get("baseline_ct_day")),
            "last_followup_ct_day": _day(row.get("last_followup_ct_day")),
            "n_ct_studies": _day(row.get("n_ct_studies")),
            "outcome_day": _day(row.get("outco_day")),
        },  # fmt: skip
    )
    case.facts["quantification"] = _quantification_facts(row, subject, quantification)
    case.facts["reader_scores"] = _reader_facts(row, subject, repository)
    build = build if build is not None else build_cohort(repository, show_progress=False)
    files = _subject_files(build, subject)
    identifying += _dicom_identifiers(files)
    series_uid = row.get("baseline_ct_series_uid")
    known: dict[str, tuple[Any, Any, Any]] = {}  # series UID -> (CT, lungs, opacity) already at hand
    if isinstance(series_uid, str) and series_uid:
        if ct_source is not None:
            source = Path(ct_source) if isinstance(ct_source, str | os.PathLike) else ct_source  # fetches a remote one
            identifying += _dicom_identifiers([Path(f) for f in source_files(source)])
            ct = load_ct(source, series_uid=series_uid)
        else:
            from ..repository import series_files

            ct = load_ct([str(f) for f in series_files(build.scan, series_uid)])
        if opacity_labels is None and overlay:
            opacity_labels = _opacity_overlay(ct)
            labels = sitk.GetArrayViewFromImage(opacity_labels)
            known[series_uid] = (ct, labels > 0, np.where(labels < 3, labels, 0))  # segmented once, for both
        elif ct_source is None:
            known[series_uid] = (ct, None, None)
        case.key_images["ct_axial"] = key_image(ct, plane="axial", window="lung", overlay=opacity_labels)
        hu = sitk.GetArrayViewFromImage(ct)
        levels = list(range(hu.shape[0] - 1, -1, -stack_step))
        case.stack = [apply_window(hu[z], -600.0, 1500.0) for z in levels]
        key_z = case.key_images["ct_axial"].index
        if key_z is not None:  # the stack opens on the key slice (or the nearest kept one)
            case.stack_start = int(np.argmin([abs(z - key_z) for z in levels]))
        case.stack_window = "W 1500 / L -600 HU"
    if radiograph is not False:
        found = _baseline_radiograph(files)
        if isinstance(radiograph, str | os.PathLike):
            found = Path(repository) / radiograph if not Path(radiograph).is_absolute() else Path(radiograph)
            if found.resolve() not in {f.resolve() for f in files}:
                raise TeachingError(f"radiograph {radiograph}: not one of {subject}'s {len(files)} DICOM files")
        if found is not None:
            from ..radiography import load_radiograph

            cleared = audit is not None and audit_clears(
                audit, found.resolve().relative_to(Path(repository).resolve()).as_posix()
            )
            image = load_radiograph(found)
            case.key_images["cxr"] = key_image(image, redaction=redaction, burned_in_cleared=cleared)
            if radiograph is True:
                case.facts["radiograph_day"] = _day(row.get("baseline_cxr_day"))
    identifying.append(subject)
    if comparison:
        case.studies, left_out = case_studies(build, subject, repository, audit=audit, known=known)
        days = {s.day for s in case.studies}
        if len(days) >= 2:
            from .comparison import comparison_figure

            volumes = [i for i, s in enumerate(case.studies) if s.modality == "CT" and min(s.image.GetSize()) > 1]
            case.comparison = comparison_figure(case.studies, reference=volumes[0] if volumes else 0)
            case.comparison.case = case
        case.facts["comparison"] = {"timepoints": len(days), "studies": len(case.studies), "left_out": left_out}
    # a number of 1-3 digits (StudyID "10", a series number) identifies no one and occurs in any text
    case.identifying_values = sorted({v for v in identifying if v and len(v) >= 2 and not (v.isdigit() and len(v) < 4)})
    return case


def case_studies(
    build: Any, subject: str, repository: str | Path, *, audit: Any = None, known: dict | None = None
) -> tuple[list[Any], list[str]]:
    """The subject's studies for a comparison figure, from the cohort build (its scan and study inventory).

    Every CT study of the subject with the series the cohort selected for it (``selected_series_uid`` of the
    inventory: the series quantified and shown elsewhere), and on each CT's day the radiograph the cohort scores
    (:func:`~kicc_analysis.repository.cxr_selection.select_radiographs`), as
    :class:`~kicc_analysis.teaching.ComparisonStudy`. Days are the inventory's ``img_day`` (days from admission),
    else days from the subject's first study date (dates are never kept). Readers' mean scores as in
    :func:`~kicc_analysis.teaching.repository_studies`. The first day's studies are labelled ``"baseline"``,
    later ones ``"follow-up"``. ``known`` maps a series UID to ``(image, lungs, opacity)`` already loaded or
    segmented (``None`` where not), which are used instead of loading (segmenting) again.

    Returns
    -------
    studies : list of ComparisonStudy
        Sorted by day, CT before radiograph.
    left_out : list of str
        Studies not shown and why (a CT study without a selected series, a radiograph whose BurnedInAnnotation is
        not NO and that ``audit`` (:func:`audit_clears`) did not clear); relative days only.
    """
    from ..radiography import load_radiograph
    from ..repository import series_files
    from ..repository.cxr_selection import select_radiographs
    from .comparison import ComparisonStudy, _repository_scores

    inventory = build.inventory
    mine = inventory[inventory["subjid"] == subject].copy()
    if mine.empty:
        return [], []
    dates = pd.to_datetime(mine["study_date"], format="%Y%m%d", errors="coerce")
    from_dates = (dates - dates.min()).dt.days
    listed = pd.to_numeric(mine["img_day"], errors="coerce")
    mine["day"] = listed.where(listed.notna(), from_dates)
    ct = mine[mine["modality"] == "CT"]
    ct_days = set(ct["day"].dropna())
    scores = _repository_scores(Path(repository), subject)
    instances = build.scan.instances
    chosen = select_radiographs(instances[instances["study_uid"].isin(mine["study_uid"])])
    chosen = dict(zip(chosen["study_uid"], chosen["relpath"], strict=True))
    root = Path(build.scan.root) if getattr(build.scan, "root", None) else Path(repository)
    remote = bool(getattr(build.scan, "url", None))
    studies: list[Any] = []
    left_out: list[str] = []
    mine["radiograph_last"] = mine["modality"] != "CT"
    for row in mine.sort_values(["day", "radiograph_last"], na_position="last", kind="stable").itertuples():
        day = None if pd.isna(row.day) else int(row.day)
        given = scores.get(row.study_uid)
        if row.modality == "CT":
            if not isinstance(row.selected_series_uid, str):
                left_out.append(f"CT study of day {day}: no series selected ({row.selection_reason})")
                continue
            image, lungs, opacity = (known or {}).get(row.selected_series_uid, (None, None, None))
            if image is None and remote:  # a DICOMweb scan: the series fetched on demand into the local cache
                from ..repository.dicomweb import series_source

                uid = row.selected_series_uid
                image = load_ct(series_source(build.scan, uid), series_uid=uid)
            elif image is None:
                image = load_ct([str(f) for f in series_files(build.scan, row.selected_series_uid)])
            study = ComparisonStudy(image, day=day, scheme="ct_lobe", lungs=lungs, opacity=opacity)
        elif row.modality in ("CR", "DX") and row.day in ct_days and row.study_uid in chosen and remote:
            left_out.append(f"radiograph of day {day}: on a DICOMweb server, not in local files")
            continue
        elif row.modality in ("CR", "DX") and row.day in ct_days and row.study_uid in chosen:
            path = Path(chosen[row.study_uid])
            path = path if path.is_absolute() else root / path
            image = load_radiograph(path)
            cleared = audit is not None and audit_clears(
                audit, path.resolve().relative_to(Path(repository).resolve()).as_posix()
            )
            if image.burned_in_annotation != "NO" and not cleared:
                left_out.append(
                    f"radiograph of day {day}: BurnedInAnnotation {image.burned_in_annotation}, not cleared"
                )
                continue
            study = ComparisonStudy(image, day=day, scheme="brixia", burned_in_cleared=cleared)
        else:
            continue
        if given:
            study.scores, study.n_readers, study.scheme = given["scores"], given["n_readers"], given["scheme"]
        studies.append(study)
    first_ct = next((s for s in studies if s.modality == "CT"), None)
    subject_level = scores.get(("CT", None))
    if first_ct is not None and first_ct.scores is None and subject_level:  # readers score the first CT
        first_ct.scores, first_ct.n_readers = subject_level["scores"], subject_level["n_readers"]
    if studies:
        first_day = studies[0].day
        for s in studies:
            s.label = "baseline" if s.day == first_day else "follow-up"
    return studies, left_out


def _subject_files(build: Any, subject: str) -> list[Path]:
    """Every DICOM file of the subject's studies (the cohort inventory links studies to pseudonyms)."""
    inventory = build.inventory
    studies = set(inventory.loc[inventory["subjid"] == subject, "study_uid"].dropna())
    instances = build.scan.instances
    return sorted(Path(p) for p in instances.loc[instances["study_uid"].isin(studies), "path"])


def audit_clears(audit: Any, relative_path: str) -> bool:
    """Whether a de-identification audit (:func:`kicc_analysis.deid.audit.audit_repository`) clears a file of
    burned-in text: it ran the OCR check (no "burned-in text check skipped" warning) and has no ``burned_in:*`` or
    ``ocr_failed`` finding for ``relative_path`` (the file's path relative to the audited repository).

    The audit must be of the repository the case is built from: the result does not record its root.
    """
    if any("burned-in text check skipped" in w for w in getattr(audit, "warnings", [])):
        return False
    findings = audit.findings
    if not getattr(audit, "n_dicom", 0):
        return False
    if len(findings) == 0:
        return True
    rules = findings["rule"].astype(str)
    bad = rules.str.startswith("burned_in") | (rules == "ocr_failed")
    return not bool((bad & (findings["file"].astype(str) == relative_path)).any())


def _opacity_overlay(ct: sitk.Image) -> sitk.Image:
    """Overlay labels (1 GGO, 2 consolidation, 3 other lung) from the quantification module's own segmentation."""
    from ..quantification import segment_opacities
    from ..segmentation import segment_lungs

    lungs = segment_lungs(ct).labels
    opacity = sitk.GetArrayFromImage(segment_opacities(ct, lungs))
    labels = np.where(opacity > 0, opacity, np.where(sitk.GetArrayViewFromImage(lungs) > 0, 3, 0)).astype(np.uint8)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(ct)
    return out


def _quantification_facts(row: pd.Series, subject: str, results: pd.DataFrame | None) -> dict[str, Any]:
    """Opacity quantification of the subject's CT timepoints, from the quantification module's results."""
    found: list[dict[str, Any]] = []
    source = ""
    if results is not None and len(results):
        both = results[(results["subjid"] == subject) & (results["region"] == "both")].sort_values("img_day")
        for _, r in both.iterrows():
            found.append({"timepoint": str(r["timepoint"]), "day": _day(r["img_day"]),
                          **{v: _number(r.get(v)) for v in QUANTIFICATION_FIELDS.values()}})  # fmt: skip
        source = "quantification results table"
    elif pd.notna(row.get("ct_opacity_pct")):
        for timepoint, suffix, day in (("baseline", "", "baseline_ct_day"),
                                       ("follow-up", "_followup", "last_followup_ct_day")):  # fmt: skip
            if pd.notna(row.get(f"ct_opacity_pct{suffix}")):
                found.append({"timepoint": timepoint, "day": _day(row.get(day)),
                              **{v: _number(row.get(f"{c}{suffix}")) for c, v in QUANTIFICATION_FIELDS.items()}})  # fmt: skip
        source = "cohort table (quantify_cohort)"
    change = None
    if len(found) >= 2 and found[0]["opacity_pct"] is not None and found[-1]["opacity_pct"] is not None:
        change = round(found[-1]["opacity_pct"] - found[0]["opacity_pct"], 2)
    return {"source": source, "timepoints": found, "opacity_pct_change": change}


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 2)


def _reader_facts(row: pd.Series, subject: str, repository: str | Path) -> dict[str, Any]:
    """Readers' CT lobe totals (0-25) from ``readings/reader_scores.csv`` and the radiograph Brixia means."""
    facts: dict[str, Any] = {
        "baseline_cxr_brixia": _number(row.get("baseline_cxr_brixia")),
        "worst_cxr_brixia": _number(row.get("worst_cxr_brixia")),
    }
    path = Path(repository) / "readings" / "reader_scores.csv"
    if path.is_file():
        from ..readings import read_reader_scores, reading_totals

        scores = read_reader_scores(path)
        totals = reading_totals(scores[scores["subject"] == subject], "ct_lobe")
        facts["ct_lobe_total"] = {str(r): _number(v) for r, v in zip(totals["reader"], totals["score"], strict=True)}
    return facts


def _baseline_radiograph(files: list[Path]) -> Path | None:
    """The first CR/DX file by study date and time (headers only; unreadable files are skipped)."""
    found: list[tuple[str, str, str, Path]] = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                 specific_tags=["Modality", "StudyDate", "StudyTime"])  # fmt: skip
        except Exception:  # noqa: BLE001 - not a DICOM file (Thumbs.db...): not a radiograph
            continue
        if str(ds.get("Modality", "")).upper() in ("CR", "DX"):
            found.append((str(ds.get("StudyDate", "")), str(ds.get("StudyTime", "")), str(path), path))
    return min(found)[3] if found else None


def _day(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _figure_bytes(key: KeyImage, suffix: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return save_figure(key.figure, Path(tmp) / f"figure{suffix}").read_bytes()


def _comparison_bytes(case: TeachingCase, suffix: str) -> bytes:
    """The comparison figure's file bytes, written by :meth:`Comparison.save` (its caption, date and identifier
    checks against the case) into a temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return case.comparison.save(Path(tmp) / f"comparison{suffix}", case=case).read_bytes()


def check_bytes(content: bytes | str, case: TeachingCase, where: str) -> None:
    """Fail closed on ``content``: identifier patterns, the case's identifying values, and every PNG inside.

    Base64 image payloads of a page are not searched as text (a short value such as a site code occurs in base64
    text by chance); each is decoded and checked as an image instead. In image and PDF bytes (compressed data) the
    known values of at least :data:`MIN_BINARY_VALUE_LENGTH` characters are searched; text chunks, decompressed PDF
    streams and page text are searched for every known value and for identifier patterns. In SVG (text drawn as
    glyph paths, so its digits are coordinates) digit-only values shorter than :data:`MIN_BINARY_VALUE_LENGTH` are
    not searched.
    """
    import re

    known = [v for v in case.identifying_values if not (case.allow_pseudonym and v == case.subject)]
    binary = isinstance(content, bytes) and (content.startswith(b"\x89PNG") or content.startswith(b"%PDF"))
    embedded: list[bytes] = []
    if not binary:
        text = content if isinstance(content, str) else content.decode("utf-8", errors="replace")
        embedded = [base64.b64decode(m) for m in re.findall(_DATA_PNG, text)]
        content = re.sub(_DATA_URI, r"\1", text)
    if not case.allow_pseudonym and case.subject:
        raw = content if isinstance(content, str) else content.decode("utf-8", errors="replace")
        if case.subject in raw:
            from ..errors import PrivacyError

            raise PrivacyError(f"{where}: the subject's pseudonym at position {raw.find(case.subject)}")
    elif case.subject and isinstance(content, str):  # an allowed pseudonym holds the site code (KICC-S02-...):
        content = content.replace(case.subject, "[pseudonym]")  # shown on purpose, so not a site-code finding
    if binary and content.startswith(b"\x89PNG"):  # text chunks first: a finding there is named as metadata
        chunks = " ".join(f"{k} {v}" for k, v in png_text_chunks(content))
        if chunks:
            check_bytes(chunks, case, f"{where} metadata")
    searched = [v for v in known if len(v) >= MIN_BINARY_VALUE_LENGTH] if binary else known
    if isinstance(content, str) and "<svg" in content[:400]:  # SVG text is drawn as glyph paths: its digits are
        searched = [v for v in searched if not (v.isdigit() and len(v) < MIN_BINARY_VALUE_LENGTH)]  # coordinates
    assert_no_identifiers(content, known_values=searched, where=where, patterns=not binary)
    if isinstance(content, bytes) and content.startswith(b"%PDF"):
        import zlib

        for i, stream in enumerate(re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, flags=re.S)):
            try:
                inflated = zlib.decompress(stream)
            except zlib.error:
                continue
            assert_no_identifiers(inflated, known_values=known, where=f"{where} (stream {i})", patterns=False)
    for png in embedded:
        check_bytes(png, case, f"{where}: embedded image")


def png_text_chunks(data: bytes) -> list[tuple[str, str]]:
    """The (keyword, text) of every tEXt, zTXt and iTXt chunk of a PNG, read from the chunk structure without
    decoding the pixels (PIL's ``Image.text`` decodes the whole image to reach chunks after the pixel data).

    Raises
    ------
    TeachingError
        A chunk runs past the end of the data, or a compressed text does not inflate (fail closed: such an image is
        not written).
    """
    import struct
    import zlib

    out: list[tuple[str, str]] = []
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) != length:
            raise TeachingError(f"PNG chunk {kind!r} at byte {position}: {length} bytes announced, {len(body)} found")
        try:
            if kind == b"tEXt":
                key, _, text = body.partition(b"\0")
                out.append((key.decode("latin-1"), text.decode("latin-1")))
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                out.append((key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")))
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, rest = rest[0], rest[2:]
                language, _, rest = rest.partition(b"\0")
                translated, _, text = rest.partition(b"\0")
                text = zlib.decompress(text) if compressed else text
                out.append((key.decode("latin-1"), " ".join(b.decode("utf-8", "replace") for b in (translated, text))))
        except (zlib.error, IndexError) as exc:
            raise TeachingError(f"PNG chunk {kind!r} at byte {position}: unreadable text ({exc})") from exc
        if kind == b"IEND":
            break
        position += 12 + length
    return out


#: shortest known value searched in compressed image/PDF bytes (shorter ones match compressed data by chance)
MIN_BINARY_VALUE_LENGTH = 6
_DATA_PNG = r"data:image/png;base64,([A-Za-z0-9+/=\s]+)"  # SVG wraps its base64 payloads over lines
_DATA_URI = r"(data:image/[a-z+.-]+;base64,)[A-Za-z0-9+/=\s]+"


def case_outputs(
    case: TeachingCase, *, quiz: bool = True, lang: str = "en", index_href: str | None = None
) -> dict[str, bytes]:
    """Every file of a case page in memory (``case.html``, figures as PNG/SVG/PDF, ``manifest.json``), each
    already checked by :func:`check_bytes` (file names too); a finding raises
    :class:`~kicc_analysis.errors.PrivacyError`.

    ``index_href`` adds a link back to a casebook's index page (relative URL).
    """
    if lang not in LANGS:
        raise TeachingError(f"lang {lang!r}: expected one of {LANGS}")
    outputs: dict[str, bytes] = {}
    for name, key in case.key_images.items():
        for suffix in (".png", ".svg", ".pdf"):
            outputs[f"{name}{suffix}"] = _figure_bytes(key, suffix)
    if case.comparison is not None:
        for suffix in (".png", ".svg", ".pdf"):
            outputs[f"comparison{suffix}"] = _comparison_bytes(case, suffix)
    page = _page_html(case, outputs, quiz=quiz, lang=lang, index_href=index_href)
    outputs["case.html"] = page.encode("utf-8")
    manifest = {
        "kicc_analysis": __version__,
        "quiz": quiz,
        "lang": lang,
        "key_images": {name: key.record() for name, key in case.key_images.items()},
        "stack": {"n_slices": len(case.stack), "window": case.stack_window},
        "comparison": None if case.comparison is None else case.comparison.record(),
        "quantification": case.facts.get("quantification"),
        "reader_scores": case.facts.get("reader_scores"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(outputs.items())},
    }
    outputs["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    for name, data in outputs.items():  # every check before any write: fail closed
        check_bytes(name, case, f"file name {name}")
        check_bytes(data if not name.endswith(".html") else data.decode("utf-8"), case, name)
    return outputs


def render_case(case: TeachingCase, out_dir: str | Path, *, quiz: bool = True, lang: str = "en") -> Path:
    """Write the case page ``case.html``, its figures and ``manifest.json`` into ``out_dir``; return the page.

    Every output is checked first (:func:`check_bytes`); on any finding a
    :class:`~kicc_analysis.errors.PrivacyError` is raised and nothing is written.
    """
    outputs = case_outputs(case, quiz=quiz, lang=lang)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (out_dir / name).write_bytes(data)
    return out_dir / "case.html"


def case_iframe(case: TeachingCase, *, quiz: bool = True, lang: str = "en", height_px: int = 900) -> str:
    """The case page inline: an ``<iframe sandbox="allow-scripts" srcdoc=...>`` holding the checked page.

    The sandbox gives the page an opaque origin (no access to the notebook, no forms, no top navigation) and its
    own Content-Security-Policy still forbids every request. Figures are embedded as PNG only.
    """
    if lang not in LANGS:
        raise TeachingError(f"lang {lang!r}: expected one of {LANGS}")
    pngs = {f"{name}.png": _figure_bytes(key, ".png") for name, key in case.key_images.items()}
    if case.comparison is not None:
        pngs["comparison.png"] = _comparison_bytes(case, ".png")
    page = _page_html(case, pngs, quiz=quiz, lang=lang)
    check_bytes(page, case, "inline case page")
    return (
        f'<iframe sandbox="allow-scripts" title="{html.escape(case.title.get(lang) or "case")}" '
        f'style="width:100%;height:{int(height_px)}px;border:1px solid #ccc" srcdoc="{html.escape(page, quote=True)}">'
        "</iframe>"
    )


def _facts_html(case: TeachingCase, lang: str) -> str:
    """Quantification and reader scores as small tables (empty when the case has none)."""
    ko = lang == "ko"
    parts = []
    quant = case.facts.get("quantification") or {}
    if quant.get("timepoints"):
        head = ("시점", "일", "음영 %", "간유리 %", "경화 %", "중증도 점수") if ko else (
            "timepoint", "day", "opacity %", "GGO %", "consolidation %", "severity score")  # fmt: skip
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in (
                t["timepoint"], t["day"], t["opacity_pct"], t["ggo_pct"], t["consolidation_pct"], t["severity_total"]))
            + "</tr>" for t in quant["timepoints"]
        )  # fmt: skip
        change = quant.get("opacity_pct_change")
        note = "" if change is None else f"<p>{'음영 변화' if ko else 'Change in opacity'}: {change:+.1f} %p</p>"
        parts.append(
            f'<section id="quantification"><h2>{"정량 분석" if ko else "Quantification"}</h2>'
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>{note}"
            f'<p class="small">{"HU 구간 기반 자동 분석" if ko else "Automatic HU-bin analysis"}'
            " (kicc_analysis.quantification)</p></section>"
        )
    readers = case.facts.get("reader_scores") or {}
    lines = []
    if readers.get("ct_lobe_total"):
        scores = ", ".join(f"{html.escape(r)} {v:g}" for r, v in readers["ct_lobe_total"].items() if v is not None)
        lines.append(f"<li>{'CT 엽별 점수 (0-25)' if ko else 'CT lobe score (0-25)'}: {scores}</li>")
    if readers.get("baseline_cxr_brixia") is not None:
        lines.append(f"<li>Brixia (0-18): {readers['baseline_cxr_brixia']:g}</li>")
    if lines:
        parts.append(f'<section id="readers"><h2>{"판독자 점수" if ko else "Reader scores"}</h2>'
                     f"<ul>{''.join(lines)}</ul></section>")  # fmt: skip
    return "".join(parts)


def _page_html(
    case: TeachingCase, outputs: dict[str, bytes], *, quiz: bool, lang: str, index_href: str | None = None
) -> str:
    def t(field_: dict[str, str]) -> str:
        return html.escape(field_.get(lang) or field_.get("en", ""))

    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(outputs[name + ".png"]).decode()}"><figcaption>{html.escape(key.plane)}, '
        f"{html.escape(key.window_text)}, {html.escape(key.index_rule)}</figcaption></figure>"
        for name, key in case.key_images.items()
    )
    comparison = ""
    if case.comparison is not None and "comparison.png" in outputs:
        ko = lang == "ko"
        captions = "".join(f"<li>{html.escape(c)}</li>" for c in case.comparison.captions())
        comparison = (
            f'<section id="comparison"><h2>{"추적 비교" if ko else "Comparison"}</h2><figure>'
            f'<img alt="comparison" src="data:image/png;base64,{base64.b64encode(outputs["comparison.png"]).decode()}">'
            f"<figcaption>{html.escape(case.comparison.rule_text)}<ol>{captions}</ol></figcaption></figure></section>"
        )
    stack = ""
    start = min(max(case.stack_start, 0), max(len(case.stack) - 1, 0))
    if case.stack:
        slices = "".join(
            f'<img class="slice" alt="slice {i + 1}" {"" if i == start else "hidden "}'
            f'src="data:image/png;base64,{base64.b64encode(_png_bytes(s)).decode()}">'
            for i, s in enumerate(case.stack)
        )
        stack = (
            f'<section id="stack" tabindex="0" aria-label="CT stack">{slices}'
            f'<input id="slider" type="range" min="1" max="{len(case.stack)}" value="{start + 1}" aria-label="slice">'
            f'<p><span id="counter">{start + 1} / {len(case.stack)}</span> · {html.escape(case.stack_window)}</p></section>'
        )
    options = "".join(f"<li>{t(o)}</li>" for o in case.options)
    points = "".join(f"<li>{t(p)}</li>" for p in case.teaching_points)
    hidden = " hidden" if quiz else ""
    reveal = '<button id="reveal" type="button">Show answer / 정답 보기</button>' if quiz else ""
    title = t(case.title) + (f" ({html.escape(case.subject)})" if case.allow_pseudonym else "")
    facts = _facts_html(case, lang)
    heads = ("병력", "질문", "정답") if lang == "ko" else ("History", "Question", "Answer")
    back = f'<nav><a id="index" href="{html.escape(index_href)}">{"목록" if lang == "ko" else "Casebook"}</a></nav>' if (
        index_href) else ""  # fmt: skip
    return f"""{page_head(title, lang)}
img{{max-width:100%;height:auto;display:block}} figure{{margin:8px 0}} input[type=range]{{width:100%}}
#images{{display:flex;flex-wrap:wrap;gap:8px}} #images figure{{flex:1 1 260px;max-width:440px;min-width:0}}
#stack{{max-width:560px}}
#stack img.slice{{background:#000;touch-action:none;width:100%;image-rendering:pixelated}}
[hidden]{{display:none !important}}
table{{border-collapse:collapse;font-size:0.9em}} td,th{{border:1px solid #ccc;padding:2px 6px}}
.small{{font-size:0.8em;color:#555}}
</style></head><body>
{back}<h1>{title}</h1>
<section id="presentation"><h2>{heads[0]}</h2><p>{t(case.presentation)}</p></section>
<section id="images">{images}</section>
{stack}
{comparison}
{facts}
<section id="question"><h2>{heads[1]}</h2><p>{t(case.question)}</p><ol>{options}</ol></section>
{reveal}
<section id="answer"{hidden}><h2>{heads[2]}</h2><p>{t(case.answer)}</p><p>{t(case.discussion)}</p>
<ul>{points}</ul></section>
<script>
(function(){{
var s=document.querySelectorAll('#stack img.slice'),r=document.getElementById('slider'),
c=document.getElementById('counter'),st=document.getElementById('stack'),y0=null;
function show(i){{if(!s.length)return;i=Math.max(1,Math.min(s.length,i));
s.forEach(function(e,k){{e.hidden=(k!==i-1);}});r.value=i;c.textContent=i+' / '+s.length;}}
if(r){{r.addEventListener('input',function(){{show(+r.value);}});
st.addEventListener('wheel',function(e){{e.preventDefault();show(+r.value+(e.deltaY>0?1:-1));}},{{passive:false}});
st.addEventListener('keydown',function(e){{if(e.key==='ArrowDown'||e.key==='ArrowRight')show(+r.value+1);
if(e.key==='ArrowUp'||e.key==='ArrowLeft')show(+r.value-1);}});
st.addEventListener('touchstart',function(e){{y0=e.touches[0].clientY;}});
st.addEventListener('touchmove',function(e){{if(y0===null)return;var d=e.touches[0].clientY-y0;
if(Math.abs(d)>10){{show(+r.value+(d>0?1:-1));y0=e.touches[0].clientY;}}e.preventDefault();}},{{passive:false}});}}
var b=document.getElementById('reveal');if(b)b.addEventListener('click',function(){{
document.getElementById('answer').hidden=false;b.hidden=true;}});
}})();
</script></body></html>
"""
