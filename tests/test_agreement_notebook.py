"""Notebook 03 (observer variation) runs end to end on the small demo repository."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.study import run_study


@pytest.mark.slow
def test_notebook_03_runs_on_the_demo(demo_repository, tmp_path):
    run = run_study(demo_repository, tmp_path / "results", notebooks=["03"], show_progress=False)
    assert run.failed == [], run.failed
    tables = tmp_path / "results" / "tables"
    lobes = pd.read_csv(tables / "lobe_agreement.csv")
    assert set(lobes["item"]) == {"RUL", "RML", "RLL", "LUL", "LLL"}
    assert lobes["estimate"].between(-1, 1).all()
    icc_table = pd.read_csv(tables / "total_score_icc.csv")
    assert list(icc_table["form"]) == ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"]
    assert (tables / "suspicion_agreement.csv").exists()
    assert (tmp_path / "results" / "figures" / "lobe_confusion_matrices.png").exists()
