"""Case model and page: built from the demo repository; the identifier check fails closed."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest

from kicc_analysis.errors import PrivacyError
from kicc_analysis.teaching import CSP, build_case, check_bytes, render_case
from kicc_analysis.teaching.case import MIN_BINARY_VALUE_LENGTH

EDUCATOR = """
title: {en: "Week 19", ko: "19주 증례"}
question: {en: "What is the most likely diagnosis?", ko: "가장 가능성 높은 진단은?"}
options: [{en: "COVID-19 pneumonia", ko: "코로나19 폐렴"}, {en: "Pulmonary oedema", ko: "폐부종"}]
answer: {en: "COVID-19 pneumonia", ko: "코로나19 폐렴"}
discussion: {en: "Peripheral ground-glass opacities.", ko: "말초 간유리 음영."}
teaching_points: [{en: "Look at the periphery.", ko: "말초를 보라."}]
"""


@pytest.fixture(scope="module")
def cohort(demo_repository):
    from kicc_analysis.cohort import load_cohort

    return load_cohort(demo_repository, show_progress=False)


@pytest.fixture(scope="module")
def case_inputs(cohort, demo_repository, tmp_path_factory):
    educator = tmp_path_factory.mktemp("edu") / "case.yaml"
    educator.write_text(EDUCATOR, encoding="utf-8")
    subject = cohort.loc[cohort["baseline_ct_series_uid"].notna(), "subjid"].iloc[0]
    return cohort, subject, demo_repository, educator


@pytest.fixture
def case(case_inputs):
    cohort, subject, repository, educator = case_inputs
    return build_case(cohort, subject, repository=repository, educator=educator, stack_step=6)


def test_case_page_is_self_contained_and_deidentified(case, case_inputs, tmp_path):
    cohort, subject, _, _ = case_inputs
    row = cohort.loc[cohort["subjid"] == subject].iloc[0]
    low = int(row["demog_age"]) // 5 * 5
    assert f"{low}-{low + 4}" in case.presentation["en"] or row["demog_age"] >= 90
    assert case.stack and case.key_images["ct_axial"].plane == "axial"
    page = render_case(case, tmp_path / "out", quiz=True)
    text = page.read_text(encoding="utf-8")
    assert f'content="{CSP}"' in text and "default-src 'none'" in CSP
    assert '<section id="answer" hidden>' in text
    assert subject not in text  # the pseudonym is hidden by default
    assert "http://" not in text and "https://" not in text
    assert text.count('class="slice"') == len(case.stack)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"case.html", "manifest.json", "ct_axial.png", "ct_axial.svg", "ct_axial.pdf"} <= names
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["key_images"]["ct_axial"]["window"] == [-600.0, 1500.0]
    import hashlib

    assert (
        manifest["files"]["ct_axial.png"]
        == hashlib.sha256((tmp_path / "out" / "ct_axial.png").read_bytes()).hexdigest()
    )
    for value in case.identifying_values:
        for name in names:
            data = (tmp_path / "out" / name).read_bytes()
            if name.endswith((".html", ".svg")):  # base64 image payloads hold short values by chance; decoded below
                data = re.sub(rb"(data:image/[a-z+.-]+;base64,)[A-Za-z0-9+/=\s]+", rb"\1", data)
            elif name.endswith((".png", ".pdf")) and len(value) < MIN_BINARY_VALUE_LENGTH:
                continue  # compressed bytes: short values match by chance (text chunks are checked in full)
            assert value.encode() not in data
    ko = render_case(case, tmp_path / "ko", quiz=False, lang="ko").read_text(encoding="utf-8")
    assert "코로나19 폐렴" in ko and '<section id="answer">' in ko


def test_identifying_values_cover_header_and_table(case, case_inputs):
    cohort, subject, repository, _ = case_inputs
    import pydicom

    row = cohort.loc[cohort["subjid"] == subject].iloc[0]
    one = next(p for p in sorted((repository / "dicom").rglob("*.dcm")) if subject in str(p))
    ds = pydicom.dcmread(one, stop_before_pixels=True)
    values = set(case.identifying_values)
    assert str(ds.PatientID) in values and str(ds.StudyInstanceUID) in values and str(ds.StudyDate) in values
    assert row["pres_date"].strftime("%Y-%m-%d") in values and row["kicc_site"] in values
    if "PatientName" in ds and str(ds.PatientName):
        assert str(ds.PatientName) in values


def test_every_planted_identifier_is_found_and_nothing_written(case, tmp_path):
    assert len(case.identifying_values) >= 5
    for i, value in enumerate(case.identifying_values):
        case.discussion = {"en": f"Seen on {value}.", "ko": "."}
        out = tmp_path / f"refused{i}"
        with pytest.raises(PrivacyError):
            render_case(case, out, quiz=False)
        assert not out.exists()  # fail closed: not one file


def test_name_in_png_text_chunk_is_found(case):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    name = next(v for v in case.identifying_values if not v[0].isdigit())
    info.add_text("Author", name)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="PNG", pnginfo=info)
    page = f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
    assert name not in page  # only decoding the embedded image's chunks can find it
    with pytest.raises(PrivacyError, match="embedded image metadata"):
        check_bytes(page, case, "page.html")
    clean = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(clean, format="PNG")
    check_bytes(f'<img src="data:image/png;base64,{base64.b64encode(clean.getvalue()).decode()}">', case, "ok")


def test_pattern_identifier_in_educator_text_refused(case, tmp_path):
    case.answer = {"en": "call 010-2222-3333", "ko": ""}
    with pytest.raises(PrivacyError, match="phone"):
        render_case(case, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_png_text_chunks_equal_pillow():
    """The chunk reader (no pixel decoding) finds what Pillow's ``Image.text`` finds: tEXt, zTXt and Hangul iTXt."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from kicc_analysis.teaching.case import png_text_chunks

    info = PngInfo()
    info.add_text("Author", "홍길동")  # not Latin-1: Pillow writes iTXt
    info.add_text("Comment", "Kim Minsu")
    info.add_text("Title", "zipped name", zip=True)
    info.add_itxt("Source", "강남 병원", zip=True)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(buffer, format="PNG", pnginfo=info)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        expected = dict(im.text)
    found = {key: text.strip() for key, text in png_text_chunks(buffer.getvalue())}
    assert found == expected and len(found) == 4
