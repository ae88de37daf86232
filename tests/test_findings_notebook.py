"""Notebook 07 (imaging findings) runs end to end on the small demo repository, with provenance on its outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import run_study


@pytest.mark.slow
def test_notebook_07_runs_on_the_demo(demo_repository, tmp_path):
    results = tmp_path / "results"
    run = run_study(demo_repository, results, notebooks=["07"], show_progress=False)
    assert run.failed == [], [nb.error for nb in run.failed]
    tables = results / "tables"
    assert pd.read_csv(tables / "ct_finding_problems.csv").empty
    overall = pd.read_csv(tables / "ct_finding_frequency_overall.csv")
    # one call per patient whose baseline CT was read (patients without a CT have no CT findings reading)
    read = pd.read_csv(demo_repository / "readings" / "ct_findings.csv")
    n_read = read[read.columns[0]].nunique()
    assert set(overall["n"]) <= {n_read} and (overall["ci_low"] <= overall["proportion"]).all()
    guideline = pd.read_csv(tables / "ct_finding_guideline_table.csv", index_col=0)
    assert "all patients" in guideline.columns and "ground-glass opacity" in guideline.index
    agreement = pd.read_csv(tables / "ct_finding_agreement.csv")
    assert set(zip(agreement["reader_1"], agreement["reader_2"], strict=True)) == {("R1", "R2"), ("R1", "R3"),
                                                                                   ("R2", "R3")}  # fmt: skip
    for name in ("ct_finding_frequency_overall.csv", "ct_finding_agreement.csv", "ct_finding_outcome.csv"):
        stamp = read_provenance(tables / name)
        assert stamp["notebook"] == "07_imaging_findings" and stamp["cohort_version"]
    assert (results / "figures" / "ct_finding_frequency_onset.png").exists()
