"""Notebooks 02 (quantification) and 04 (prognosis) end to end on the small demo repository."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import discover_notebooks, run_study


def test_study_notebooks_are_numbered_and_versioned(project_root):
    notebooks = discover_notebooks(project_root / "notebooks")
    assert [p.stem[:2] for p in notebooks] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    for path in notebooks:
        text = path.read_text()
        assert 'tags=["parameters"]' in text and "NOTEBOOK_VERSION" in text, path.name
        assert "output_dir" in text and "repository" in text, path.name


def test_no_notebook_forces_a_matplotlib_backend(project_root):
    """Jupyter's inline backend must stay in charge (interactive and under papermill)."""
    for path in discover_notebooks(project_root / "notebooks"):
        text = path.read_text()
        assert not re.search(r"matplotlib\.use\(|switch_backend\(|%matplotlib|MPLBACKEND", text), path.name


def assert_figures_shown_in_executed_notebooks(results: Path) -> int:
    """Every figure PNG a notebook wrote is an image output of its executed notebook (same bytes); returns the count."""
    checked = 0
    for executed in sorted((results / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(executed, as_version=4)
        shown = {
            base64.b64decode(output.data["image/png"])
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        }
        written = [p for p in (results / "figures").glob("*.png") if read_provenance(p)["notebook"] == executed.stem]
        for png in written:
            assert png.read_bytes() in shown, f"{png.name} is not shown in {executed.name}"
            checked += 1
    return checked


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
    assert assert_figures_shown_in_executed_notebooks(results) >= 8


def test_default_parameters_work_from_jupyterlab(project_root):
    """JupyterLab starts the kernel in notebooks/: the defaults must reach the demo repository and results/ there."""
    import jupytext

    for path in discover_notebooks(project_root / "notebooks"):
        cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
        values: dict = {}
        exec(cell.source, {}, values)  # the parameters cell holds plain assignments only
        assert (path.parent / values["repository"]).resolve() == project_root / "demo_repository", path.name
        assert (path.parent / values["output_dir"]).resolve() == project_root / "results", path.name
