"""Study runner: jupytext notebooks executed with parameters; outputs stamped, shown inline; front page lists them."""

from __future__ import annotations

import base64
import json
import re

import nbformat
import pytest

from kicc_analysis import __version__
from kicc_analysis.errors import StudyError
from kicc_analysis.provenance import OutputWriter, read_provenance, readable_column
from kicc_analysis.study import discover_notebooks, run_study

HEADER = """# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # Probe
#
# Writes one table and two figures so that the runner can be checked. Second sentence.

# %% tags=["parameters"]
repository = "x"
output_dir = "y"
"""

NOTEBOOK = (
    HEADER
    + """
# %%
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from kicc_analysis.provenance import OutputWriter
out = OutputWriter(output_dir, notebook="01_probe", version="2.1.0", cohort_version="abc123", parameters={"repository": repository})
out.table(pd.DataFrame({"repository": [repository], "volume_ml": [1.25], "backend": [matplotlib.get_backend()]}),
          "probe_table", title="Probe")

# %%
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
out.figure(fig, "probe_figure", title="Probe figure")

# %%
standalone = Figure(figsize=(3, 2))
standalone.add_subplot().bar([0, 1], [2, 3])
out.figure(standalone, "probe_standalone", title="Figure made without pyplot")
"""
)

SECOND_OK = (
    HEADER
    + """
# %%
import pandas as pd
from kicc_analysis.provenance import OutputWriter
out = OutputWriter(output_dir, notebook="02_fail", version="1.0.0", cohort_version="abc123")
out.table(pd.DataFrame({"a": [1]}), "old_table", title="Written by the run that worked")
"""
)

FAILING = (
    HEADER
    + """
# %%
from pathlib import Path
import pandas as pd
from kicc_analysis.provenance import OutputWriter
out = OutputWriter(output_dir, notebook="02_fail", version="1.0.1", cohort_version="abc123")
out.table(pd.DataFrame({"a": [2]}), "partial_table", title="Written before the failure")

# %%
clinical = Path(repository) / "clinical" / "missing.csv"
text = clinical.read_text()
"""
)


@pytest.fixture()
def notebook_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_probe.py").write_text(NOTEBOOK)
    (folder / "02_fail.py").write_text(FAILING)
    (folder / "helper.py").write_text("# not a study notebook\n")
    return folder


