"""Run the versioned study notebooks and write ``results/`` with an index page.

Notebooks are stored as jupytext percent-format ``.py`` files in ``notebooks/``
(diffable); each run converts them to ``.ipynb``, executes them with papermill
with the parameters ``repository`` and ``output_dir``, keeps the executed
notebook (and an HTML copy) in ``results/notebooks/``, and lists every table
and figure with its provenance in ``results/index.html``.

Example
-------
>>> from kicc_analysis.study import run_study
>>> run = run_study("demo_repository", "results")          # doctest: +SKIP
>>> run.index_html                                           # doctest: +SKIP
PosixPath('results/index.html')
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from kicc_analysis import __version__
from kicc_analysis.errors import StudyError
from kicc_analysis.progress import progress_bar
from kicc_analysis.provenance import PROVENANCE_SUFFIX

DEFAULT_NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


@dataclass
class NotebookRun:
    """Outcome of one notebook."""

    name: str
    seconds: float
    executed_path: Path
    html_path: Path | None
    error: str | None = None


@dataclass
class StudyRun:
    """Outcome of a whole study run."""

    output_dir: Path
    notebooks: list[NotebookRun] = field(default_factory=list)

    @property
    def index_html(self) -> Path:
        return self.output_dir / "index.html"

    @property
    def failed(self) -> list[NotebookRun]:
        return [run for run in self.notebooks if run.error]


def discover_notebooks(notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """Return the study notebooks (``NN_name.py``) in run order, optionally only those whose name starts with ``only``."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise StudyError(f"notebook folder not found: {notebook_dir}")
    notebooks = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.py"))
    if only:
        notebooks = [p for p in notebooks if any(p.stem.startswith(prefix) for prefix in only)]
    if not notebooks:
        raise StudyError(f"no notebooks matching {only or 'NN_*.py'} in {notebook_dir}")
    return notebooks


def _execute(source: Path, output_dir: Path, parameters: dict, kernel_name: str) -> NotebookRun:
    import jupytext
    import nbformat
    import papermill

    notebook_out = output_dir / "notebooks"
    notebook_out.mkdir(parents=True, exist_ok=True)
    unexecuted = notebook_out / f"{source.stem}.input.ipynb"
    executed = notebook_out / f"{source.stem}.ipynb"
    nbformat.write(jupytext.read(source), unexecuted)
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(unexecuted),
            str(executed),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(output_dir),
            progress_bar=False,
            log_output=False,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell traceback
        if hasattr(exc, "ename"):  # papermill.PapermillExecutionError: say which cell failed and why
            error = f"cell {getattr(exc, 'exec_count', '?')}: {exc.ename}: {exc.evalue}"
        else:
            error = f"{type(exc).__name__}: {exc}"
    finally:
        unexecuted.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    html_path = None
    if executed.exists():
        try:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_filename(str(executed))
            html_path = executed.with_suffix(".html")
            html_path.write_text(body, encoding="utf-8")
        except Exception:  # HTML export is a convenience; the executed notebook is the record
            html_path = None
    return NotebookRun(source.stem, seconds, executed, html_path, error)


def collect_outputs(output_dir: str | Path) -> list[dict]:
    """Read every provenance sidecar under ``output_dir`` (one record per table/figure file)."""
    records = []
    for sidecar in sorted(Path(output_dir).rglob(f"*{PROVENANCE_SUFFIX}")):
        if sidecar.parent.name == "notebooks":
            continue
        try:
            record = json.loads(sidecar.read_text())
        except json.JSONDecodeError:
            continue
        if "notebook" in record and "file" in record:
            record["path"] = str(sidecar.with_name(record["file"]).relative_to(output_dir))
            records.append(record)
    return records


def write_index(output_dir: str | Path, runs: list[NotebookRun]) -> Path:
    """Write ``index.html`` listing each notebook and each output with its provenance."""
    output_dir = Path(output_dir)
    records = collect_outputs(output_dir)
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>KICC-19 study results</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}"
        "th{background:#f0f0f0}.err{color:#b00}img{max-width:220px}</style></head><body>",
        "<h1>KICC-19 study results</h1>",
        f"<p>kicc-analysis {esc(__version__)} · generated {esc(_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds'))}</p>",
        "<h2>Notebooks</h2><table><tr><th>Notebook</th><th>Status</th><th>Seconds</th><th>Executed</th></tr>",
    ]
    for run in runs:
        status = f"<span class='err'>failed: {esc(run.error[:300])}</span>" if run.error else "ok"
        links = f"<a href='{esc(str(run.executed_path.relative_to(output_dir)))}'>ipynb</a>"
        if run.html_path:
            links += f" · <a href='{esc(str(run.html_path.relative_to(output_dir)))}'>html</a>"
        parts.append(f"<tr><td>{esc(run.name)}</td><td>{status}</td><td>{run.seconds:.1f}</td><td>{links}</td></tr>")
    parts.append("</table><h2>Tables and figures</h2>")
    parts.append(
        "<table><tr><th>Output</th><th>Title</th><th>Notebook (version)</th><th>Package</th><th>Cohort version</th>"
        "<th>Parameters</th><th>Created</th></tr>"
    )
    for record in records:
        path = record["path"]
        preview = f"<br><img src='{esc(path)}' alt=''>" if path.endswith(".png") else ""
        parameters = esc(json.dumps(record.get("parameters", {})))
        parts.append(
            f"<tr><td><a href='{esc(path)}'>{esc(path)}</a>{preview}</td><td>{esc(record.get('title', ''))}</td>"
            f"<td>{esc(record['notebook'])} ({esc(str(record.get('notebook_version', '')))})</td>"
            f"<td>{esc(str(record.get('package_version', '')))}</td><td><code>{esc(str(record.get('cohort_version', ''))[:16])}</code></td>"
            f"<td><code>{parameters}</code></td><td>{esc(str(record.get('created', '')))}</td></tr>"
        )
    parts.append("</table></body></html>")
    index = output_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def run_study(
    repository: str | Path,
    output_dir: str | Path = "results",
    *,
    notebooks: list[str] | None = None,
    notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR,
    kernel_name: str = "python3",
    stop_on_error: bool = False,
    show_progress: bool | None = None,
) -> StudyRun:
    """Execute the study notebooks in order on ``repository`` and write ``output_dir``.

    Parameters
    ----------
    repository : path
        The repository (demo or real) every notebook receives as its ``repository`` parameter.
    output_dir : path
        Results folder (``tables/``, ``figures/``, ``notebooks/``, ``index.html``).
    notebooks : list of str, optional
        Name prefixes to run (e.g. ``["01", "03"]``); default all.
    stop_on_error : bool
        Stop at the first failing notebook (default: run the rest, report all failures).

    Raises
    ------
    StudyError
        When the repository folder does not exist; notebook failures are collected in the
        returned :class:`StudyRun` (``.failed``) and listed in ``index.html``.
    """
    repository = Path(repository).resolve()
    if not repository.is_dir():
        raise StudyError(f"repository folder not found: {repository}")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"repository": str(repository), "output_dir": str(output_dir)}
    run = StudyRun(output_dir)
    for source in progress_bar(
        discover_notebooks(notebook_dir, notebooks), show=show_progress, desc="notebooks", unit="nb"
    ):
        result = _execute(source, output_dir, parameters, kernel_name)
        run.notebooks.append(result)
        write_index(output_dir, run.notebooks)
        if result.error and stop_on_error:
            break
    write_index(output_dir, run.notebooks)
    return run
