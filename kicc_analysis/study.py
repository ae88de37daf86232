"""Run the versioned study notebooks and write ``results/`` with its front page.

Notebooks are stored as jupytext percent-format ``.py`` files in ``notebooks/``
(diffable); each run converts them to ``.ipynb``, executes them with papermill
with the parameters ``repository`` and ``output_dir``, keeps the executed
notebook (and an HTML copy) in ``results/notebooks/``, and writes
``results/index.html``: the study's front page (cohort summary, one section per
notebook, one entry per figure or table with its provenance on demand).

The kernel runs with Jupyter's own inline matplotlib backend: ``MPLBACKEND`` is
removed from the kernel's environment (it would switch inline display off), so
the executed notebooks show every figure beside the code that made it.
Progress bars are silenced in the kernel (``KICC_NO_PROGRESS=1``); the runner
shows one bar over the notebooks.

What ``index.html`` lists is exactly what this run produced: before a notebook
runs, the outputs an earlier run of it left (tables, figures, executed notebook)
are removed, and outputs of notebooks that were not run are left on disk but not
listed (the page counts them as "not from this run"). A failure names the
notebook, the cell (and its line in the ``.py`` file) and any input file named in
the error.

Example
-------
>>> from kicc_analysis.study import run_study
>>> run = run_study("demo_repository", "results")          # doctest: +SKIP
>>> run.index_html                                           # doctest: +SKIP
PosixPath('results/index.html')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kicc_analysis import __version__
from kicc_analysis.errors import StudyError
from kicc_analysis.progress import progress_bar
from kicc_analysis.provenance import PROVENANCE_SUFFIX, readable_column

DEFAULT_NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

#: Environment variables never passed to a notebook kernel (MPLBACKEND would switch the inline backend off).
KERNEL_ENV_REMOVED = ("MPLBACKEND",)
#: Environment variables set for every notebook kernel.
KERNEL_ENV_SET = {"KICC_NO_PROGRESS": "1"}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class NotebookFailure:
    """Where and why a notebook failed.

    Attributes
    ----------
    cell : int or None
        1-based number of the failing code cell in the notebook source (parameters cell included).
    line : int or None
        Line of the ``.py`` source where the failing statement is (or where the cell starts).
    statement : str
        First line of the failing cell's code.
    input_files : list of str
        Files named in the error message, shown relative to the repository or by name.
    """

    ename: str
    evalue: str
    cell: int | None = None
    line: int | None = None
    statement: str = ""
    traceback: str = ""
    input_files: list[str] = field(default_factory=list)

    def summary(self, source_name: str) -> str:
        where = f"{source_name}"
        if self.cell is not None:
            where += f" cell {self.cell}"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.ename}: {self.evalue}"
        if self.input_files:
            text += f" [input file: {', '.join(self.input_files)}]"
        return text


@dataclass
class NotebookRun:
    """Outcome of one notebook."""

    name: str
    seconds: float
    executed_path: Path
    html_path: Path | None
    error: str | None = None
    source: Path | None = None
    failure: NotebookFailure | None = None
    outputs: list[dict] = field(default_factory=list)
    removed_previous: int = 0


@dataclass
class StudyRun:
    """Outcome of a whole study run."""

    output_dir: Path
    notebooks: list[NotebookRun] = field(default_factory=list)
    repository: Path | None = None
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    @property
    def index_html(self) -> Path:
        return self.output_dir / "index.html"

    @property
    def failed(self) -> list[NotebookRun]:
        return [run for run in self.notebooks if run.error]

    @property
    def outputs(self) -> list[dict]:
        """Provenance records of every table and figure file this run wrote."""
        return [record for nb in self.notebooks for record in nb.outputs]


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


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Environment for notebook kernels started inside the block (see ``KERNEL_ENV_*``); restored after."""
    saved = {name: os.environ.get(name) for name in (*KERNEL_ENV_REMOVED, *KERNEL_ENV_SET)}
    try:
        for name in KERNEL_ENV_REMOVED:
            os.environ.pop(name, None)
        os.environ.update(KERNEL_ENV_SET)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sidecars(output_dir: Path) -> dict[Path, int]:
    """Every provenance sidecar of a table or figure under ``output_dir`` with its mtime (ns)."""
    found = {}
    for sidecar in output_dir.rglob(f"*{PROVENANCE_SUFFIX}"):
        if sidecar.parent.name == "notebooks" or sidecar.name == "run.json":
            continue
        with contextlib.suppress(OSError):
            found[sidecar] = sidecar.stat().st_mtime_ns
    return found


