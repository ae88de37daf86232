"""The demo's planted de-identification problems (off by default) and notebook 01's audit section that reports them."""

from __future__ import annotations

import json

import jupytext
import pandas as pd
import pytest
from conftest import PROJECT_ROOT

from kicc_analysis.deid import ocr
from kicc_analysis.demo import generate_demo
from kicc_analysis.demo.deid_problems import PLANTED_NAME, PLANTED_RRN
from kicc_analysis.privacy import assert_no_identifiers

PLANTED = (*PLANTED_NAME, PLANTED_RRN, "HONG GILDONG", "9001011234568")
RULES = {"identity_not_removed", "free_text:person_name", "path:rrn", "date_inconsistent", "burned_in"}


@pytest.fixture(scope="module")
def planted_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("deid_demo") / "repository"
    manifest = generate_demo(root, n_patients=6, seed=5, workers=1, show_progress=False, deid_problems=True)
    return root, manifest


def test_off_by_default(demo_repository):
    manifest = json.loads((demo_repository / "manifest.json").read_text())
    assert manifest["deid_problems"] == [] and manifest["deid_problems_planted"] is False
    assert not any("홍길동" in p.name for p in demo_repository.rglob("*"))


def test_five_problems_planted_on_five_series_and_listed_masked(planted_demo):
    root, manifest = planted_demo
    listed = manifest.deid_problems
    assert {p["audit_rule"] for p in listed} == RULES
    assert len({p["series_uid"] for p in listed}) == 5
    text = (root / "manifest.json").read_bytes()
    assert_no_identifiers(text, known_values=PLANTED, where="manifest.json", patterns=False)
    assert [p.name for p in root.rglob(f"{PLANTED_NAME[0]}_*.dcm")] == [f"{PLANTED_NAME[0]}_{PLANTED_RRN}.dcm"]
    # reused only with the same option (the manifest records it)
    again = generate_demo(
        root, n_patients=6, seed=5, workers=1, show_progress=False, deid_problems=True, if_missing=True
    )
    assert again.deid_problems == listed


def _cells(*markers: str) -> list[str]:
    cells = jupytext.read(PROJECT_ROOT / "notebooks" / "01_cohort.py").cells
    return [next(c.source for c in cells if c.cell_type == "code" and marker in c.source) for marker in markers]


def test_notebook_01_audit_section_reports_the_planted_problems_masked(planted_demo, tmp_path, capsys):
    root, _ = planted_demo
    results = tmp_path / "results"
    namespace: dict = {}
    parameters, setup, section = _cells("output_dir =", "build_cohort(", "write_audit_sample")
    exec(parameters, namespace)
    namespace.update(repository=str(root), output_dir=str(results))
    exec(setup, namespace)
    exec(section, namespace)
    summary = pd.read_csv(results / "tables" / "deid_audit_summary.csv", comment="#")
    found = set(summary["rule"])
    expected = RULES - {"burned_in"}
    assert expected <= found, summary
    if ocr.tesseract_available():  # CI installs tesseract in its one apt step
        assert any(rule.startswith("burned_in:") for rule in found), summary
    for row in summary[summary["rule"].isin(expected)].itertuples():
        assert row.files == 1 or row.rule == "identity_not_removed"  # one file per series is audited
    printed = capsys.readouterr()
    for f in sorted(p for p in results.rglob("*") if p.is_file()):
        assert_no_identifiers(f.read_bytes(), known_values=PLANTED, where=str(f), patterns=False)
    assert_no_identifiers(printed.out + printed.err, known_values=PLANTED, where="notebook output", patterns=False)


def test_cli_plants_the_problems_into_a_relative_output_folder(tmp_path, monkeypatch):
    # make study calls `kicc demo demo_repository --deid-problems` with a relative folder
    from kicc_analysis.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "repository", "--patients", "6", "--seed", "5", "--deid-problems"]) == 0
    manifest = json.loads((tmp_path / "repository" / "manifest.json").read_text())
    assert manifest["deid_problems_planted"] is True
    assert {p["audit_rule"] for p in manifest["deid_problems"]} == RULES
    assert all(not p["path"].startswith("/") for p in manifest["deid_problems"])
