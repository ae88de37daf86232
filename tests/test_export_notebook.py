"""Notebook 08 (AI-ready export) runs end to end on the small demo repository, with provenance on its outputs; the
export itself goes to a temporary folder, never into results/ or the repository."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import run_study


@pytest.mark.slow
def test_notebook_08_runs_on_the_demo(demo_repository, tmp_path):
    results = tmp_path / "results"
    before = sorted(p.relative_to(demo_repository) for p in demo_repository.rglob("*"))
    run = run_study(demo_repository, results, notebooks=["08"], show_progress=False)
    assert run.failed == [], [nb.error for nb in run.failed]
    tables = results / "tables"
    report = pd.read_csv(tables / "export_split_report.csv")
    assert {"train", "validation", "test"} <= set(report["split"])
    baseline = pd.read_csv(tables / "export_baseline_auc.csv")
    assert list(baseline["model"]) == ["brixia + demog_age", "brixia", "demog_age"]
    assert (baseline["outcome"] == "inter_suppleo2").all()
    skipped = pd.read_csv(tables / "export_skipped.csv")
    # 8 patients: a split may lack one outcome class; then every model names the reason instead of an AUC
    ran = baseline["skipped"].isna()
    assert (baseline.loc[ran, "auc"].between(0, 1)).all() and baseline.loc[~ran, "auc"].isna().all()
    assert len(skipped) == int((~ran).sum())
    for name in ("export_split_report.csv", "export_baseline_auc.csv"):
        stamp = read_provenance(tables / name)
        assert stamp["notebook"] == "08_ai_export" and stamp["cohort_version"]
    assert not [p for p in results.rglob("*") if p.suffix in (".png", ".nii", ".gz") and "images" in p.parts]
    assert sorted(p.relative_to(demo_repository) for p in demo_repository.rglob("*")) == before
