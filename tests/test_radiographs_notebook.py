"""Notebook 05 (radiographs) runs end to end on the small demo repository, with provenance on its outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import run_study


@pytest.mark.slow
def test_notebook_05_runs_on_the_demo(demo_repository, tmp_path):
    results = tmp_path / "results"
    run = run_study(demo_repository, results, notebooks=["05"], show_progress=False)
    assert run.failed == [], [nb.error for nb in run.failed]
    tables = results / "tables"
    selection = pd.read_csv(tables / "radiograph_selection.csv")
    scores = pd.read_csv(demo_repository / "readings" / "radiograph_scores.csv")
    assert set(selection["study_uid"]) == set(scores["study"])
    assert selection["reason"].str.contains("view").all()
    assert pd.read_csv(tables / "radiograph_score_problems.csv").empty
    stamp = read_provenance(tables / "radiograph_selection.csv")
    assert stamp["notebook"] == "05_radiographs" and stamp["cohort_version"]
    assert (results / "figures" / "radiograph_timeline.png").exists()
