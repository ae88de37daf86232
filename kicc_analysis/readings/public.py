"""Loaders of public radiograph reader-score data sets into the common reader-score format.

* BrixIA public annotations (Signoroni et al., Med Image Anal 2021;71:102046): 192 COVID-19 radiographs of the
  COVID-19 image data collection, Brixia zones A-F (0-3) and the global score (0-18) by a senior (``S``, about
  22 years) and a junior (``J``, about 2 years) radiologist; columns ``filename, S-A..S-F, S-Global, J-A..J-F,
  J-Global``.
* Cohen et al. pneumonia severity scores (Cureus 2020;12:e9448): the *mean* of three blinded readers' totals,
  ``geographic_mean`` (extent, 0-8) and ``opacity_mean`` (0-6), rounded to 0.1; per-reader values are not public.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.errors import ReadingsError
from kicc_analysis.readings.schemes import SCHEMES
from kicc_analysis.readings.scores import _typed

__all__ = ["BRIXIA_READERS", "load_brixia_annotations", "load_cohen_severity"]

BRIXIA_READERS = {"S": "senior", "J": "junior"}


def load_brixia_annotations(path: str | Path) -> pd.DataFrame:
    """BrixIA ``public-annotations.csv`` as reader scores (common format, scheme ``brixia``).

    Returns
    -------
    DataFrame
        ``row, subject, study, reader, scheme, item, score, score_text``: subject = image file name, study empty,
        reader ``senior``/``junior``, items ``A``-``F`` and ``total`` (from ``S-Global``/``J-Global``). Every cell
        of the file becomes one row (192 images x 2 readers x 7 items = 2,688 for the published file).

    Raises
    ------
    ReadingsError
        Missing file or columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ReadingsError(f"BrixIA annotation file not found: {path}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    zones = SCHEMES["brixia"].items
    expected = ["filename"] + [f"{r}-{z}" for r in BRIXIA_READERS for z in (*zones, "Global")]
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        raise ReadingsError(f"{path.name}: missing columns {missing} (found {list(raw.columns)})")
    rows = []
    for position, record in enumerate(raw.itertuples(index=False)):
        values = dict(zip(raw.columns, record, strict=True))
        for code, reader in BRIXIA_READERS.items():
            for zone in (*zones, "Global"):
                rows.append(
                    {
                        "row": position + 2,
                        "subject": values["filename"],
                        "study": "",
                        "reader": reader,
                        "scheme": "brixia",
                        "item": "total" if zone == "Global" else zone,
                        "score": values[f"{code}-{zone}"],
                    }
                )
    return _typed(pd.DataFrame(rows))


def load_cohen_severity(path: str | Path) -> pd.DataFrame:
    """Cohen et al. ``covid-severity-scores.csv`` (mean of three readers) with range checks.

    Lines starting with ``#`` are the file's documentation and are skipped.

    Returns
    -------
    DataFrame
        ``filename, extent_mean, opacity_mean`` (floats) and ``problem`` (empty, or why a value is outside the
        documented totals' ranges of scheme ``cohen``: extent 0-8, opacity 0-6, or not a number). No row dropped.
        ``attrs['ranges']`` holds the ranges used.
    """
    path = Path(path)
    if not path.is_file():
        raise ReadingsError(f"Cohen severity file not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    raw = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)
    columns = {"filename": "filename", "geographic_mean": "extent_mean", "opacity_mean": "opacity_mean"}
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ReadingsError(f"{path.name}: missing columns {missing} (found {list(raw.columns)})")
    table = raw[list(columns)].rename(columns=columns)
    scheme = SCHEMES["cohen"]
    ranges = {"extent_mean": scheme.total_range("extent_total"), "opacity_mean": scheme.total_range("opacity_total")}
    problems = [[] for _ in range(len(table))]
    for column, (low, high) in ranges.items():
        values = pd.to_numeric(table[column], errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems[i].append(f"{column} {table[column].iloc[i]!r} is not a number")
        for i in np.flatnonzero(((values < low) | (values > high)).to_numpy()):
            problems[i].append(f"{column} {values.iloc[i]:g} outside {low}-{high}")
        table[column] = values.astype(float)
    table["problem"] = ["; ".join(p) for p in problems]
    table.attrs["ranges"] = ranges
    return table
