"""Input reshaping shared by every agreement coefficient.

Two input layouts are accepted everywhere:

* a *tidy long* :class:`pandas.DataFrame` with one row per (subject, rater) rating, the three column names
  passed as ``subject=``, ``rater=``, ``rating=``;
* a *wide* array (NumPy array, nested list or DataFrame), missing ratings as NaN/None, read as **subjects x raters**
  (rows = subjects; for a DataFrame the index is the subject and the columns the raters) unless
  ``layout="raters_x_subjects"`` says the rows are raters (Krippendorff's "reliability data", the layout of the
  ``krippendorff`` package and of Krippendorff's papers). A wide input with more raters than subjects and no explicit
  ``layout`` looks transposed and raises a :class:`LayoutWarning`.

Ordered categories are declared explicitly with ``categories=`` so that a level nobody used still counts
(it changes chance agreement for weighted coefficients and the ordinal Krippendorff metric).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError

WeightsArg = None | str | np.ndarray | Sequence[Sequence[float]]
LAYOUTS = ("subjects_x_raters", "raters_x_subjects")


class AgreementWarning(UserWarning):
    """Base class of the warnings of :mod:`kicc_analysis.agreement`."""


class LayoutWarning(AgreementWarning):
    """A wide ratings array looks transposed (more raters than subjects) and no ``layout`` was given."""


class ConventionWarning(AgreementWarning):
    """Two published conventions give different results on these data; the warning says which was used."""


@dataclass(frozen=True)
class Wide:
    """Ratings as a subjects x raters float array (NaN = missing) with labels and a drop report."""

    values: np.ndarray
    subjects: np.ndarray
    raters: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)


class DeprecatedKeys(dict):
    """A dict whose deprecated keys still work for one release, with a :class:`DeprecationWarning` on reading."""

    def __init__(self, values: Any, deprecated: dict[str, str]) -> None:
        super().__init__(values)
        self._deprecated = dict(deprecated)

    def __getitem__(self, key: Any) -> Any:
        if key in self._deprecated:
            warn(self._deprecated[key], DeprecationWarning)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default


def warn(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the first caller outside :mod:`kicc_analysis.agreement`."""
    import sys
    from pathlib import Path

    here = str(Path(__file__).parent)
    frame, level = sys._getframe(1), 2  # stacklevel 2 = the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(here):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def to_wide(
    data: Any,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    numeric: bool = True,
    layout: str | None = None,
) -> Wide:
    """Return ratings as a wide subjects x raters array.

    Parameters
    ----------
    data : DataFrame (long or wide), ndarray or nested list
        Long layout when ``subject``, ``rater`` and ``rating`` are given, wide otherwise.
    subject, rater, rating : str, optional
        Column names of the long layout.
    numeric : bool
        Convert ratings to float (non-numeric strings raise). With ``False`` the object array is kept.
    layout : {None, "subjects_x_raters", "raters_x_subjects"}
        Orientation of wide input (rows are subjects, or rows are raters). ``None`` reads subjects x raters and
        warns (:class:`LayoutWarning`) when there are more raters than subjects.

    Examples
    --------
    >>> to_wide([[1, 2, 2], [1, 2, 3]], layout="raters_x_subjects").values.shape  # 2 raters, 3 subjects
    (3, 2)

    Raises
    ------
    AnalysisError
        Missing columns, duplicated (subject, rater) pairs, empty input or non-numeric ratings.
    """
    given = [c is not None for c in (subject, rater, rating)]
    if any(given) and not all(given):
        raise AnalysisError(
            "long-format input needs all three column names subject=, rater=, rating= "
            f"(got subject={subject!r}, rater={rater!r}, rating={rating!r})"
        )
    if layout is not None and layout not in LAYOUTS:
        raise AnalysisError(f"layout must be one of {LAYOUTS} (or None), got {layout!r}")
    if all(given):
        if layout is not None:
            raise AnalysisError(
                f"layout={layout!r} applies to wide arrays; a long table names its subject, rater and rating columns"
            )
        if not isinstance(data, pd.DataFrame):
            raise AnalysisError(f"column names were given but data is a {type(data).__name__}, not a DataFrame")
        missing = [c for c in (subject, rater, rating) if c not in data.columns]
        if missing:
            raise AnalysisError(f"columns {missing} not found in the ratings table (columns: {list(data.columns)})")
        dup = data.duplicated([subject, rater], keep=False)
        if dup.any():
            example = data.loc[dup, [subject, rater]].iloc[0].tolist()
            raise AnalysisError(
                f"{int(dup.sum())} rows repeat a (subject, rater) pair, e.g. {example}; "
                "each rater may rate each subject once (average or pick repeated readings first)"
            )
        wide = data.pivot(index=subject, columns=rater, values=rating)
        subjects = np.asarray(wide.index)
        raters = np.asarray(wide.columns)
        values = _frame_values(wide)
    else:
        if isinstance(data, pd.DataFrame):
            rows, cols = np.asarray(data.index), np.asarray(data.columns)
            values = _frame_values(data)
        else:
            try:
                values = np.asarray(data, dtype=float)
            except (TypeError, ValueError):
                values = np.asarray(data, dtype=object)
            if values.ndim != 2:
                raise AnalysisError(
                    f"wide ratings must be a 2-D array (subjects x raters, or raters x subjects with "
                    f"layout='raters_x_subjects'), got an array of shape {values.shape}"
                )
            rows, cols = np.arange(values.shape[0]), np.arange(values.shape[1])
        if layout == "raters_x_subjects":
            values, subjects, raters = values.T, cols, rows
        else:
            subjects, raters = rows, cols
            if layout is None and values.shape[1] > values.shape[0]:
                warn(
                    f"wide ratings read as subjects x raters gave {values.shape[0]} subjects and {values.shape[1]} "
                    "raters: more raters than subjects looks transposed (Krippendorff's reliability data and the "
                    "krippendorff package put raters in rows). Pass layout='raters_x_subjects' if rows are raters, "
                    "layout='subjects_x_raters' if they are subjects, or a long table.",
                    LayoutWarning,
                )
    if values.size == 0 or values.shape[0] == 0:
        raise AnalysisError("no ratings: the input has no subjects")
    if values.dtype != object:
        return Wide(values=values, subjects=subjects, raters=raters)
    if not numeric:
        try:
            values = values.astype(float)
        except (TypeError, ValueError):
            pass
        return Wide(values=values, subjects=subjects, raters=raters)
    if numeric:
        try:
            values = pd.DataFrame(values).apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
        except (ValueError, TypeError) as exc:
            raise AnalysisError(f"ratings must be numeric (or declare categories); {exc}") from exc
    return Wide(values=values, subjects=subjects, raters=raters)


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    """Float array (NaN for missing, including pandas NA of nullable dtypes) when numeric, else object."""
    try:
        return frame.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        return frame.to_numpy(dtype=object)


