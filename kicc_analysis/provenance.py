"""Provenance stamps for every table and figure the study writes.

Each output carries: notebook name and version, package version,
``cohort_version`` (content hash of the cohort snapshot), the notebook
parameters and the date it was made. Tables get a sidecar ``.json``
(``name.csv`` → ``name.csv.json``) and a leading ``#`` comment block is *not*
used so that the CSV stays readable by every tool; figures carry the stamp in
their metadata (PNG text chunks, SVG ``<metadata>``) and in the same sidecar.

Example
-------
>>> out = OutputWriter("results", notebook="01_cohort", version="1.0.0",
...                    cohort_version="3f2a…", parameters={"repository": "demo"})
>>> out.table(table_one, "table1_by_severity")          # doctest: +SKIP
>>> out.figure(fig, "imaging_inventory")                # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kicc_analysis import __version__

PROVENANCE_SUFFIX = ".json"


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


@dataclass
class OutputWriter:
    """Write tables and figures of one notebook, each stamped with provenance.

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
    """

    output_dir: str | Path
    notebook: str
    version: str
    cohort_version: str = "unknown"
    parameters: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        (self.output_dir / "tables").mkdir(parents=True, exist_ok=True)
        (self.output_dir / "figures").mkdir(parents=True, exist_ok=True)

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

    def table(
        self, table: pd.DataFrame, name: str, *, title: str = "", description: str = "", index: bool = False
    ) -> Path:
        """Write ``table`` as ``tables/<name>.csv`` with its provenance sidecar."""
        path = Path(self.output_dir) / "tables" / f"{name}.csv"
        table.to_csv(path, index=index)
        self._write_sidecar(path, "table", title or name, description)
        return path

    def figure(self, figure: Any, name: str, *, title: str = "", description: str = "", dpi: int = 200) -> list[Path]:
        """Write a matplotlib ``figure`` as PNG and SVG with provenance in metadata and sidecar."""
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
        return [png, svg]


def read_provenance(output_path: str | Path) -> dict[str, Any]:
    """Return the provenance record written beside ``output_path``."""
    path = Path(output_path)
    return json.loads(path.with_name(path.name + PROVENANCE_SUFFIX).read_text())
