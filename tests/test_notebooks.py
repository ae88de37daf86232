"""Notebooks 02 (quantification) and 04 (prognosis) end to end on the small demo repository."""

from __future__ import annotations

import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import discover_notebooks, run_study


def test_study_notebooks_are_numbered_and_versioned(project_root):
    notebooks = discover_notebooks(project_root / "notebooks")
    assert [p.stem[:2] for p in notebooks] == ["01", "02", "03", "04", "05", "07"]
    for path in notebooks:
        text = path.read_text()
        assert 'tags=["parameters"]' in text and "NOTEBOOK_VERSION" in text, path.name
        assert "output_dir" in text and "repository" in text, path.name


@pytest.mark.slow
def test_quantification_and_prognosis_notebooks_run_on_the_demo(demo_repository, tmp_path):
    results = tmp_path / "results"
    run = run_study(demo_repository, results, notebooks=["02", "04"], show_progress=False)
    assert run.failed == [], [nb.error for nb in run.failed]
    by_region = pd.read_csv(results / "tables" / "ct_quantification_by_region.csv")
    assert {"both", "right", "left"} <= set(by_region["region"])
    assert by_region["opacity_pct"].between(0, 100).all()
    stamp = read_provenance(results / "tables" / "ct_quantification_by_region.csv")
    assert stamp["notebook"] == "02_quantification"
    stamps = [read_provenance(p) for p in (results / "tables").glob("*.csv")]
    assert {s["notebook"] for s in stamps} == {"02_quantification", "04_prognosis"}
    assert len({s["cohort_version"] for s in stamps}) == 1
