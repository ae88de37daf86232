"""``kicc teach case|book|propose`` on the demo repository."""

from __future__ import annotations

import json

import pytest

from kicc_analysis.cli import main


@pytest.fixture(scope="module")
def subject(demo_repository):
    from kicc_analysis.cohort import load_cohort

    cohort = load_cohort(demo_repository, show_progress=False)
    return cohort.loc[cohort["n_followup_ct"] > 0, "subjid"].iloc[0]


def test_teach_case(demo_repository, subject, tmp_path, capsys):
    text = tmp_path / "week.yaml"
    text.write_text('question: {en: "Diagnosis?", ko: "진단은?"}\nanswer: {en: COVID-19, ko: 코로나19}\n', "utf-8")
    out = tmp_path / "case"
    argv = ["teach", "case", "--repository", str(demo_repository), "--subject", subject, "--out", str(out)]
    assert main([*argv, "--text", str(text), "--stack-step", "8", "--lang", "ko", "--no-quiz"]) == 0
    page = (out / "case.html").read_text(encoding="utf-8")
    assert "진단은?" in page and '<section id="answer">' in page and '<html lang="ko">' in page
    assert subject not in page and "case page written to" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["comparison"] is not None  # two CT days: shown
    quiz = tmp_path / "quiz"
    extra = ["--stack-step", "8", "--quantify", "--allow-pseudonym", "--no-comparison"]
    assert main([*argv[:-1], str(quiz), *extra]) == 0
    page = (quiz / "case.html").read_text(encoding="utf-8")
    assert '<section id="answer" hidden>' in page and subject in page and 'id="quantification"' in page
    manifest = json.loads((quiz / "manifest.json").read_text())
    assert len(manifest["quantification"]["timepoints"]) == 2
    assert manifest["comparison"] is None and not (quiz / "comparison.png").exists()


def test_teach_case_errors_are_one_line(demo_repository, tmp_path, capsys):
    argv = ["teach", "case", "--repository", str(demo_repository), "--out", str(tmp_path / "x")]
    assert main([*argv, "--subject", "KICC-S99-0999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kicc teach: error: subject 'KICC-S99-0999': not in the cohort table") and "\n" not in err
    leak = tmp_path / "leak.yaml"
    leak.write_text("discussion: call 010-2222-3333\n", encoding="utf-8")
    from kicc_analysis.cohort import load_cohort

    first = load_cohort(demo_repository, show_progress=False)["subjid"].iloc[0]
    assert main([*argv, "--subject", first, "--text", str(leak), "--stack-step", "8"]) == 2
    assert "phone" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_teach_book_and_propose(demo_repository, subject, tmp_path, capsys):
    (tmp_path / "week.md").write_text("## Question\nWhat changed?\n## Answer\nProgression\n", encoding="utf-8")
    spec = tmp_path / "cases.yaml"
    spec.write_text(f"title: Weekly\ncases:\n  - subject: {subject}\n    text: week.md\n", encoding="utf-8")
    out = tmp_path / "book"
    assert main(["teach", "book", str(spec), "--out", str(out), "--repository", str(demo_repository)]) == 0
    assert "casebook of 1 cases" in capsys.readouterr().out
    assert "What changed?" in (out / "case_01" / "case.html").read_text(encoding="utf-8")
    assert 'href="case_01/case.html"' in (out / "index.html").read_text(encoding="utf-8")
    assert main(["teach", "book", str(spec), "--out", str(tmp_path / "b2")]) == 2  # no repository anywhere
    assert "no repository" in capsys.readouterr().err
    assert main(["teach", "propose", "--repository", str(demo_repository), "--no-quantify", "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "reason" in printed.splitlines()[0] and "rank" in printed.splitlines()[0]
