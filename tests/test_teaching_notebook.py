"""Notebook 06 (teaching cases) runs end to end on the small demo repository: proposals, a casebook, provenance."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from kicc_analysis.provenance import read_provenance
from kicc_analysis.study import run_study


@pytest.mark.slow
def test_notebook_06_runs_on_the_demo(demo_repository, tmp_path):
    results = tmp_path / "results"
    run = run_study(demo_repository, results, notebooks=["06"], show_progress=False)
    assert run.failed == [], [nb.error for nb in run.failed]
    proposals = pd.read_csv(results / "tables" / "teaching_case_proposals.csv")
    assert len(proposals) >= 3 and proposals["reason"].str.len().gt(0).all()
    assert read_provenance(results / "tables" / "teaching_case_proposals.csv")["notebook"] == "06_teaching_cases"
    index = (results / "teaching" / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="(case_\d+/case.html)"', index)
    assert len(links) == 3 and all((results / "teaching" / link).is_file() for link in links)
    pages = [(results / "teaching" / link).read_text(encoding="utf-8") for link in links]
    assert ['id="comparison"' in page for page in pages] == [True, False, False]  # comparison_cases = 1
    assert (results / "figures" / "teaching_case_key_image.png").exists()
    executed = (results / "notebooks" / "06_teaching_cases.ipynb").read_text(encoding="utf-8")
    assert "iframe sandbox" in executed  # the first case is shown inline
    assert "1.2.826.0.1.3680043" not in executed  # no DICOM UID (identifying values) in any output
