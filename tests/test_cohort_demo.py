"""The cohort and the first notebook on the embedded demo repository (end to end)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kicc_analysis.cohort import build_cohort, ct_series_jobs, load_readings
from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import run_study


@pytest.fixture(scope="module")
def demo_build(demo_repository):
    return build_cohort(demo_repository, workers=1, show_progress=False)


def test_every_demo_patient_with_a_ct_has_a_selected_baseline_ct(demo_build):
    table = demo_build.table
    assert len(table) == 8
    # the demo images 89.1 % of patients by CT (published KICC-19): 7 of 8 here
    with_ct = table["n_ct_studies"] >= 1
    assert with_ct.sum() == 7
    assert table.loc[with_ct, "baseline_ct_series_uid"].notna().all()
    assert table.loc[~with_ct, "baseline_ct_series_uid"].isna().all()
    assert demo_build.linkage[demo_build.linkage["problem"] != "study_not_listed"].empty


def test_injected_problems_are_all_reported(demo_repository, demo_build):
    manifest = json.loads((demo_repository / "manifest.json").read_text())
    report = demo_build.validation
    for problem in manifest["injected_problems"]:
        if problem["problem"].startswith("missing"):
            continue  # missing at random is not an error
        hits = report[(report["subjid"] == problem["subjid"]) & (report["variable"] == problem["variable"])]
        assert not hits.empty, problem


def test_jobs_cover_every_ct_study_and_readings_load(demo_repository, demo_build):
    jobs = ct_series_jobs(demo_build)
    assert len(jobs) == int(demo_build.table["n_ct_studies"].sum())
    with_ct = demo_build.table.loc[demo_build.table["n_ct_studies"] >= 1, "subjid"]
    assert (jobs["timepoint"] == "baseline").sum() == len(with_ct)
    readings = load_readings(demo_repository)
    assert set(readings["reader"]) == {"R1", "R2", "R3"}
    assert set(readings["subjid"]) == set(with_ct)  # readers score the baseline CT


@pytest.mark.slow
def test_notebook_01_runs_on_the_demo(demo_repository, tmp_path):
    run = run_study(demo_repository, tmp_path / "results", notebooks=["01"], show_progress=False)
    assert run.failed == [], run.failed
    flow = pd.read_csv(tmp_path / "results" / "tables" / "cohort_flow.csv")
    assert flow["n"].iloc[0] == 8
    stamp = read_provenance(tmp_path / "results" / "tables" / "table1_by_severity.csv")
    assert stamp["notebook"] == "01_cohort" and len(stamp["cohort_version"]) == 16
    assert "table1_by_severity.csv" in run.index_html.read_text()
