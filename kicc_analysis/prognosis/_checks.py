"""Input checks shared by the prognosis modules (private).

Every public function funnels its inputs through these helpers so that bad
input fails with an :class:`~kicc_analysis.errors.AnalysisError` that says what
was expected, what was found and where, and so that rows with missing values
are never dropped silently: the helpers return the mask of usable rows and emit
a :class:`MissingDataWarning` naming how many rows were skipped and why.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError


class MissingDataWarning(UserWarning):
    """Rows were skipped because a value needed by the analysis was missing."""


def as_float_array(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float array or raise AnalysisError."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{name}: expected numeric values, found {type(values).__name__} ({exc})") from exc
    if arr.ndim != 1:
        raise AnalysisError(f"{name}: expected a 1-D array, found shape {arr.shape}")
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise when the named arrays do not all have the same length; return it."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise AnalysisError(f"inputs must have the same length, found {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise AnalysisError(f"empty input: {', '.join(lengths)} have no rows")
    return n


def complete_mask(where: str, **arrays: np.ndarray | None) -> np.ndarray:
    """Mask of rows with no NaN in any array; warns with counts per array if any are skipped."""
    n = check_same_length(**{k: v for k, v in arrays.items() if v is not None})
    keep = np.ones(n, dtype=bool)
    reasons = []
    for name, arr in arrays.items():
        if arr is None:
            continue
        bad = pd.isna(arr) if arr.dtype == object else np.isnan(arr)
        if bad.ndim > 1:
            bad = bad.any(axis=1)
        if bad.any():
            reasons.append(f"{int(bad.sum())} missing {name}")
            keep &= ~bad
    if not keep.any():
        raise AnalysisError(f"{where}: no complete rows left ({'; '.join(reasons)})")
    if reasons:
        warnings.warn(
            f"{where}: skipped {int((~keep).sum())} of {n} rows ({'; '.join(reasons)})",
            MissingDataWarning,
            stacklevel=3,
        )
    return keep


def check_binary(y: np.ndarray, name: str = "y") -> np.ndarray:
    """Return ``y`` as 0/1 int array; raise when other values are present or one class is absent."""
    is_one = y == 1
    if not np.all(is_one | (y == 0)):
        vals = np.unique(y[~pd.isna(y)])
        raise AnalysisError(f"{name}: expected a binary 0/1 outcome, found values {vals[:10].tolist()}")
    if is_one.all() or not is_one.any():
        raise AnalysisError(f"{name}: both classes 0 and 1 are needed, found only {int(y[0])}")
    return y.astype(int)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise when ``frame`` lacks any of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError(f"{where}: expected a pandas DataFrame, found {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{where}: column(s) {missing} not found; available columns: {sorted(map(str, frame.columns))[:30]}"
        )


def check_survival(time: np.ndarray, event: np.ndarray, where: str) -> None:
    """Raise on negative times or event indicators other than 0/1 (after NaN removal)."""
    if (time < 0).any():
        raise AnalysisError(f"{where}: survival times must be >= 0, found {int((time < 0).sum())} negative")
    bad = ~np.isin(event, (0, 1))
    if bad.any():
        raise AnalysisError(f"{where}: event must be 0 (censored) or 1 (event), found {np.unique(event[bad])[:10]}")