def drop_unrated(wide: Wide) -> Wide:
    """Remove subjects nobody rated, reporting how many in ``dropped['no_rating']``."""
    missing = np.isnan(wide.values) if wide.values.dtype.kind == "f" else pd.isna(pd.DataFrame(wide.values)).to_numpy()
    keep = ~missing.all(axis=1)
    n_drop = int(keep.size - np.count_nonzero(keep))
    if n_drop == keep.size:
        raise AnalysisError("every subject has only missing ratings")
    if n_drop == 0:
        return wide
    dropped = dict(wide.dropped)
    if n_drop:
        dropped["no_rating"] = n_drop
    return Wide(values=wide.values[keep], subjects=wide.subjects[keep], raters=wide.raters, dropped=dropped)


def encode_categories(values: np.ndarray, categories: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode ratings as integer category positions (-1 = missing).

    Parameters
    ----------
    values : ndarray
        Ratings of any shape (NaN/None = missing).
    categories : sequence, optional
        Declared ordered categories. When omitted, the sorted distinct observed values are used (an unused
        level is then invisible: declare it).

    Raises
    ------
    AnalysisError
        A rating is not among the declared categories.
    """
    flat = pd.Series(np.asarray(values, dtype=object).ravel())
    missing = flat.isna().to_numpy()
    if categories is None:
        observed = pd.unique(flat[~missing])
        try:
            cats = np.array(sorted(observed))
        except TypeError:
            cats = np.array(sorted(observed, key=str))
    else:
        cats = np.asarray(list(categories))
        if len(set(cats.tolist())) != len(cats):
            raise AnalysisError(f"declared categories contain duplicates: {list(categories)}")
    if len(cats) == 0:
        raise AnalysisError("no non-missing rating")
    lookup = {c: i for i, c in enumerate(cats.tolist())}
    codes = np.full(flat.shape[0], -1, dtype=np.int64)
    unknown: set[Any] = set()
    for i, v in enumerate(flat.to_numpy()):
        if missing[i]:
            continue
        key = v.item() if isinstance(v, np.generic) else v
        code = lookup.get(key)
        if code is None and isinstance(key, float) and key.is_integer():
            code = lookup.get(int(key))
        if code is None:
            unknown.add(key)
        else:
            codes[i] = code
    if unknown:
        raise AnalysisError(
            f"ratings {sorted(unknown, key=str)[:10]} are not among the declared categories {cats.tolist()}"
        )
    return codes.reshape(np.shape(values)), cats


def fast_codes(values: np.ndarray, categories: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`encode_categories` for float arrays (NaN = missing); falls back when not numeric."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        return encode_categories(arr, categories)
    arr = arr.astype(float)
    observed = ~np.isnan(arr)
    cats = np.unique(arr[observed]) if categories is None else np.asarray(list(categories), dtype=float)
    if len(cats) == 0:
        raise AnalysisError("no non-missing rating")
    if categories is not None and len(np.unique(cats)) != len(cats):
        raise AnalysisError(f"declared categories contain duplicates: {list(categories)}")
    order = np.argsort(cats)
    sorted_cats = cats[order]
    pos = np.searchsorted(sorted_cats, np.where(observed, arr, sorted_cats[0]))
    pos = np.clip(pos, 0, len(cats) - 1)
    ok = sorted_cats[pos] == arr
    bad = observed & ~ok
    if bad.any():
        raise AnalysisError(
            f"ratings {np.unique(arr[bad])[:10].tolist()} are not among the declared categories {cats.tolist()}"
        )
    codes = np.where(observed, order[pos], -1)
    if categories is None:
        if np.all(cats == np.round(cats)):
            cats = cats.astype(np.int64)  # integer scores shown as 0, 1, 2 rather than 0.0, 1.0, 2.0
        return codes.astype(np.int64), cats
    return codes.astype(np.int64), np.asarray(list(categories))


def count_matrix(codes: np.ndarray, q: int) -> np.ndarray:
    """Subjects x categories counts ``r_ik`` (number of raters who put subject i in category k)."""
    n = codes.shape[0]
    rows = np.repeat(np.arange(n), codes.shape[1])
    flat = codes.ravel()
    ok = flat >= 0
    return np.bincount(rows[ok] * q + flat[ok], minlength=n * q).reshape(n, q).astype(float)


def category_scores(categories: np.ndarray) -> np.ndarray:
    """Numeric scores of categories used for linear/quadratic weights (values if numeric, else positions)."""
    try:
        scores = np.asarray(categories, dtype=float)
        if np.all(np.isfinite(scores)):
            return scores
    except (TypeError, ValueError):
        pass
    return np.arange(len(categories), dtype=float)


WEIGHT_SCALES = ("value", "rank")


def weight_matrix(
    weights: WeightsArg, categories: np.ndarray, *, kind: str = "agreement", scale: str | None = None
) -> np.ndarray:
    """Agreement weight matrix ``w_kl`` (1 on the diagonal, in [0, 1]).

    Parameters
    ----------
    weights : None, "identity", "linear", "quadratic" or a q x q matrix
        ``linear`` = 1 - |c_k - c_l| / (c_max - c_min) and ``quadratic`` = 1 - (c_k - c_l)^2 / (c_max - c_min)^2.
    categories : ndarray
        The ordered categories (declared, else the observed ones).
    kind : {"agreement", "disagreement"}
        How a user matrix is to be read. Disagreement weights ``v`` (Cohen 1968) are converted to
        ``1 - v / max(v)``, which leaves every kappa-type coefficient unchanged.
    scale : {None, "value", "rank"}
        What ``c_k`` is for ``linear``/``quadratic``: the category's numeric **value** (default; Gwet's irrCAC) or its
        **rank** (position 0, 1, 2, ... among the categories: R irr ``kappa2``, scikit-learn ``cohen_kappa_score``,
        statsmodels ``cohens_kappa``). They differ when the values are not equally spaced (e.g. an undeclared unused
        level, or scores 0, 1, 2, 5). ``None`` uses values and raises a :class:`ConventionWarning` when the two
        differ; non-numeric categories always use ranks.

    Examples
    --------
    >>> weight_matrix("linear", np.array([0, 1, 3]), scale="value")[0].tolist()
    [1.0, 0.6666666666666667, 0.0]
    >>> weight_matrix("linear", np.array([0, 1, 3]), scale="rank")[0].tolist()
    [1.0, 0.5, 0.0]
    """
    q = len(categories)
    if scale is not None and scale not in WEIGHT_SCALES:
        raise AnalysisError(f"weight_scale must be 'value' or 'rank' (or None), got {scale!r}")
    if weights is None or (isinstance(weights, str) and weights in ("identity", "unweighted", "nominal")):
        return np.eye(q)
    if isinstance(weights, str):
        if weights not in ("linear", "quadratic"):
            raise AnalysisError(f"unknown weights {weights!r}; expected None, 'linear', 'quadratic' or a matrix")
        ranks = np.arange(q, dtype=float)
        values = category_scores(categories)
        if scale is None and not np.allclose(_scaled_diff(values), _scaled_diff(ranks)):
            warn(
                f"{weights} weights on the category values {np.asarray(categories).tolist()} differ from weights on "
                "their ranks (the convention of R irr, scikit-learn and statsmodels): using the values. Pass "
                "weight_scale='value' to keep them without this warning, or weight_scale='rank' to reproduce those "
                "packages.",
                ConventionWarning,
            )
        diff = _scaled_diff(ranks if scale == "rank" else values)
        return 1.0 - diff if weights == "linear" else 1.0 - diff**2
    w = np.asarray(weights, dtype=float)
    if w.shape != (q, q):
        raise AnalysisError(f"weight matrix must be {q}x{q} for categories {list(categories)}, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise AnalysisError("weight matrix contains NaN or infinite values")
    if kind == "disagreement":
        top = w.max()
        if top <= 0:
            raise AnalysisError("disagreement weights are all zero")
        return 1.0 - w / top
    if kind != "agreement":
        raise AnalysisError(f"kind must be 'agreement' or 'disagreement', got {kind!r}")
    return w


def _scaled_diff(scores: np.ndarray) -> np.ndarray:
    """|c_k - c_l| / (c_max - c_min)."""
    span = scores.max() - scores.min() if scores.size > 1 else 1.0
    return np.abs(scores[:, None] - scores[None, :]) / (span if span > 0 else 1.0)


def weights_label(weights: WeightsArg, scale: str | None = None) -> str:
    """Short printable name of a weights argument (with ``(ranks)`` when rank-based)."""
    if weights is None:
        return "identity"
    if isinstance(weights, str):
        return f"{weights} (ranks)" if scale == "rank" and weights in ("linear", "quadratic") else weights
    return "custom"