def _read_record(sidecar: Path, output_dir: Path) -> dict | None:
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or "notebook" not in record or "file" not in record:
        return None
    record["path"] = str(sidecar.with_name(record["file"]).relative_to(output_dir))
    return record


def collect_outputs(output_dir: str | Path) -> list[dict]:
    """Read every provenance sidecar under ``output_dir`` (one record per table/figure file), this run's or not."""
    output_dir = Path(output_dir)
    records = [_read_record(sidecar, output_dir) for sidecar in sorted(_sidecars(output_dir))]
    return [record for record in records if record]


def remove_previous_outputs(output_dir: Path, notebook: str) -> int:
    """Delete the tables, figures and executed copies an earlier run of ``notebook`` left; return how many files."""
    removed = 0
    for sidecar in _sidecars(output_dir):
        record = _read_record(sidecar, output_dir)
        if record is None or record["notebook"] != notebook:
            continue
        for path in (sidecar.with_name(record["file"]), sidecar):
            if path.exists():
                path.unlink()
                removed += 1
    for suffix in (".ipynb", ".html", ".input.ipynb"):
        path = output_dir / "notebooks" / f"{notebook}{suffix}"
        if path.exists():
            path.unlink()
    return removed


def _source_cells(source: Path) -> list[tuple[int, str]]:
    """(first line number, code) of every code cell of a percent-format ``.py`` notebook."""
    cells, current, start, kind = [], [], None, None
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# %%"):
            if kind == "code":
                cells.append((start, "\n".join(current)))
            kind = "markdown" if "[markdown]" in line else "code"
            current, start = [], number + 1
        elif kind is not None:
            if not current and not line.strip():
                start = number + 1  # jupytext drops blank lines between the marker and the code
                continue
            current.append(line)
    if kind == "code":
        cells.append((start, "\n".join(current)))
    return cells


def _paths_in(text: str) -> list[str]:
    return re.findall(r"(?:[A-Za-z]:)?(?:/|\.{0,2}/|\b[\w.\-]+/)[^\s'\"`,;:()\[\]<>]+", text)


def _locate_failure(exc: Exception, source: Path, repository: Path) -> NotebookFailure:
    """Map a papermill error to the failing cell of the ``.py`` source and the input file named in it."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc))
    traceback = _ANSI.sub("", "\n".join(getattr(exc, "traceback", []) or []))
    failure = NotebookFailure(ename=ename, evalue=evalue, traceback=traceback)
    cell_source = (getattr(exc, "source", "") or "").strip()
    if cell_source:
        for number, (start, code) in enumerate(_source_cells(source), start=1):
            if code.strip() == cell_source:
                failure.cell = number
                failure.line = start
                failure.statement = next((ln for ln in code.splitlines() if ln.strip()), "")
                offset = re.findall(r"Cell In\[\d+\], line (\d+)", traceback)
                if offset:
                    line_in_cell = int(offset[0])
                    failure.line = start + line_in_cell - 1
                    lines = code.splitlines()
                    if 0 < line_in_cell <= len(lines):
                        failure.statement = lines[line_in_cell - 1].strip()
                break
    files = []
    for token in _paths_in(evalue):
        path = Path(token.rstrip("."))
        if path.suffix or path.exists():
            files.append(_shown_path(path, repository))
    failure.input_files = list(dict.fromkeys(files))
    return failure


def _shown_path(path: Path, repository: Path) -> str:
    """A path as the front page shows it: relative to the repository (``name/…``) or by file name."""
    with contextlib.suppress(ValueError):
        return f"{repository.name}/{path.resolve().relative_to(repository)}" if path.is_absolute() else str(path)
    return path.name if path.is_absolute() else str(path)


def _execute(source: Path, output_dir: Path, parameters: dict, kernel_name: str, repository: Path) -> NotebookRun:
    import jupytext
    import nbformat
    import papermill

    notebook_out = output_dir / "notebooks"
    notebook_out.mkdir(parents=True, exist_ok=True)
    unexecuted = notebook_out / f"{source.stem}.input.ipynb"
    executed = notebook_out / f"{source.stem}.ipynb"
    nbformat.write(jupytext.read(source), unexecuted)
    start = time.perf_counter()
    error = failure = None
    try:
        with kernel_environment():
            papermill.execute_notebook(
                str(unexecuted),
                str(executed),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(output_dir),
                progress_bar=False,
                log_output=False,
            )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell and its traceback
        failure = _locate_failure(exc, source, repository)
        error = failure.summary(f"notebooks/{source.name}")
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
    return NotebookRun(source.stem, seconds, executed, html_path, error, source=source, failure=failure)


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
        returned :class:`StudyRun` (``.failed``) and shown at the top of ``index.html``.
    """
    repository = Path(repository).resolve()
    if not repository.is_dir():
        raise StudyError(f"repository folder not found: {repository}")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    sources = discover_notebooks(notebook_dir, notebooks)
    parameters = {"repository": str(repository), "output_dir": str(output_dir)}
    run = StudyRun(output_dir, repository=repository)
    for source in progress_bar(sources, show=show_progress, desc="notebooks", unit="nb"):
        removed = remove_previous_outputs(output_dir, source.stem)
        before = _sidecars(output_dir)
        result = _execute(source, output_dir, parameters, kernel_name, repository)
        result.removed_previous = removed
        after = _sidecars(output_dir)
        changed = sorted(path for path, mtime in after.items() if before.get(path) != mtime)
        result.outputs = [record for record in (_read_record(p, output_dir) for p in changed) if record]
        run.notebooks.append(result)
        write_index(output_dir, run)
        if result.error and stop_on_error:
            break
    write_index(output_dir, run)
    return run


