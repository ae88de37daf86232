"""Provenance stamps for every table and figure the study writes, and their display in Jupyter.

Each output carries: notebook name and version, package version,
``cohort_version`` (content hash of the cohort snapshot), the notebook
parameters and the date it was made. Tables get a sidecar ``.json``
(``name.csv`` → ``name.csv.json``) and a leading ``#`` comment block is *not*
used so that the CSV stays readable by every tool; figures carry the stamp in
their metadata (PNG text chunks, SVG ``<metadata>``) and in the same sidecar.

Inside a Jupyter kernel (JupyterLab, or papermill under ``kicc study``) the
writer also *shows* what it saves, right below the code that made it: the PNG
it wrote (exactly those bytes) or the table as HTML with readable column names
(units in brackets), each followed by a one-line provenance note. Figures are
closed once written so that the inline backend does not show them twice.
Outside Jupyter nothing is displayed.

Example
-------
>>> import pandas as pd, tempfile
>>> out = OutputWriter(tempfile.mkdtemp(), notebook="01_cohort", version="1.0.0",
...                    cohort_version="3f2a9c", parameters={"repository": "demo"})
>>> out.table(pd.DataFrame({"volume_ml": [1.5]}), "volumes").name
'volumes.csv'
>>> readable_column("opacity_pct"), readable_column("labs_crp_mgl")
('opacity (%)', 'C-reactive protein (mg/L)')
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from kicc_analysis import __version__

PROVENANCE_SUFFIX = ".json"

#: Rows of a table shown in the notebook (the CSV always holds all of them).
DISPLAY_ROWS = 25

#: Column-name suffixes and the unit they stand for (shown as ``name (unit)``), longest match first.
UNIT_SUFFIXES: dict[str, str] = {
    "_109l": "10⁹/L",
    "_umoll": "µmol/L",
    "_ngml": "ng/mL",
    "_mgl": "mg/L",
    "_pct": "%",
    "_percent": "%",
    "_ml": "mL",
    "_mm3": "mm³",
    "_mm2": "mm²",
    "_mm": "mm",
    "_cm": "cm",
    "_hu": "HU",
    "_kg": "kg",
    "_days": "days",
    "_day": "day",
    "_seconds": "s",
    "_s": "s",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


@lru_cache(maxsize=1)
def _dictionary_labels() -> dict[str, str]:
    try:
        from kicc_analysis.dictionary import display_labels, load_dictionary

        dictionary = load_dictionary()
        return display_labels(dictionary.names(), dictionary)
    except Exception:  # labels are a nicety for display; never fail a notebook over them
        return {}


def readable_column(name: Any) -> str:
    """A column name as a reader wants it: dictionary label with unit, or ``stem (unit)`` from the suffix.

    >>> readable_column("volume_ml"), readable_column("n"), readable_column("ci_low")
    ('volume (mL)', 'n', 'ci low')
    """
    if not isinstance(name, str):
        return str(name)
    label = _dictionary_labels().get(name)
    if label:
        return label
    lower = name.lower()
    for suffix, unit in UNIT_SUFFIXES.items():
        if lower.endswith(suffix) and len(name) > len(suffix):
            return f"{name[: -len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def in_jupyter_kernel() -> bool:
    """True when running inside a Jupyter kernel (JupyterLab, papermill), where outputs can be displayed."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class OutputWriter:
    """Write tables and figures of one notebook, each stamped with provenance (and shown in Jupyter).

    Parameters
    ----------
    output_dir : path
        Root of the results folder; tables go to ``tables/``, figures to ``figures/``.
    notebook : str
        Notebook name, e.g. ``"01_cohort"``.
    version : str
        The notebook's own version string.
    cohort_version : str
        Content hash of the cohort snapshot the results were computed from.
    parameters : dict
        The notebook's parameters (repository path, output dir, options).
    show : bool, optional
        Display each output below the cell that wrote it; default: only inside a Jupyter kernel.
    """

    output_dir: str | Path
    notebook: str
    version: str
    cohort_version: str = "unknown"
    parameters: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    show: bool | None = None

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        (self.output_dir / "tables").mkdir(parents=True, exist_ok=True)
        (self.output_dir / "figures").mkdir(parents=True, exist_ok=True)
        if self.show is None:
            self.show = in_jupyter_kernel()

    @property
    def stamp(self) -> dict[str, Any]:
        """The provenance record written beside every output."""
        return {
            "notebook": self.notebook,
            "notebook_version": self.version,
            "package_version": __version__,
            "cohort_version": self.cohort_version,
            "parameters": _jsonable(self.parameters),
            "created": self.created,
        }

    def _write_sidecar(self, path: Path, kind: str, title: str, description: str) -> None:
        record = {**self.stamp, "kind": kind, "file": path.name, "title": title, "description": description}
        path.with_name(path.name + PROVENANCE_SUFFIX).write_text(json.dumps(record, indent=2))

    def provenance_line(self, *paths: Path) -> str:
        """One line naming the written files and their provenance (HTML-escaped text)."""
        files = " · ".join(str(Path(p).relative_to(self.output_dir)) for p in paths)
        return (
            f"{files} — {self.notebook} {self.version} · kicc-analysis {__version__} · "
            f"cohort {str(self.cohort_version)[:12]} · {self.created}"
        )

    def _display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        from IPython.display import display

        display(data, raw=True, metadata=metadata)

    def _show_caption(self, title: str, paths: list[Path]) -> None:
        line = self.provenance_line(*paths)
        body = f"<b>{html.escape(title)}</b><br>" if title else ""
        self._display(
            {
                "text/html": f"<div class='kicc-provenance' style='font-size:0.8em;color:#555'>{body}"
                f"<code>{html.escape(line)}</code></div>",
                "text/plain": (f"{title}\n" if title else "") + line,
            },
            {"kicc_output": [str(p.relative_to(self.output_dir)) for p in paths]},
        )

    def table(
        self, table: pd.DataFrame, name: str, *, title: str = "", description: str = "", index: bool = False
    ) -> Path:
        """Write ``table`` as ``tables/<name>.csv`` with its provenance sidecar (and show it in Jupyter)."""
        path = Path(self.output_dir) / "tables" / f"{name}.csv"
        table.to_csv(path, index=index)
        self._write_sidecar(path, "table", title or name, description)
        if self.show:
            self._show_table(table, path, title or name, index=index)
        return path

    def _show_table(self, table: pd.DataFrame, path: Path, title: str, *, index: bool) -> None:
        try:
            shown = table.head(DISPLAY_ROWS).copy()
            shown.attrs = {}  # attrs may hold frames, which pandas' formatter cannot compare
            names = [readable_column(c) for c in shown.columns]
            if len(set(names)) == len(names):  # never merge two columns under one label
                shown.columns = names
            if index and shown.index.name:
                shown.index.name = readable_column(shown.index.name)
            rows = f"{len(table)} rows × {table.shape[1]} columns"
            if len(table) > DISPLAY_ROWS:
                rows += f"; first {DISPLAY_ROWS} shown, all in the CSV"
            frame_html = shown.to_html(
                index=index, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0, classes="dataframe kicc-table"
            )
            data = {
                "text/html": f"<div style='font-size:0.8em;color:#555'>{html.escape(rows)}</div>{frame_html}",
                "text/plain": shown.to_string(index=index, max_cols=12),
            }
        except Exception as exc:  # showing is a convenience: the CSV is written; never fail the notebook here
            data = {"text/plain": f"(table written, not shown: {type(exc).__name__}: {exc})"}
        self._display(data, {"kicc_table": str(path.relative_to(self.output_dir))})
        self._show_caption(title, [path])

    def figure(self, figure: Any, name: str, *, title: str = "", description: str = "", dpi: int = 200) -> list[Path]:
        """Write a matplotlib ``figure`` as PNG and SVG with provenance in metadata and sidecar.

        In Jupyter the PNG just written is displayed (at 100 dpi size) with its provenance line and the
        figure is closed, so the inline backend does not show it a second time.
        """
        base = Path(self.output_dir) / "figures" / name
        text = json.dumps(self.stamp)
        png = base.with_suffix(".png")
        svg = base.with_suffix(".svg")
        figure.savefig(
            png,
            dpi=dpi,
            bbox_inches="tight",
            metadata={"Software": f"kicc-analysis {__version__}", "Description": text},
        )
        figure.savefig(
            svg, bbox_inches="tight", metadata={"Creator": f"kicc-analysis {__version__}", "Description": text}
        )
        for path in (png, svg):
            self._write_sidecar(path, "figure", title or name, description)
        if self.show:
            import base64

            import matplotlib.pyplot as plt

            data = png.read_bytes()
            width, height = _png_size(data)
            scale = 100 / dpi
            self._display(
                {"image/png": base64.b64encode(data).decode("ascii"), "text/plain": f"<figure {png.name}>"},
                {
                    "image/png": {"width": round(width * scale), "height": round(height * scale)},
                    "kicc_output": [str(png.relative_to(self.output_dir))],
                },
            )
            self._show_caption(title or name, [png, svg])
            plt.close(figure)
        return [png, svg]


def read_provenance(output_path: str | Path) -> dict[str, Any]:
    """Return the provenance record written beside ``output_path``."""
    path = Path(output_path)
    return json.loads(path.with_name(path.name + PROVENANCE_SUFFIX).read_text())
