"""Teaching cases: a de-identified case model and a self-contained HTML case page.

:func:`build_case` fills a :class:`TeachingCase` from the cohort table and the repository (age in 5-year bands,
sex, relative days only, key labs, course, the baseline CT with its key image and a scrollable stack) plus the
educator's own text (question, options, answer, discussion, teaching points; English and Korean) from a small
YAML file. :func:`render_case` writes one HTML page (images embedded as ``data:`` URIs, a Content-Security-Policy
that forbids every network request, the answer hidden in quiz mode), the figures as files and a manifest.

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
from ..cohort import dicom_root
from ..imaging import load_ct
from ..privacy import assert_no_identifiers
from .images import KeyImage, TeachingError, apply_window, key_image, save_figure

#: Content-Security-Policy of every case page: no request of any kind leaves the page.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
LANGS = ("en", "ko")
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


@dataclass
class TeachingCase:
    """A de-identified teaching case (every text field as ``{"en": ..., "ko": ...}``).

    ``identifying_values`` are the identifying values known from the inputs; they are never shown and every
    rendered byte is checked against them. ``studies`` (:class:`~kicc_analysis.teaching.ComparisonStudy`, one per
    CT or radiograph with its relative day) feed :func:`~kicc_analysis.teaching.comparison_figure`.
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
    facts: dict[str, Any] = field(default_factory=dict)
    identifying_values: list[str] = field(default_factory=list)
    allow_pseudonym: bool = False
    subject: str = ""
    studies: list[Any] = field(default_factory=list)


def load_educator_text(path: str | Path) -> dict[str, Any]:
    """Read the educator's YAML file (keys: title, question, options, answer, discussion, teaching_points)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TeachingError(f"{path.name}: cannot read the educator text as YAML ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise TeachingError(f"{path.name}: expected a mapping of fields, found {type(data).__name__}")
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


def build_case(
    cohort: pd.DataFrame,
    subject: str,
    *,
    repository: str | Path,
    educator: str | Path | dict[str, Any] | None = None,
    allow_pseudonym: bool = False,
    stack_step: int = 1,
    ct_source: Any = None,
) -> TeachingCase:
    """Build a :class:`TeachingCase` for ``subject`` from the cohort table and the repository.

    Parameters
    ----------
    cohort : DataFrame
        The cohort table (:func:`kicc_analysis.cohort.load_cohort`).
    subject : str
        The subject's pseudonym (``subjid``).
    repository : path
        The repository the cohort was built from (read only).
    educator : path or dict, optional
        The educator's text (YAML file or the same as a dict); missing fields stay empty.
    allow_pseudonym : bool
        Show the pseudonym on the page (default: no; it is then checked for like any identifier).
    stack_step : int
        Keep every n-th axial slice in the scrollable stack.
    ct_source : optional
        Where the baseline CT series is, instead of the subject's folder under the repository's ``dicom/``: its
        files, a folder, or a series on a DICOMweb server
        (:func:`kicc_analysis.repository.dicomweb.series_source`, fetched on demand into the local cache).
    """
    rows = cohort.loc[cohort["subjid"] == subject]
    if rows.empty:
        raise TeachingError(f"subject {subject!r}: not in the cohort table ({len(cohort)} subjects)")
    row = rows.iloc[0]
    text = educator if isinstance(educator, dict) else (load_educator_text(educator) if educator else {})
    sex_en, sex_ko = SEX.get(
        int(row["demog_sex"]) if pd.notna(row.get("demog_sex")) else -1, ("sex unknown", "성별 미상")
    )
    band = age_band(row.get("demog_age"))
    onset = row.get("pres_onset_days")
    onset_en = f", {int(onset)} days after symptom onset" if pd.notna(onset) else ""
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
        options=[_bilingual(o) for o in text.get("options", [])],
        answer=_bilingual(text.get("answer")),
        discussion=_bilingual(text.get("discussion")),
        teaching_points=[_bilingual(p) for p in text.get("teaching_points", [])],
        allow_pseudonym=allow_pseudonym,
        subject=subject,
        facts={
            "age_band": band,
            "sex": sex_en,
            "baseline_ct_day": _day(row.get("baseline_ct_day")),
            "outcome_day": _day(row.get("outco_day")),
        },  # fmt: skip
    )
    series_uid = row.get("baseline_ct_series_uid")
    if isinstance(series_uid, str) and series_uid:
        if ct_source is not None:
            source = Path(ct_source) if isinstance(ct_source, str | os.PathLike) else ct_source  # fetches a remote one
            files = [Path(f) for f in source_files(source)]
            ct = load_ct(source, series_uid=series_uid)
        else:
            folders = sorted(p for p in dicom_root(repository).glob(f"*/{subject}") if p.is_dir())
            if not folders:
                raise TeachingError(f"{subject}: no DICOM folder under {dicom_root(repository).name}/<site>/{subject}")
            files = sorted(f for f in folders[0].rglob("*") if f.is_file())
            ct = load_ct(folders[0], series_uid=series_uid)
        identifying += _dicom_identifiers(files)
        case.key_images["ct_axial"] = key_image(ct, plane="axial", window="lung")
        hu = sitk.GetArrayViewFromImage(ct)
        case.stack = [apply_window(hu[z], -600.0, 1500.0) for z in range(hu.shape[0] - 1, -1, -stack_step)]
        case.stack_window = "W 1500 / L -600 HU"
    identifying.append(subject)
    case.identifying_values = sorted({v for v in identifying if v and len(v) >= 2})
    return case


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


def check_bytes(content: bytes | str, case: TeachingCase, where: str) -> None:
    """Fail closed on ``content``: identifier patterns, the case's identifying values, and every PNG inside.

    Base64 image payloads of a page are not searched as text (a short value such as a site code occurs in base64
    text by chance); each is decoded and checked as an image instead. In image and PDF bytes (compressed data) the
    known values of at least :data:`MIN_BINARY_VALUE_LENGTH` characters are searched; text chunks, decompressed PDF
    streams and page text are searched for every known value and for identifier patterns.
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
    if binary and content.startswith(b"\x89PNG"):  # text chunks first: a finding there is named as metadata
        from PIL import Image

        with Image.open(io.BytesIO(content)) as im:
            chunks = " ".join(f"{k} {v}" for k, v in getattr(im, "text", {}).items())
        if chunks:
            check_bytes(chunks, case, f"{where} metadata")
    searched = [v for v in known if len(v) >= MIN_BINARY_VALUE_LENGTH] if binary else known
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