# ---------------------------------------------------------------------------------------------
# Front page
# ---------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans KR","NanumGothic",sans-serif;margin:0;
 color:#1b1f24;background:#f6f7f9;line-height:1.45;font-size:15px}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.5em;margin:0.2em 0}h2{font-size:1.2em;margin:0}h3{font-size:1em;margin:0 0 4px}
a{color:#0b5cad}code{font-size:0.9em;overflow-wrap:anywhere}
.meta{color:#57606a;font-size:0.9em}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px;margin:12px 0}
.status{display:inline-block;border-radius:10px;padding:1px 9px;font-size:0.8em;font-weight:600;margin-left:6px}
.ok{background:#dafbe1;color:#116329}.failed{background:#ffebe9;color:#a40e26}
.alert{background:#ffebe9;border:2px solid #cf222e;border-radius:8px;padding:12px;margin:12px 0}
.alert h2{color:#a40e26}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px;margin-top:10px}
.entry{border:1px solid #d8dee4;border-radius:6px;padding:8px;background:#fff;min-width:0}
.entry img{width:100%;height:150px;object-fit:contain;background:#fff;display:block}
.formats a{margin-right:10px;font-weight:600}
.preview{overflow-x:auto;max-width:100%;font-size:0.75em;margin:4px 0}
.preview table,.flow table{border-collapse:collapse}
.preview td,.preview th,.flow td,.flow th{border-bottom:1px solid #eaeef2;padding:2px 6px;text-align:left;white-space:nowrap}
.flow{overflow-x:auto}.flow td{white-space:normal}
details{font-size:0.85em;margin-top:4px}summary{cursor:pointer;color:#57606a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:6px 0}dt{color:#57606a}dd{margin:0;min-width:0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:0.8em;background:#fff;padding:8px;border-radius:6px;max-height:24em;overflow:auto}
.stale{color:#57606a;font-size:0.9em}
"""


class _Page:
    """Turns paths and texts into what the page may show (never an absolute path)."""

    def __init__(self, output_dir: Path, repository: Path | None) -> None:
        self.output_dir = output_dir
        self.repository = repository
        cwd = Path.cwd().resolve()
        if repository is None:
            self.repository_label = ""
        else:
            try:
                self.repository_label = str(repository.relative_to(cwd)) or "."
            except ValueError:
                self.repository_label = repository.name
        self.replacements = []
        if repository is not None:
            self.replacements.append((str(repository), self.repository_label))
        self.replacements += [(str(output_dir), output_dir.name), (str(cwd), "."), (str(Path.home()), "~")]
        self.replacements.sort(key=lambda pair: len(pair[0]), reverse=True)

    def clean(self, text: str) -> str:
        for old, new in self.replacements:
            if old and old != "/":
                text = text.replace(old, new)
        # any other absolute path: keep only its last component
        return re.sub(r"(?<![\w.~])/(?:[^\s/'\"<>:]+/)+([^\s/'\"<>:]*)", r"…/\1", text)

    def value(self, value) -> str:
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        return self.clean(str(value))


def _purpose(source: Path | None) -> str:
    """First sentence of the notebook's introduction (the text under its title)."""
    if source is None or not source.exists():
        return ""
    text, in_markdown = [], False
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            if in_markdown and text:
                break
            in_markdown = "[markdown]" in line
            continue
        if in_markdown:
            content = line.lstrip("#").strip()
            if content and not line.startswith("# #"):
                text.append(content)
            elif text and not content:
                break
    sentence = " ".join(text)
    match = re.match(r"(.+?[.?!])(\s|$)", sentence)
    sentence = (match.group(1) if match else sentence).strip()
    if len(sentence) > 200:
        sentence = sentence[:200].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return sentence


def _version(source: Path | None, outputs: list[dict]) -> str:
    for record in outputs:
        if record.get("notebook_version"):
            return str(record["notebook_version"])
    if source is not None and source.exists():
        match = re.search(r"NOTEBOOK_VERSION\s*=\s*['\"]([^'\"]+)['\"]", source.read_text(encoding="utf-8"))
        if match:
            return match.group(1)
    return "?"


def _table_preview(path: Path, esc, page: _Page) -> tuple[str, str]:
    """(HTML preview of the first rows, 'rows × columns') of a CSV; empty strings when unreadable."""
    try:
        import pandas as pd

        head = pd.read_csv(path, nrows=4)
        with path.open("rb") as handle:
            rows = max(sum(1 for _ in handle) - 1, 0)
    except Exception:
        return "", ""
    shown = head.iloc[:, :5].rename(columns=lambda c: "" if str(c).startswith("Unnamed: ") else readable_column(c))
    cells = "".join(f"<th>{esc(page.clean(str(c)))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_short(page.clean(v) if isinstance(v, str) else v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = " …" if head.shape[1] > 5 else ""
    return (
        f"<div class='preview'><table><tr>{cells}</tr>{body}</table>{more}</div>",
        f"{rows} rows × {head.shape[1]} columns",
    )


def _short(value) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _cohort_summary(run: StudyRun, page: _Page, esc) -> str:
    records = run.outputs
    versions = sorted(
        {str(r.get("cohort_version")) for r in records if r.get("cohort_version") not in (None, "unknown")}
    )
    parts = ["<section class='card' id='cohort'><h2>Cohort</h2>"]
    if run.repository is not None:
        parts.append(f"<p class='meta'>Repository: <code>{esc(page.repository_label)}</code></p>")
    if len(versions) == 1:
        parts.append(f"<p>Cohort version <code>{esc(versions[0][:16])}</code></p>")
    elif versions:
        parts.append(
            "<p class='failed'>Outputs of this run come from different cohort versions: "
            + ", ".join(f"<code>{esc(v[:16])}</code>" for v in versions)
            + "</p>"
        )
    flow = next((r for r in records if r.get("kind") == "table" and Path(r["path"]).stem == "cohort_flow"), None)
    if flow is not None:
        try:
            import pandas as pd

            table = pd.read_csv(run.output_dir / flow["path"])
        except Exception:
            table = None
        if table is not None and {"step", "n"} <= set(table.columns) and len(table):
            size = int(table["n"].iloc[-1])
            parts.append(
                f"<p><b>{size}</b> patients analysed (of {int(table['n'].iloc[0])} rows in the clinical table)</p>"
            )
            rows = []
            for row in table.itertuples(index=False):
                excluded = getattr(row, "excluded", 0)
                reason = getattr(row, "reason", "")
                note = f"{int(excluded)} excluded: {reason}" if excluded and excluded == excluded else ""
                rows.append(f"<tr><td>{esc(str(row.step))}</td><td>{int(row.n)}</td><td>{esc(note)}</td></tr>")
            parts.append(
                "<div class='flow'><table><tr><th>Step</th><th>n</th><th></th></tr>" + "".join(rows) + "</table></div>"
            )
    else:
        parts.append("<p class='meta'>The cohort flow was not produced in this run.</p>")
    parts.append("</section>")
    return "".join(parts)


def _failure_html(nb: NotebookRun, page: _Page, esc, *, with_traceback: bool) -> str:
    f = nb.failure
    source = f"notebooks/{nb.source.name}" if nb.source else nb.name
    if f is None:
        return f"<p><b>{esc(nb.name)}</b>: {esc(page.clean(nb.error or ''))}</p>"
    items = [f"<dt>Notebook</dt><dd><code>{esc(source)}</code></dd>"]
    if f.cell is not None:
        items.append(f"<dt>Cell</dt><dd>{f.cell}" + (f", line {f.line}" if f.line else "") + "</dd>")
    if f.statement:
        items.append(f"<dt>Code</dt><dd><code>{esc(page.clean(f.statement))}</code></dd>")
    items.append(f"<dt>Error</dt><dd><b>{esc(f.ename)}</b>: {esc(page.clean(f.evalue))}</dd>")
    items.append(
        "<dt>Input file</dt><dd>"
        + (", ".join(f"<code>{esc(page.clean(p))}</code>" for p in f.input_files) or "none named in the error")
        + "</dd>"
    )
    text = f"<dl>{''.join(items)}</dl>"
    if with_traceback and f.traceback:
        text += f"<details><summary>Traceback</summary><pre>{esc(page.clean(f.traceback))}</pre></details>"
    return text


def _entries(nb: NotebookRun, output_dir: Path, page: _Page, esc) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in nb.outputs:
        key = (record.get("kind", ""), str(Path(record["path"]).with_suffix("")))
        groups.setdefault(key, []).append(record)
    cards = []
    for (kind, stem), records in groups.items():
        records.sort(key=lambda r: r["path"])
        first = records[0]
        title = first.get("title") or Path(stem).name
        formats = " ".join(
            f"<a href='{esc(r['path'])}'>{esc(Path(r['path']).suffix.lstrip('.').upper())}</a>" for r in records
        )
        thumb, size = "", ""
        png = next((r for r in records if r["path"].endswith(".png")), None)
        if png is not None:
            thumb = f"<a href='{esc(png['path'])}'><img src='{esc(png['path'])}' alt='{esc(title)}' loading='lazy'></a>"
        csv = next((r for r in records if r["path"].endswith(".csv")), None)
        if csv is not None:
            thumb, size = _table_preview(output_dir / csv["path"], esc, page)
        description = f"<p class='meta'>{esc(first['description'])}</p>" if first.get("description") else ""
        provenance = [
            ("Notebook", f"{first.get('notebook')} {first.get('notebook_version', '')}"),
            ("Package", f"kicc-analysis {first.get('package_version', '')}"),
            ("Cohort version", first.get("cohort_version", "")),
            ("Created", first.get("created", "")),
            ("Parameters", first.get("parameters", {})),
            ("Files", ", ".join(r["path"] for r in records)),
        ]
        rows = "".join(f"<dt>{esc(k)}</dt><dd><code>{esc(page.value(v))}</code></dd>" for k, v in provenance)
        cards.append(
            f"<article class='entry' id='{esc(kind)}-{esc(Path(stem).name)}'>{thumb}<h3>{esc(title)}</h3>{description}"
            f"<div class='formats'>{formats} <span class='meta'>{esc(size)}</span></div>"
            f"<details><summary>Provenance</summary><dl>{rows}</dl></details></article>"
        )
    return "<div class='grid'>" + "".join(cards) + "</div>" if cards else "<p class='meta'>No tables or figures.</p>"


#: the casebook of notebook 06 (:func:`kicc_analysis.teaching.render_casebook`), relative to the results folder
CASEBOOK = "teaching/index.html"
CASEBOOK_NOTEBOOK = "06_teaching_cases"


def _casebook_link(output_dir: Path, run: StudyRun, esc) -> str:
    """A card linking the teaching casebook when ``teaching/index.html`` exists (empty otherwise); says whether
    this run wrote it (notebook 06 ran without error) or it is from an earlier run."""
    if not (output_dir / CASEBOOK).is_file():
        return ""
    ours = any(nb.name == CASEBOOK_NOTEBOOK and not nb.error for nb in run.notebooks)
    note = f"written by {CASEBOOK_NOTEBOOK} in this run" if ours else f"from an earlier run of {CASEBOOK_NOTEBOOK}"
    return (
        f"<section class='card' id='casebook'><h2>Teaching cases</h2><p><a href='{esc(CASEBOOK)}'>Casebook</a>"
        f" <span class='meta'>({esc(note)}; de-identified case pages, offline)</span></p></section>"
    )


def write_index(output_dir: str | Path, run: StudyRun | list[NotebookRun]) -> Path:
    """Write ``index.html``: the study's front page for what ``run`` produced.

    Self-contained (inline CSS, no scripts, no external resources), relative links only (the teaching casebook,
    ``teaching/index.html``, when it exists), no absolute paths (the repository is shown by name or relative to the working folder), readable on a phone.
    """
    output_dir = Path(output_dir)
    if not isinstance(run, StudyRun):
        run = StudyRun(output_dir, notebooks=list(run))
    esc = html.escape
    page = _Page(output_dir, run.repository)
    total = sum(nb.seconds for nb in run.notebooks)
    status = (
        f"<span class='status failed'>{len(run.failed)} of {len(run.notebooks)} notebooks failed</span>"
        if run.failed
        else f"<span class='status ok'>{len(run.notebooks)} notebooks ok</span>"
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>KICC-19 study results</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>KICC-19 study results {status}</h1>",
        f"<p class='meta'>kicc-analysis {esc(__version__)} · run started {esc(run.started)} · "
        f"{total:.0f} s · {len(run.outputs)} output files</p></header>",
    ]
    if run.failed:
        parts.append(f"<section class='alert' id='failures'><h2>{len(run.failed)} notebook(s) failed</h2>")
        parts.append("<p>Only what this run produced is listed; earlier outputs of these notebooks were removed.</p>")
        for nb in run.failed:
            parts.append(_failure_html(nb, page, esc, with_traceback=False))
        parts.append("</section>")
    parts.append(_cohort_summary(run, page, esc))
    parts.append("<nav class='card'><h2>Notebooks</h2><ul>")
    for nb in run.notebooks:
        mark = "failed" if nb.error else "ok"
        parts.append(
            f"<li><a href='#nb-{esc(nb.name)}'>{esc(nb.name)}</a> <span class='status {mark}'>{mark}</span></li>"
        )
    parts.append("</ul></nav>")
    parts.append(_casebook_link(output_dir, run, esc))
    for nb in run.notebooks:
        purpose = _purpose(nb.source)
        version = _version(nb.source, nb.outputs)
        parameters: dict = {}
        for record in nb.outputs:
            parameters.update(record.get("parameters") or {})
        parameters.setdefault("repository", page.repository_label)
        mark = "failed" if nb.error else "ok"
        links = []
        if nb.executed_path.exists():
            links.append(
                f"<a href='{esc(nb.executed_path.relative_to(output_dir).as_posix())}'>executed notebook (ipynb)</a>"
            )
        if nb.html_path and nb.html_path.exists():
            links.append(f"<a href='{esc(nb.html_path.relative_to(output_dir).as_posix())}'>HTML</a>")
        parts.append(
            f"<section class='card' id='nb-{esc(nb.name)}'><h2>{esc(nb.name)}<span class='status {mark}'>{mark}</span></h2>"
            + (f"<p>{esc(purpose)}</p>" if purpose else "")
            + f"<p class='meta'>version {esc(version)} · {nb.seconds:.1f} s · {len(nb.outputs)} files"
            + (" · " + " · ".join(links) if links else "")
            + "</p>"
            + "<details><summary>Parameters</summary><dl>"
            + "".join(
                f"<dt>{esc(str(k))}</dt><dd><code>{esc(page.value(v))}</code></dd>" for k, v in parameters.items()
            )
            + "</dl></details>"
        )
        if nb.error:
            parts.append(f"<div class='alert'>{_failure_html(nb, page, esc, with_traceback=True)}</div>")
        parts.append(_entries(nb, output_dir, page, esc))
        parts.append("</section>")
    ours = {record["path"] for record in run.outputs}
    stale: dict[str, int] = {}
    for record in collect_outputs(output_dir):
        if record["path"] not in ours:
            stale[record["notebook"]] = stale.get(record["notebook"], 0) + 1
    if stale:
        listing = ", ".join(f"{esc(name)} ({count})" for name, count in sorted(stale.items()))
        parts.append(
            f"<p class='stale card' id='stale'>Not from this run and not listed: {sum(stale.values())} older files "
            f"in this folder from notebooks that were not re-run: {listing}.</p>"
        )
    parts.append("</main></body></html>")
    index = output_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
