"""One reader-score format for every scheme, and its validation against the scheme table.

The format is a long table, one row per (subject, study, reader, scheme, item)::

    subject, study, reader, scheme, item, score

``item`` is an item of the scheme (``A``...``F`` for Brixia) or one of its totals (``total``); a declared total is
checked against the sum of its items. ``study`` may be empty when a subject has one reading per scheme. The older
CT layout ``subjid, reader, item, score`` (``readings/reader_scores.csv``) is read too: lobes become scheme
``ct_lobe``, ``suspicion`` becomes ``ct_suspicion``.

:func:`validate_readings` reports every problem with its source row and reader and never drops a row:

==================  ========================================================================================
problem             meaning
==================  ========================================================================================
unknown_scheme      scheme not in :data:`~kicc_analysis.readings.schemes.SCHEMES`
unknown_item        item neither an item nor a total of the scheme
missing_score       empty score
non_numeric         score is not a number
non_integer         score of an item is not a whole number
out_of_range        score outside the item's (or the total's) range
duplicate           the same (subject, study, reader, scheme, item) appears again (every copy is listed)
missing_item        a reading (subject, study, reader, scheme) lacks an item its scheme requires
total_mismatch      a declared total differs from the sum of its items
==================  ========================================================================================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.errors import ReadingsError
from kicc_analysis.readings.schemes import SCHEMES, get_scheme

__all__ = [
    "LEGACY_COLUMNS",
    "PROBLEM_COLUMNS",
    "READING_KEYS",
    "SCORE_COLUMNS",
    "from_legacy",
    "read_reader_scores",
    "reading_totals",
    "validate_readings",
]

SCORE_COLUMNS = ("subject", "study", "reader", "scheme", "item", "score")
READING_KEYS = ["subject", "study", "reader", "scheme"]
LEGACY_COLUMNS = ("subjid", "reader", "item", "score")
PROBLEM_COLUMNS = ["row", "subject", "study", "reader", "scheme", "item", "problem", "detail"]
_LEGACY_SCHEME = {**{lobe: "ct_lobe" for lobe in SCHEMES["ct_lobe"].items}, "suspicion": "ct_suspicion"}


def from_legacy(table: pd.DataFrame) -> pd.DataFrame:
    """Convert the CT layout ``subjid, reader, item, score`` to the common format (study empty).

    Items that are lobes get scheme ``ct_lobe``, ``suspicion`` gets ``ct_suspicion``, anything else an empty
    scheme (reported as ``unknown_scheme`` by :func:`validate_readings`).
    """
    missing = [c for c in LEGACY_COLUMNS if c not in table.columns]
    if missing:
        raise ReadingsError(f"legacy reader-score table lacks columns {missing} (found {list(table.columns)})")
    out = pd.DataFrame(
        {
            "subject": table["subjid"].astype("string"),
            "study": pd.Series(pd.NA, index=table.index, dtype="string"),
            "reader": table["reader"].astype("string"),
            "scheme": table["item"].astype(str).map(_LEGACY_SCHEME).fillna("").astype("string"),
            "item": table["item"].astype("string"),
            "score": table["score"],
        }
    )
    if "row" in table.columns:
        out.insert(0, "row", table["row"].to_numpy())
    return out


def read_reader_scores(path: str | Path) -> pd.DataFrame:
    """Read a reader-score CSV (common format or the legacy CT layout) into the common format.

    Returns
    -------
    DataFrame
        Columns ``row`` (line number in the file, header = 1), ``subject, study, reader, scheme, item`` (strings),
        ``score`` (float, NaN when empty or not a number) and ``score_text`` (as written). Every row of the file is
        kept; run :func:`validate_readings` for the problems.

    Raises
    ------
    ReadingsError
        Missing file or a file with neither layout's columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ReadingsError(f"reader-score file not found: {path}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    raw.insert(0, "row", np.arange(2, len(raw) + 2))
    if all(c in raw.columns for c in SCORE_COLUMNS):
        table = raw[["row", *SCORE_COLUMNS]].copy()
    elif all(c in raw.columns for c in LEGACY_COLUMNS):
        table = from_legacy(raw)
    else:
        raise ReadingsError(
            f"{path.name}: expected columns {', '.join(SCORE_COLUMNS)} (or the CT layout {', '.join(LEGACY_COLUMNS)}),"
            f" found {', '.join(map(str, raw.columns[1:]))}"
        )
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    if "row" not in table.columns:
        table.insert(0, "row", np.arange(len(table)))
    for column in ("subject", "study", "reader", "scheme", "item"):
        values = table[column].astype("string").str.strip()
        table[column] = values.mask(values == "", pd.NA)
    table["scheme"] = table["scheme"].str.lower()
    text = table["score"].astype("string").str.strip()
    table["score_text"] = text
    table["score"] = pd.to_numeric(text, errors="coerce").astype(float)
    return table


