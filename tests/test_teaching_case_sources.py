"""What build_case takes from elsewhere: the educator's Markdown/YAML text, the quantification module's numbers and
labels, the readers' scores, the baseline radiograph (refused while burned-in text is possible), and the inline
display in JupyterLab."""

from __future__ import annotations

import html
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from kicc_analysis.errors import PrivacyError
from kicc_analysis.teaching import (
    TeachingError,
    audit_clears,
    build_case,
    load_educator_text,
    render_case,
)

MARKDOWN = """\
## Title
Week 20
## Title (ko)
20주 증례
## Question
How has the disease changed?
## Question (ko)
병변은 어떻게 변했는가?
## Options
- Progression
- Resolution
## Options (ko)
- 진행
- 호전
## Answer
Progression
## Teaching points
- Compare matched levels.
- Quantify.
"""


@pytest.fixture(scope="module")
def quantified(demo_repository):
    from kicc_analysis.pipeline import quantify_cohort

    return quantify_cohort(demo_repository, show_progress=False)


@pytest.fixture(scope="module")
def subject(quantified):
    followed = quantified.cohort["ct_opacity_pct_followup"].notna()
    return quantified.cohort.loc[followed, "subjid"].iloc[0]


def test_markdown_educator_text(tmp_path):
    path = tmp_path / "week20.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    text = load_educator_text(path)
    assert text["title"] == {"en": "Week 20", "ko": "20주 증례"}
    assert text["options"] == [{"en": "Progression", "ko": "진행"}, {"en": "Resolution", "ko": "호전"}]
    assert text["teaching_points"] == [{"en": "Compare matched levels."}, {"en": "Quantify."}]
    path.write_text("## Question\nx\n## Diagnosis\ny\n", encoding="utf-8")
    with pytest.raises(TeachingError, match=r"week20.md line 3: unknown section 'Diagnosis'"):
        load_educator_text(path)
    yaml_path = tmp_path / "week20.yaml"
    yaml_path.write_text("options: COVID-19\n", encoding="utf-8")
    with pytest.raises(TeachingError, match="week20.yaml: field 'options' must be a list"):
        load_educator_text(yaml_path)


