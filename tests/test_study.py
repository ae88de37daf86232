"""Study runner: jupytext notebooks executed with parameters; outputs stamped; index lists them."""

from __future__ import annotations

import json

import pytest

from kicc_analysis import __version__
from kicc_analysis.errors import StudyError
from kicc_analysis.provenance import OutputWriter, read_provenance
from kicc_analysis.study import discover_notebooks, run_study

NOTEBOOK = """# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---
# %% tags=["parameters"]
repository = "x"
output_dir = "y"
# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from kicc_analysis.provenance import OutputWriter
out = OutputWriter(output_dir, notebook="01_probe", version="2.1.0", cohort_version="abc123", parameters={"repository": repository})
out.table(pd.DataFrame({"repository": [repository]}), "probe_table", title="Probe")
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
out.figure(fig, "probe_figure")
"""

FAILING = NOTEBOOK.split("# %%\nimport matplotlib")[0] + '# %%\nraise RuntimeError("deliberate failure")\n'


@pytest.fixture()
def notebook_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_probe.py").write_text(NOTEBOOK)
    (folder / "02_fail.py").write_text(FAILING)
    (folder / "helper.py").write_text("# not a study notebook\n")
    return folder


def test_discovers_numbered_notebooks_in_order(notebook_dir):
    assert [p.name for p in discover_notebooks(notebook_dir)] == ["01_probe.py", "02_fail.py"]
    assert [p.name for p in discover_notebooks(notebook_dir, ["02"])] == ["02_fail.py"]
    with pytest.raises(StudyError, match="no notebooks"):
        discover_notebooks(notebook_dir, ["09"])


@pytest.mark.slow
def test_runs_notebooks_with_parameters_and_indexes_outputs(notebook_dir, tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()
    results = tmp_path / "results"
    run = run_study(repository, results, notebook_dir=notebook_dir, show_progress=False)
    assert [nb.name for nb in run.notebooks] == ["01_probe", "02_fail"]
    assert run.notebooks[0].error is None
    assert "deliberate failure" in run.notebooks[1].error and run.failed == [run.notebooks[1]]
    table = results / "tables" / "probe_table.csv"
    assert str(repository) in table.read_text()  # the parameter reached the notebook
    stamp = read_provenance(table)
    assert stamp["notebook"] == "01_probe" and stamp["notebook_version"] == "2.1.0"
    assert stamp["package_version"] == __version__ and stamp["cohort_version"] == "abc123"
    assert stamp["parameters"] == {"repository": str(repository)}
    png = results / "figures" / "probe_figure.png"
    assert b"abc123" in png.read_bytes() and "abc123" in png.with_suffix(".svg").read_text()
    index = run.index_html.read_text()
    for name in (
        "tables/probe_table.csv",
        "figures/probe_figure.png",
        "figures/probe_figure.svg",
        "02_fail",
        "deliberate failure",
    ):
        assert name in index
    assert (results / "notebooks" / "01_probe.ipynb").exists()


def test_missing_repository_is_refused(tmp_path, notebook_dir):
    with pytest.raises(StudyError, match="repository folder not found"):
        run_study(tmp_path / "absent", tmp_path / "results", notebook_dir=notebook_dir)


def test_output_writer_stamps_sidecar(tmp_path):
    import pandas as pd

    out = OutputWriter(tmp_path, notebook="nb", version="1", cohort_version="v", parameters={"p": tmp_path})
    path = out.table(pd.DataFrame({"a": [1]}), "t", description="d")
    record = json.loads(path.with_name("t.csv.json").read_text())
    assert record["parameters"] == {"p": str(tmp_path)} and record["description"] == "d" and record["kind"] == "table"
