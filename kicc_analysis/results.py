"""Small frozen result containers shared by the analysis modules.

Every statistic that comes with uncertainty is returned as an :class:`Estimate`
(``estimate, se, ci_low, ci_high, z, p, n, method, convention``) so that
tables can be assembled uniformly with :meth:`Estimate.to_frame` or
:func:`estimates_to_frame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its large-sample (or bootstrap) uncertainty.

    Attributes
    ----------
    estimate : float
        The point estimate.
    se : float
        Standard error (NaN when not defined).
    ci_low, ci_high : float
        Confidence limits at ``confidence``.
    z : float
        Test statistic of H0: parameter = null value (NaN when not defined).
    p : float
        Two-sided p-value of that test.
    n : int
        Number of subjects (or observations) that entered the estimate.
    method : str
        Short name of the statistic, e.g. ``"cohen_kappa"``.
    convention : str
        Which published formula or library convention was followed.
    confidence : float
        Confidence level of ``ci_low``/``ci_high``.
    extra : Mapping[str, Any]
        Further named quantities (per-category values, variance parts...).
    """

    estimate: float
    se: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    z: float = NAN
    p: float = NAN
    n: int = 0
    method: str = ""
    convention: str = ""
    confidence: float = 0.95
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the scalar fields as a flat dict (``extra`` left out)."""
        values = asdict(self)
        values.pop("extra")
        return values

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row DataFrame of the scalar fields."""
        return pd.DataFrame([self.as_dict()])

    def __float__(self) -> float:
        return float(self.estimate)


def estimates_to_frame(
    estimates: Mapping[str, Estimate] | Iterable[Estimate], index_name: str = "name"
) -> pd.DataFrame:
    """Stack several estimates into one tidy table.

    Parameters
    ----------
    estimates : mapping of name to Estimate, or iterable of Estimate
        A mapping gives the row labels; otherwise ``method`` is used.
    index_name : str
        Name of the label column.
    """
    if isinstance(estimates, Mapping):
        rows = [{index_name: name, **est.as_dict()} for name, est in estimates.items()]
    else:
        rows = [{index_name: est.method, **est.as_dict()} for est in estimates]
    return pd.DataFrame(rows)