def validate_readings(table: pd.DataFrame) -> pd.DataFrame:
    """Every problem of a reader-score table (common format), one row per problem; nothing is dropped.

    Parameters
    ----------
    table : DataFrame
        From :func:`read_reader_scores`, or any frame with the columns of :data:`SCORE_COLUMNS` (``row`` optional:
        the frame's position is used).

    Returns
    -------
    DataFrame
        Columns ``row, subject, study, reader, scheme, item, problem, detail`` (see the module docstring),
        sorted by row.

    Examples
    --------
    >>> t = pd.DataFrame({"subject": "P1", "study": "S1", "reader": "R1", "scheme": "brixia",
    ...                   "item": ["A", "B", "C", "D", "E", "F", "total"], "score": [1, 2, 4, 0, 1, 1, 8]})
    >>> validate_readings(t)[["row", "item", "problem"]].to_numpy().tolist()
    [[2, 'C', 'out_of_range'], [6, 'total', 'total_mismatch']]
    """
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise ReadingsError(f"reader-score table lacks columns {missing} (found {list(table.columns)})")
    if "score_text" not in table.columns:
        table = _typed(table)
    problems: list[dict] = []

    def report(row: pd.Series | dict, problem: str, detail: str, item: object = None) -> None:
        problems.append(
            {
                "row": row["row"],
                "subject": row["subject"],
                "study": row["study"],
                "reader": row["reader"],
                "scheme": row["scheme"],
                "item": row["item"] if item is None else item,
                "problem": problem,
                "detail": detail,
            }
        )

    for _, row in table.iterrows():
        scheme_name = row["scheme"]
        if pd.isna(scheme_name) or scheme_name not in SCHEMES:
            report(row, "unknown_scheme", f"scheme {scheme_name!s} is not one of {', '.join(SCHEMES)}")
            continue
        scheme = SCHEMES[scheme_name]
        item = row["item"]
        totals = {t.name for t in scheme.totals}
        if item in scheme.items:
            low, high, is_item = scheme.item(item).min, scheme.item(item).max, True
        elif item in totals:
            (low, high), is_item = scheme.total_range(item), False
        else:
            known = ", ".join([*scheme.items, *sorted(totals)])
            report(row, "unknown_item", f"item {item!s} is not in scheme {scheme_name} ({known})")
            continue
        text = row["score_text"]
        if pd.isna(text) or text == "":
            report(row, "missing_score", "empty score")
            continue
        score = row["score"]
        if not np.isfinite(score):
            report(row, "non_numeric", f"score {text!r} is not a number")
            continue
        if is_item and score != np.floor(score):
            report(row, "non_integer", f"score {text} is not a whole number ({scheme_name} {item}: {low}-{high})")
        if not low <= score <= high:
            report(row, "out_of_range", f"score {text} outside {low}-{high} ({scheme_name} {item})")

    key = [*READING_KEYS, "item"]
    keyed = table.assign(**{c: table[c].fillna("") for c in key})
    dup = keyed.duplicated(key, keep=False)
    for _, group in keyed[dup].groupby(key, sort=False):
        rows = group["row"].tolist()
        for _, row in table.loc[group.index].iterrows():
            report(row, "duplicate", f"the same reading appears in rows {', '.join(map(str, rows))}")

    known = keyed[keyed["scheme"].isin(list(SCHEMES))]
    for (_, _, _, scheme_name), group in known.groupby(READING_KEYS, sort=False):
        scheme = SCHEMES[scheme_name]
        first = table.loc[group.index[0]]
        values = dict(zip(group["item"], table.loc[group.index, "score"], strict=True))
        present = set(group["item"])
        needed = [
            it.name
            for it in scheme.item_list
            if it.name not in present and not (it.optional_when_zero and values.get(it.optional_when_zero) == 0)
        ]
        if needed:
            report(
                first,
                "missing_item",
                f"reading has {len(present & set(scheme.items))} of {len(scheme.items)} {scheme_name} items; "
                f"missing {', '.join(needed)} (first row of the reading: {first['row']})",
                item=", ".join(needed),
            )
        for total in scheme.totals:
            declared = group[group["item"] == total.name]
            if declared.empty or needed:
                continue
            expected = scheme.compute_total(total.name, values)
            for index in declared.index:
                got = table.loc[index, "score"]
                if np.isfinite(got) and np.isfinite(expected) and abs(got - expected) > 1e-9:
                    report(
                        table.loc[index],
                        "total_mismatch",
                        f"declared {total.name} {got:g} but the items give {expected:g} ({total.description})",
                    )
    frame = pd.DataFrame(problems, columns=PROBLEM_COLUMNS)
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def reading_totals(table: pd.DataFrame, scheme: str, total: str = "total") -> pd.DataFrame:
    """A total per reading computed from the items (declared totals ignored).

    Returns
    -------
    DataFrame
        ``subject, study, reader, scheme, total, score`` (NaN when an item needed is missing).
    """
    definition = get_scheme(scheme)
    definition.total(total)
    rows = table[(table["scheme"] == definition.name) & table["item"].isin(definition.items)]
    out = []
    keys = READING_KEYS
    filled = rows.assign(study=rows["study"].fillna(""))
    for values, group in filled.groupby(keys, sort=True):
        scores = dict(zip(group["item"], group["score"].astype(float), strict=False))
        out.append((*values, total, definition.compute_total(total, scores)))
    frame = pd.DataFrame(out, columns=[*keys, "total", "score"])
    frame["study"] = frame["study"].mask(frame["study"] == "", pd.NA)
    return frame
