"""build_case fills the case's studies from the cohort build and render_case embeds the comparison figure
(baseline vs follow-up on matched levels) for a subject with two or more timepoints, checked like every image."""

from __future__ import annotations

import base64
import json
import re

import pytest

from kicc_analysis.errors import PrivacyError
from kicc_analysis.repository import series_files
from kicc_analysis.teaching import build_case, render_case
from kicc_analysis.teaching.case import case_studies


@pytest.fixture(scope="module")
def build(demo_repository):
    from kicc_analysis.cohort import build_cohort

    return build_cohort(demo_repository, show_progress=False)


def _subjects(build, n_ct_days: int) -> list[str]:
    ct = build.inventory[build.inventory["modality"] == "CT"]
    days = ct.groupby("subjid")["img_day"].nunique()
    return sorted(days[days == n_ct_days].index)


@pytest.fixture(scope="module")
def two_timepoints(build, demo_repository):
    subject = _subjects(build, 2)[0]
    return subject, build_case(build.table, subject, repository=demo_repository, build=build, stack_step=8)


def test_studies_come_from_the_cohort_build_with_its_selected_series(build, two_timepoints, demo_repository):
    subject, case = two_timepoints
    inventory = build.inventory[(build.inventory["subjid"] == subject) & (build.inventory["modality"] == "CT")]
    cts = [s for s in case.studies if s.modality == "CT"]
    assert sorted(s.day for s in cts) == sorted(int(d) for d in inventory["img_day"])
    for study, uid in zip(cts, inventory.sort_values("img_day")["selected_series_uid"], strict=True):
        assert study.image.GetSize()[2] == len(series_files(build.scan, uid))  # the cohort's chosen series
    assert [s.label for s in cts] == ["baseline", "follow-up"]
    radiographs = [s for s in case.studies if s.modality == "radiograph"]
    assert {s.day for s in radiographs} <= {s.day for s in cts}  # only radiographs of a CT's day
    assert case.facts["comparison"] == {"timepoints": 2, "studies": len(case.studies), "left_out": []}
    # the same studies again (the baseline CT and its lungs are reused from build_case when given)
    again, left_out = case_studies(build, subject, demo_repository)
    assert [(s.day, s.modality) for s in again] == [(s.day, s.modality) for s in case.studies] and left_out == []


def test_two_timepoints_get_the_comparison_figure_with_matched_levels(two_timepoints, tmp_path):
    _, case = two_timepoints
    page = render_case(case, tmp_path / "case")
    text = page.read_text(encoding="utf-8")
    section = re.search(r'<section id="comparison">(.*?)</section>', text, flags=re.S)
    assert section is not None
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", section.group(1)).group(1))
    assert png == (tmp_path / "case" / "comparison.png").read_bytes()  # the embedded figure is the file
    for caption in case.comparison.captions():
        assert caption.split("\n")[0] in text  # day, timepoint, slice and lung level of each panel
    manifest = json.loads((tmp_path / "case" / "manifest.json").read_text(encoding="utf-8"))
    record = manifest["comparison"]
    assert record["rule"] == "lung_fraction"
    ct_levels = [p["level"] for p in record["panels"] if p["modality"] == "CT"]
    assert len(ct_levels) == 2 and all(level["index"] is not None for level in ct_levels)
    for level in ct_levels:  # matched: each panel's lung fraction within half a slice of the target level
        assert level["fraction_error"] <= 0.5 * level["fraction_step"] + 1e-9
        assert abs(level["fraction"] - record["target"]["fraction"]) == pytest.approx(level["fraction_error"])
        assert 0 <= level["index"] < level["n_slices"]
    for suffix in (".png", ".svg", ".pdf"):
        assert f"comparison{suffix}" in manifest["files"] and (tmp_path / "case" / f"comparison{suffix}").is_file()


def test_one_timepoint_gets_no_comparison(build, demo_repository, tmp_path):
    subject = _subjects(build, 1)[0]
    case = build_case(build.table, subject, repository=demo_repository, build=build, stack_step=8)
    assert case.comparison is None and case.facts["comparison"]["timepoints"] == 1
    page = render_case(case, tmp_path / "one").read_text(encoding="utf-8")
    assert 'id="comparison"' not in page and not list((tmp_path / "one").glob("comparison*"))
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["comparison"] is None
    skipped = build_case(
        build.table, _subjects(build, 2)[0], repository=demo_repository, build=build, stack_step=8, comparison=False
    )
    assert skipped.studies == [] and skipped.comparison is None


def test_rerender_is_byte_identical(two_timepoints, tmp_path):
    _, case = two_timepoints
    first, second = render_case(case, tmp_path / "a").parent, render_case(case, tmp_path / "b").parent
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and "comparison.pdf" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_no_identifier_in_the_comparison_and_a_planted_one_is_refused(two_timepoints, tmp_path):
    _, case = two_timepoints
    out = render_case(case, tmp_path / "ok").parent
    long_values = [v for v in case.identifying_values if len(v) >= 6]
    assert long_values  # UIDs, dates, names of the subject's files
    for path in out.glob("comparison*"):
        data = path.read_bytes()
        assert not any(v.encode() in data for v in long_values), path.name
    uid = next(v for v in case.identifying_values if v.count(".") > 4)  # a study/series UID of the subject
    panel = case.comparison.panels[0]
    original = panel["caption"]
    panel["caption"] = f"{original} ({uid})"
    try:
        with pytest.raises(PrivacyError):
            render_case(case, tmp_path / "leak")
        assert not (tmp_path / "leak").exists()  # fail closed: nothing written
    finally:
        panel["caption"] = original