@pytest.fixture()
def repository(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    return folder


def test_discovers_numbered_notebooks_in_order(notebook_dir):
    assert [p.name for p in discover_notebooks(notebook_dir)] == ["01_probe.py", "02_fail.py"]
    assert [p.name for p in discover_notebooks(notebook_dir, ["02"])] == ["02_fail.py"]
    with pytest.raises(StudyError, match="no notebooks"):
        discover_notebooks(notebook_dir, ["09"])


@pytest.mark.slow
def test_runs_notebooks_with_parameters_shows_outputs_inline_and_indexes_them(notebook_dir, repository, tmp_path):
    results = tmp_path / "results"
    run = run_study(repository, results, notebook_dir=notebook_dir, show_progress=False)
    assert [nb.name for nb in run.notebooks] == ["01_probe", "02_fail"]
    assert run.notebooks[0].error is None
    table = results / "tables" / "probe_table.csv"
    assert str(repository) in table.read_text()  # the parameter reached the notebook
    stamp = read_provenance(table)
    assert stamp["notebook"] == "01_probe" and stamp["notebook_version"] == "2.1.0"
    assert stamp["package_version"] == __version__ and stamp["cohort_version"] == "abc123"
    assert stamp["parameters"] == {"repository": str(repository)}
    png = results / "figures" / "probe_figure.png"
    assert b"abc123" in png.read_bytes() and "abc123" in png.with_suffix(".svg").read_text()
    # the kernel used Jupyter's inline backend although this process has MPLBACKEND=Agg (tests/conftest.py)
    assert "inline" in table.read_text()

    executed = nbformat.read(results / "notebooks" / "01_probe.ipynb", as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    images = {}
    for cell in code:
        for output in cell.outputs:
            if "image/png" in output.get("data", {}):
                images[output.metadata["kicc_output"][0]] = (cell.source, base64.b64decode(output.data["image/png"]))
    # every figure written appears as an image output: the very bytes saved, beside the code that wrote it
    assert set(images) == {"figures/probe_figure.png", "figures/probe_standalone.png"}
    for name, (source, data) in images.items():
        assert data == (results / name).read_bytes()
        assert f'"{name.split("/")[1][:-4]}"' in source
    table_cell = next(cell for cell in code if "probe_table" in cell.source)
    html_outputs = [o.data["text/html"] for o in table_cell.outputs if "text/html" in o.get("data", {})]
    assert any("volume (mL)" in text for text in html_outputs)  # readable column with unit
    assert any("tables/probe_table.csv" in text and "01_probe 2.1.0" in text for text in html_outputs)  # provenance
    assert (results / "notebooks" / "01_probe.html").read_text().count("data:image/png;base64") >= 2


@pytest.mark.slow
def test_failed_run_lists_only_its_own_outputs_and_says_where_it_failed(notebook_dir, repository, tmp_path):
    results = tmp_path / "results"
    (notebook_dir / "02_fail.py").write_text(SECOND_OK)
    first = run_study(repository, results, notebook_dir=notebook_dir, show_progress=False)
    assert first.failed == [] and (results / "tables" / "old_table.csv").exists()

    (notebook_dir / "02_fail.py").write_text(FAILING)
    run = run_study(repository, results, notebook_dir=notebook_dir, show_progress=False)
    failed = run.notebooks[1]
    assert run.failed == [failed]
    # the earlier run's output of the failing notebook is gone; what it wrote before failing is kept and listed
    assert not (results / "tables" / "old_table.csv").exists()
    assert (results / "tables" / "partial_table.csv").exists()
    assert [r["path"] for r in failed.outputs] == ["tables/partial_table.csv"]
    assert failed.failure.cell == 3 and failed.failure.ename == "FileNotFoundError"
    source_lines = FAILING.splitlines()
    assert source_lines[failed.failure.line - 1] == "text = clinical.read_text()"
    assert failed.failure.input_files == ["repo/clinical/missing.csv"]
    assert "notebooks/02_fail.py cell 3" in failed.error and "repo/clinical/missing.csv" in failed.error

    index = run.index_html.read_text()
    banner = index[index.index("id='failures'") : index.index("id='cohort'")]
    for expected in (
        "notebooks/02_fail.py",
        "<dt>Cell</dt><dd>3, line",
        "FileNotFoundError",
        "repo/clinical/missing.csv",
    ):
        assert expected in banner, expected
    assert "old_table" not in index and "partial_table" in index
    assert str(tmp_path) not in index and "/tmp/" not in index  # never an absolute path
    hrefs = re.findall(r"(?:href|src)='([^'#]+)'", index)
    assert hrefs and all(not h.startswith(("/", "http", "file:")) and (results / h).exists() for h in hrefs)


@pytest.mark.slow
def test_outputs_of_notebooks_not_rerun_are_not_listed(notebook_dir, repository, tmp_path):
    results = tmp_path / "results"
    run_study(repository, results, notebook_dir=notebook_dir, show_progress=False)
    run = run_study(repository, results, notebooks=["02"], notebook_dir=notebook_dir, show_progress=False)
    index = run.index_html.read_text()
    assert "probe_figure" not in index and "probe_table" not in index
    assert (results / "tables" / "probe_table.csv").exists()  # left on disk, only not claimed
    assert re.search(r"Not from this run.*01_probe \(5\)", index)  # 1 csv + 2 × (png, svg), named


def test_front_page_sections_per_notebook(notebook_dir, repository, tmp_path):
    """The page from a hand-made run record: purpose, version, parameters once, formats side by side."""
    from kicc_analysis.study import NotebookRun, StudyRun, write_index

    results = tmp_path / "results"
    out = OutputWriter(
        results,
        notebook="01_probe",
        version="2.1.0",
        cohort_version="abc123",
        parameters={"repository": repository},
        show=False,
    )
    import matplotlib.pyplot as plt
    import pandas as pd

    out.table(
        pd.DataFrame({"step": ["Rows", "Included"], "n": [10, 8], "excluded": [0, 2], "reason": ["", "no CT"]}),
        "cohort_flow",
        title="Cohort flow",
    )
    fig, ax = plt.subplots()
    paths = out.figure(fig, "probe_figure", title="Probe figure")
    plt.close(fig)
    records = [
        read_provenance(p) | {"path": str(p.relative_to(results))} for p in [results / "tables/cohort_flow.csv", *paths]
    ]
    nb = NotebookRun(
        "01_probe",
        3.2,
        results / "notebooks" / "01_probe.ipynb",
        None,
        source=notebook_dir / "01_probe.py",
        outputs=records,
    )
    index = write_index(results, StudyRun(results, notebooks=[nb], repository=repository)).read_text()
    assert "Writes one table and two figures so that the runner can be checked." in index  # purpose in a line
    assert "Second sentence" not in index and "Unnamed" not in index
    assert "version 2.1.0" in index and "3.2 s" in index
    assert "<b>8</b> patients analysed (of 10" in index and "2 excluded: no CT" in index
    assert index.count("<article") == 2  # one entry per figure (PNG+SVG) and per table
    assert "<a href='figures/probe_figure.png'>PNG</a> <a href='figures/probe_figure.svg'>SVG</a>" in index
    assert index.count("<summary>Provenance</summary>") == 2 and index.count("<summary>Parameters</summary>") == 1
    assert str(repository) not in index and "<code>repo</code>" in index
    assert "http" not in index.replace("http-equiv", "")  # nothing external


def test_readable_column_names_carry_units():
    assert readable_column("opacity_pct") == "opacity (%)"
    assert readable_column("lung_volume_ml") == "lung volume (mL)"
    assert readable_column("labs_crp_mgl") == "C-reactive protein (mg/L)"  # dictionary label and unit
    assert readable_column("estimate") == "estimate"


def test_missing_repository_is_refused(tmp_path, notebook_dir):
    with pytest.raises(StudyError, match="repository folder not found"):
        run_study(tmp_path / "absent", tmp_path / "results", notebook_dir=notebook_dir)


def test_output_writer_stamps_sidecar(tmp_path):
    import pandas as pd

    out = OutputWriter(tmp_path, notebook="nb", version="1", cohort_version="v", parameters={"p": tmp_path})
    assert out.show is False  # not in a Jupyter kernel: nothing displayed
    path = out.table(pd.DataFrame({"a": [1]}), "t", description="d")
    record = json.loads(path.with_name("t.csv.json").read_text())
    assert record["parameters"] == {"p": str(tmp_path)} and record["description"] == "d" and record["kind"] == "table"


def test_writer_shows_tables_with_units_even_when_attrs_hold_frames(tmp_path, monkeypatch):
    import pandas as pd

    shown = []
    monkeypatch.setattr(OutputWriter, "_display", lambda self, data, metadata: shown.append((data, metadata)))
    out = OutputWriter(tmp_path, notebook="nb", version="1", show=True)
    table = pd.DataFrame({"volume_ml": range(40), "opacity_pct": 12.345678})
    table.attrs["detail"] = pd.DataFrame({"x": [1]})  # made pandas' HTML formatter raise before
    out.table(table, "volumes", title="Volumes")
    (frame, frame_md), (caption, caption_md) = shown
    assert "volume (mL)" in frame["text/html"] and "opacity (%)" in frame["text/html"]
    assert "12.35" in frame["text/html"] and "first 25 shown" in frame["text/html"]
    assert frame_md == {"kicc_table": "tables/volumes.csv"}
    assert "tables/volumes.csv — nb 1" in caption["text/plain"] and caption_md["kicc_output"] == ["tables/volumes.csv"]


def test_front_page_links_the_teaching_casebook_when_it_exists(tmp_path):
    from kicc_analysis.study import NotebookRun, StudyRun, write_index

    results = tmp_path / "results"
    results.mkdir()
    nb = NotebookRun("06_teaching_cases", 1.0, results / "notebooks" / "06_teaching_cases.ipynb", None)
    assert "teaching/index.html" not in write_index(results, StudyRun(results, notebooks=[nb])).read_text()
    (results / "teaching").mkdir()
    (results / "teaching" / "index.html").write_text("<!DOCTYPE html><title>casebook</title>", encoding="utf-8")
    index = write_index(results, StudyRun(results, notebooks=[nb])).read_text()
    assert "<a href='teaching/index.html'>Casebook</a>" in index and "written by 06_teaching_cases in this run" in index
    other = NotebookRun("01_cohort", 1.0, results / "notebooks" / "01_cohort.ipynb", None)
    assert "from an earlier run of 06_teaching_cases" in write_index(results, [other]).read_text()