def test_identifier_planted_in_educator_file_is_refused(quantified, subject, demo_repository, tmp_path):
    """A DICOM header value typed into the educator's Markdown never reaches a page: nothing is written."""
    folder = next((demo_repository / "dicom").glob(f"*/{subject}"))
    headers = (
        pydicom.dcmread(p, stop_before_pixels=True, force=True) for p in sorted(folder.rglob("*")) if p.is_file()
    )
    accession = str(next(ds.AccessionNumber for ds in headers if ds.get("AccessionNumber")))
    path = tmp_path / "leak.md"
    path.write_text(MARKDOWN + f"## Discussion\nSee accession {accession}.\n", encoding="utf-8")
    case = build_case(quantified.cohort, subject, repository=demo_repository, educator=path, stack_step=8)
    assert accession in case.discussion["en"] and accession in case.identifying_values
    with pytest.raises(PrivacyError, match="case.html"):
        render_case(case, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "Case not shown" in case._repr_html_() and accession not in case._repr_html_()


def test_quantification_from_the_quantification_module(quantified, subject, demo_repository, tmp_path):
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification import segment_opacities
    from kicc_analysis.segmentation import segment_lungs

    row = quantified.cohort.set_index("subjid").loc[subject]
    case = build_case(quantified.cohort, subject, repository=demo_repository, stack_step=8)
    quant = case.facts["quantification"]
    assert [t["timepoint"] for t in quant["timepoints"]] == ["baseline", "follow-up"]
    assert quant["timepoints"][0]["opacity_pct"] == pytest.approx(row["ct_opacity_pct"], abs=0.01)
    assert quant["timepoints"][1]["consolidation_pct"] == pytest.approx(row["ct_consolidation_pct_followup"], abs=0.01)
    assert quant["opacity_pct_change"] == pytest.approx(row["ct_opacity_pct_change"], abs=0.02)
    # the per-series results table gives the same numbers (one source: the quantification module)
    from_results = build_case(
        quantified.build.table, subject, repository=demo_repository, quantification=quantified.results, stack_step=8
    ).facts["quantification"]
    assert from_results["source"] == "quantification results table"
    assert [t["opacity_pct"] for t in from_results["timepoints"]] == [t["opacity_pct"] for t in quant["timepoints"]]
    assert (
        build_case(quantified.build.table, subject, repository=demo_repository, stack_step=8).facts["quantification"][
            "timepoints"
        ]
        == []
    )  # nothing recomputed when nothing is given
    page = render_case(case, tmp_path / "q").read_text(encoding="utf-8")
    assert 'id="quantification"' in page and f"{row['ct_opacity_pct_change']:+.1f} %p" in page
    readers = case.facts["reader_scores"]["ct_lobe_total"]
    assert set(readers) == {"R1", "R2", "R3"} and all(0 <= v <= 25 for v in readers.values())
    assert 'id="readers"' in page
    # overlay=True draws the labels of segment_lungs + segment_opacities; the key slice has the most opacity
    overlaid = build_case(
        quantified.cohort, subject, repository=demo_repository, overlay=True, stack_step=8, radiograph=False
    )
    ct = load_ct(next((demo_repository / "dicom").glob(f"*/{subject}")), series_uid=row["baseline_ct_series_uid"])
    labels = sitk.GetArrayFromImage(segment_opacities(ct, segment_lungs(ct).labels))
    key = overlaid.key_images["ct_axial"]
    assert key.index == int(np.argmax(((labels == 1) | (labels == 2)).sum(axis=(1, 2))))
    assert "largest opacity burden" in key.index_rule
    levels = list(range(labels.shape[0] - 1, -1, -8))  # the stack runs top to bottom, every 8th slice
    assert abs(levels[overlaid.stack_start] - key.index) == min(abs(z - key.index) for z in levels)
    page = render_case(overlaid, tmp_path / "overlaid").read_text(encoding="utf-8")
    assert f'<span id="counter">{overlaid.stack_start + 1} / {len(levels)}</span>' in page  # opens on the key slice


@pytest.fixture
def burned_repository(quantified, subject, demo_repository, tmp_path):
    """A copy of the demo repository whose subject's baseline radiograph says BurnedInAnnotation YES."""
    root = tmp_path / "repo"
    shutil.copytree(demo_repository, root)
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.teaching.case import _baseline_radiograph, _subject_files

    found = _baseline_radiograph(_subject_files(build_cohort(root, show_progress=False), subject))
    assert found is not None and found.is_relative_to(root)
    ds = pydicom.dcmread(found, force=True)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(found)
    return root, found


def test_burned_in_radiograph_is_refused_unless_redacted_or_cleared(quantified, subject, burned_repository):
    from kicc_analysis.deid.audit import AuditResult

    root, found = burned_repository
    cohort = quantified.cohort
    with pytest.raises(TeachingError, match="BurnedInAnnotation is 'YES'"):
        build_case(cohort, subject, repository=root, stack_step=8)
    assert "cxr" not in build_case(cohort, subject, repository=root, stack_step=8, radiograph=False).key_images
    redacted = build_case(cohort, subject, repository=root, stack_step=8, redaction=[(0, 0, 20, 60)])
    key = redacted.key_images["cxr"]
    assert "1 region(s) redacted" in key.notes
    relative = found.resolve().relative_to(root.resolve()).as_posix()
    columns = ["file", "element_path", "tag", "keyword", "vr", "rule", "severity", "preview", "value_hash", "bbox"]
    clean = AuditResult(pd.DataFrame(columns=columns), pd.DataFrame(), n_files=10, n_dicom=10)
    assert audit_clears(clean, relative)
    assert "cxr" in build_case(cohort, subject, repository=root, stack_step=8, audit=clean).key_images
    text_found = pd.DataFrame([dict.fromkeys(columns, "") | {"file": relative, "rule": "burned_in:name"}])
    dirty = AuditResult(text_found, pd.DataFrame(), n_files=10, n_dicom=10)
    skipped = AuditResult(pd.DataFrame(columns=columns), pd.DataFrame(), 10, 10,
                          warnings=["burned-in text check skipped: the tesseract program is not installed"])  # fmt: skip
    for audit in (dirty, skipped):
        assert not audit_clears(audit, relative)
        with pytest.raises(TeachingError, match="BurnedInAnnotation"):
            build_case(cohort, subject, repository=root, stack_step=8, audit=audit)
    ds = pydicom.dcmread(found, force=True)
    del ds.BurnedInAnnotation
    ds.save_as(found)
    with pytest.raises(TeachingError, match="BurnedInAnnotation is 'unknown'"):
        build_case(cohort, subject, repository=root, stack_step=8)


def test_case_displays_inline_in_a_sandboxed_iframe(quantified, subject, demo_repository):
    from kicc_analysis.teaching import CSP

    case = build_case(quantified.cohort, subject, repository=demo_repository, stack_step=8, radiograph=False)
    shown = case._repr_html_()
    assert shown.startswith('<iframe sandbox="allow-scripts" ') and "allow-same-origin" not in shown
    srcdoc = html.unescape(shown.split('srcdoc="', 1)[1].rsplit('"></iframe>', 1)[0])
    assert f'content="{CSP}"' in srcdoc and '<section id="answer" hidden>' in srcdoc
    assert srcdoc.count('class="slice"') == len(case.stack) and subject not in shown
    text = repr(case)  # the plain-text display (notebook text/plain output) withholds the identifying values
    assert text.startswith("TeachingCase(") and subject not in text
    assert not any(value in text for value in case.identifying_values if len(value) >= 4)


def test_files_found_whatever_the_folder_layout(quantified, subject, demo_repository, tmp_path):
    """PACS exports name folders PA000128/ST000002/...: the subject's files come from the scan, not folder names."""
    root = tmp_path / "pacs"
    shutil.copytree(demo_repository, root)
    folder = next((root / "dicom").glob(f"*/{subject}"))
    folder.rename(folder.with_name("PA000001"))
    case = build_case(quantified.cohort, subject, repository=root, stack_step=8)
    assert {"ct_axial", "cxr"} <= set(case.key_images) and case.stack
    assert any(v.startswith("1.2.826.0.1.3680043") for v in case.identifying_values)  # headers were read


@pytest.mark.slow
def test_planted_burned_in_radiograph_with_the_real_audit(tmp_path):
    """The demo's planted radiograph with a name burned in (BurnedInAnnotation YES): refused; the OCR audit does not
    clear it (it finds the text); blacking out the box the audit found lets it through."""
    import json

    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.deid import ocr
    from kicc_analysis.deid.audit import audit_repository
    from kicc_analysis.demo import generate_demo

    if not ocr.tesseract_available():
        pytest.skip("the burned-in text audit needs the tesseract program (Debian tesseract-ocr; .ci/run installs it)")
    root = tmp_path / "demo"
    generate_demo(root, n_patients=8, seed=19, deid_problems=True, show_progress=False)
    planted = next(p for p in json.loads((root / "manifest.json").read_text())["deid_problems"]
                   if p["audit_rule"] == "burned_in")  # fmt: skip
    build = build_cohort(root, show_progress=False)
    subject = next(s for s in build.table["subjid"] if f"/{s}/" in planted["path"])
    assert "cxr" in build_case(build.table, subject, repository=root, build=build, stack_step=8).key_images  # baseline
    with pytest.raises(TeachingError, match="BurnedInAnnotation is 'YES'"):
        build_case(build.table, subject, repository=root, build=build, stack_step=8, radiograph=planted["path"])
    with pytest.raises(TeachingError, match="not one of"):
        build_case(
            build.table, build.table["subjid"].iloc[-1], repository=root, build=build, radiograph=planted["path"]
        )
    audit = audit_repository(root, show=False, workers=1)
    found = audit.findings[audit.findings["rule"].str.startswith("burned_in")]
    assert set(found["file"]) == {planted["path"]}
    assert not audit_clears(audit, planted["path"])
    with pytest.raises(TeachingError, match="BurnedInAnnotation"):
        build_case(build.table, subject, repository=root, build=build, stack_step=8, audit=audit,
                   radiograph=planted["path"])  # fmt: skip
    boxes = []
    for text in found["bbox"]:
        x, y, width, height = (int(v) for v in str(text).split(","))
        boxes.append((max(0, y - 4), max(0, x - 4), y + height + 4, x + width + 4))
    case = build_case(build.table, subject, repository=root, build=build, stack_step=8, redaction=boxes,
                      radiograph=planted["path"])  # fmt: skip
    assert f"{len(boxes)} region(s) redacted" in case.key_images["cxr"].notes