#: shortest known value searched in compressed image/PDF bytes (shorter ones match compressed data by chance)
MIN_BINARY_VALUE_LENGTH = 6
_DATA_PNG = r"data:image/png;base64,([A-Za-z0-9+/=]+)"
_DATA_URI = r"(data:image/[a-z+.-]+;base64,)[A-Za-z0-9+/=]+"


def render_case(case: TeachingCase, out_dir: str | Path, *, quiz: bool = True, lang: str = "en") -> Path:
    """Write the case page ``case.html``, its figures and ``manifest.json`` into ``out_dir``; return the page.

    Every output is checked first (:func:`check_bytes`); on any finding a
    :class:`~kicc_analysis.errors.PrivacyError` is raised and nothing is written.
    """
    if lang not in LANGS:
        raise TeachingError(f"lang {lang!r}: expected one of {LANGS}")
    out_dir = Path(out_dir)
    outputs: dict[str, bytes] = {}
    for name, key in case.key_images.items():
        for suffix in (".png", ".svg", ".pdf"):
            outputs[f"{name}{suffix}"] = _figure_bytes(key, suffix)
    page = _page_html(case, outputs, quiz=quiz, lang=lang)
    outputs["case.html"] = page.encode("utf-8")
    manifest = {
        "kicc_analysis": __version__,
        "quiz": quiz,
        "lang": lang,
        "key_images": {name: key.record() for name, key in case.key_images.items()},
        "stack": {"n_slices": len(case.stack), "window": case.stack_window},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(outputs.items())},
    }
    outputs["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    for name, data in outputs.items():  # every check before any write: fail closed
        check_bytes(name, case, f"file name {name}")
        check_bytes(data if not name.endswith(".html") else data.decode("utf-8"), case, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (out_dir / name).write_bytes(data)
    return out_dir / "case.html"


def _page_html(case: TeachingCase, outputs: dict[str, bytes], *, quiz: bool, lang: str) -> str:
    def t(field_: dict[str, str]) -> str:
        return html.escape(field_.get(lang) or field_.get("en", ""))

    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(outputs[name + ".png"]).decode()}"><figcaption>{html.escape(key.plane)}, '
        f"{html.escape(key.window_text)}, {html.escape(key.index_rule)}</figcaption></figure>"
        for name, key in case.key_images.items()
    )
    stack = ""
    if case.stack:
        slices = "".join(
            f'<img class="slice" alt="slice {i + 1}" {"" if i == 0 else "hidden "}'
            f'src="data:image/png;base64,{base64.b64encode(_png_bytes(s)).decode()}">'
            for i, s in enumerate(case.stack)
        )
        stack = (
            f'<section id="stack" tabindex="0" aria-label="CT stack">{slices}'
            f'<input id="slider" type="range" min="1" max="{len(case.stack)}" value="1" aria-label="slice">'
            f'<p><span id="counter">1 / {len(case.stack)}</span> · {html.escape(case.stack_window)}</p></section>'
        )
    options = "".join(f"<li>{t(o)}</li>" for o in case.options)
    points = "".join(f"<li>{t(p)}</li>" for p in case.teaching_points)
    hidden = " hidden" if quiz else ""
    reveal = '<button id="reveal" type="button">Show answer / 정답 보기</button>' if quiz else ""
    title = t(case.title) + (f" ({html.escape(case.subject)})" if case.allow_pseudonym else "")
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:"NanumGothic","Nanum Gothic","Noto Sans CJK KR",sans-serif;margin:0 auto;max-width:900px;padding:8px;
box-sizing:border-box;overflow-wrap:anywhere}}
img{{max-width:100%;height:auto;display:block}} figure{{margin:8px 0}} input[type=range]{{width:100%}}
#stack img.slice{{background:#000;touch-action:none;width:100%;image-rendering:pixelated}}
[hidden]{{display:none !important}}
</style></head><body>
<h1>{title}</h1>
<section id="presentation"><h2>History</h2><p>{t(case.presentation)}</p></section>
<section id="images">{images}</section>
{stack}
<section id="question"><h2>Question</h2><p>{t(case.question)}</p><ol>{options}</ol></section>
{reveal}
<section id="answer"{hidden}><h2>Answer</h2><p>{t(case.answer)}</p><p>{t(case.discussion)}</p>
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
