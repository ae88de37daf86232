"""Casebook: an index page linking the case pages, offline, checked against every case's identifiers."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from kicc_analysis.errors import PrivacyError
from kicc_analysis.teaching import CSP, TeachingError, build_case, render_casebook
from kicc_analysis.teaching.casebook import build_casebook, load_casebook_spec


@pytest.fixture(scope="module")
def cohort(demo_repository):
    from kicc_analysis.cohort import load_cohort

    return load_cohort(demo_repository, show_progress=False)


@pytest.fixture(scope="module")
def subjects(cohort):
    return list(cohort.loc[cohort["baseline_ct_series_uid"].notna(), "subjid"].iloc[:2])


@pytest.fixture
def cases(cohort, subjects, demo_repository):
    texts = [{"title": {"en": "Week 1", "ko": "1주"}, "question": "Diagnosis?", "answer": "COVID-19 pneumonia"},
             {"title": {"en": "Week 2", "ko": "2주"}, "question": "What changed?", "answer": "Progression"}]  # fmt: skip
    return [
        build_case(cohort, s, repository=demo_repository, educator=t, stack_step=8, radiograph=False)
        for s, t in zip(subjects, texts, strict=True)
    ]


@pytest.fixture
def book(cases, tmp_path):
    return render_casebook(cases, tmp_path / "book", title="Weekly chest cases")


def test_casebook_links_every_case_offline(book, cases, subjects):
    root = book.parent
    index = book.read_text(encoding="utf-8")
    assert f'content="{CSP}"' in index
    links = re.findall(r'href="([^"]+)"', index)
    assert links == ["case_01/case.html", "case_02/case.html"]
    for link in links:
        page = (root / link).read_text(encoding="utf-8")
        assert f'content="{CSP}"' in page and 'href="../index.html"' in page
    assert "Week 1" in index and "Week 2" in index and "http://" not in index and "https://" not in index
    for subject in subjects:  # folders are numbered, never named by pseudonym
        assert subject not in index and not any(subject in p.name for p in root.rglob("*"))
    book_json = json.loads((root / "casebook.json").read_text())
    assert [c["folder"] for c in book_json["cases"]] == ["case_01", "case_02"]
    for name, digest in book_json["files"].items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest


def test_identifier_of_one_case_in_another_case_is_refused(cases, tmp_path):
    """Case 2's DICOM/table identifiers in case 1's educator text: the whole book is refused, nothing written."""
    value = next(v for v in cases[1].identifying_values if v not in cases[0].identifying_values and len(v) >= 6)
    cases[0].discussion = {"en": f"Compare with {value}.", "ko": "."}
    with pytest.raises(PrivacyError):
        render_casebook(cases, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_identifier_in_the_title_is_refused(cases, tmp_path):
    with pytest.raises(PrivacyError, match="index.html"):
        render_casebook(cases, tmp_path / "refused", title=f"Cases of {cases[0].identifying_values[0]}")
    assert not (tmp_path / "refused").exists()


def test_casebook_needs_cases(tmp_path):
    with pytest.raises(TeachingError, match="at least one case"):
        render_casebook([], tmp_path)


def test_casebook_file(cohort, subjects, demo_repository, tmp_path):
    text = tmp_path / "week1.md"
    text.write_text("## Question\nDiagnosis?\n## Question (ko)\n진단은?\n## Options\n- COVID-19\n- Oedema\n",
                    encoding="utf-8")  # fmt: skip
    spec = tmp_path / "book.yaml"
    spec.write_text(
        f"title: Weekly\nlang: ko\ncases:\n  - subject: {subjects[0]}\n    text: week1.md\n"
        f"  - subject: {subjects[1]}\n    answer: {{en: Progression, ko: 진행}}\n",
        encoding="utf-8",
    )
    index = build_casebook(spec, tmp_path / "out", cohort=cohort, repository=demo_repository)
    first = (index.parent / "case_01" / "case.html").read_text(encoding="utf-8")
    second = (index.parent / "case_02" / "case.html").read_text(encoding="utf-8")
    assert "진단은?" in first and "<li>COVID-19</li>" in first and '<html lang="ko">' in first
    assert "진행" in second
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"cases:\n  - subject: {subjects[0]}\n    qestion: x\n", encoding="utf-8")
    with pytest.raises(TeachingError, match=r"bad.yaml: case 1: unknown key\(s\) \['qestion'\]"):
        load_casebook_spec(bad)
    bad.write_text("title: x\n", encoding="utf-8")
    with pytest.raises(TeachingError, match="non-empty list 'cases'"):
        load_casebook_spec(bad)


def test_casebook_in_browser(browser, book):
    """The index loads, its links open the case pages and lead back, all without one network request."""
    page = browser.new_page(width=390, height=844)
    page.open(book)
    page.screenshot("teaching_casebook_index_phone")
    assert page.evaluate("document.querySelectorAll('#cases a.case').length") == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.page.click("#cases li:nth-child(2) a.case")
    page.page.wait_for_load_state("load")
    assert page.evaluate("location.pathname").endswith("/case_02/case.html")
    assert page.evaluate("document.querySelector('h1').textContent") == "Week 2"
    assert page.evaluate("document.getElementById('answer').hidden") is True
    page.screenshot("teaching_casebook_case_phone")
    page.page.click("#index")
    page.page.wait_for_load_state("load")
    assert page.evaluate("location.pathname").endswith("/book/index.html")
    assert all(url.startswith(("file://", "data:")) for url in page.requests)
    assert page.network_requests(external_only=True) == []


def test_allowed_pseudonyms_of_one_site(tmp_path):
    """Two cases of site S01 with their pseudonyms shown on purpose: the site code inside a shown pseudonym is no
    finding for the other case, but one case's pseudonym on the other's page is."""
    from kicc_analysis.teaching import TeachingCase

    def case(subject: str) -> TeachingCase:
        text = {"en": "Case", "ko": "증례"}
        return TeachingCase(title=text, presentation=text, question=text, options=[], answer=text, discussion=text,
                            teaching_points=[], identifying_values=["S01", subject], allow_pseudonym=True,
                            subject=subject)  # fmt: skip

    cases = [case("KICC-S01-0001"), case("KICC-S01-0002")]
    index = render_casebook(cases, tmp_path / "book")
    assert "KICC-S01-0002" in (index.parent / "case_02" / "case.html").read_text(encoding="utf-8")
    assert "KICC-S01-0002" not in (index.parent / "case_01" / "case.html").read_text(encoding="utf-8")
    cases[1].allow_pseudonym = False
    cases[0].discussion = {"en": "Compare with KICC-S01-0002.", "ko": "."}
    with pytest.raises(PrivacyError, match="case.html"):  # its site code and, for case 2, its pseudonym
        render_casebook(cases, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_pseudonym_of_another_case_is_refused(tmp_path):
    from kicc_analysis.teaching import TeachingCase

    text = {"en": "Case", "ko": "증례"}
    cases = [
        TeachingCase(title=text, presentation=text, question=text, options=[], answer=text,
                     discussion={"en": "Compare with KICC-S02-0002.", "ko": "."}, teaching_points=[],
                     identifying_values=["S01"], subject="KICC-S01-0001"),
        TeachingCase(title=text, presentation=text, question=text, options=[], answer=text, discussion=text,
                     teaching_points=[], identifying_values=["S02"], subject="KICC-S02-0002"),
    ]  # fmt: skip
    with pytest.raises(PrivacyError, match="case_01/case.html: the subject's pseudonym"):
        render_casebook(cases, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
