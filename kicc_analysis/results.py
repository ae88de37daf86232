"""Small frozen result containers shared by the analysis modules.

Every statistic that comes with uncertainty is returned as an :class:`Estimate` — one protocol for every
analysis: ``estimate, se, ci_low, ci_high, p, n, method, convention`` (plus ``confidence``, the test statistic
``statistic`` with its ``statistic_name`` and ``df``, and ``extra``), :meth:`Estimate.to_frame` for a one-row table,
:meth:`Estimate.summary` (also ``str(est)``) for a readable printout, and :func:`estimates_to_frame` to stack several.

``z`` is the Wald/normal or t test statistic of the estimates that have one (kept for backward compatibility; the
same value is in ``statistic``). A test statistic of another kind (chi-square, F) is never put in ``z``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

NAN = math.nan

__all__ = ["Estimate", "KendallW", "estimates_to_frame"]


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}"
    return str(value)


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
        Wald (normal or Student t) statistic of H0: parameter = null value (NaN when the estimate has no such test).
    p : float
        Two-sided p-value of the test.
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
    statistic : float
        The test statistic behind ``p`` (equal to ``z`` for Wald tests; chi-square, F... otherwise).
    statistic_name : str
        Its name: ``"z"``, ``"t"``, ``"chi-square"``, ``"F"`` (empty when there is no test).
    df : float
        Degrees of freedom of the reference distribution (NaN for the normal).

    Examples
    --------
    >>> est = Estimate(0.5, se=0.1, ci_low=0.3, ci_high=0.7, z=5.0, p=5.7e-07, n=40, method="demo",
    ...                convention="Wald", statistic=5.0, statistic_name="z")
    >>> print(est)
    demo: 0.5000 (95% CI 0.3000 to 0.7000), SE 0.1000, z = 5.0000, p = 5.7e-07, n = 40
      convention: Wald
    >>> list(est.to_frame().columns[:8])
    ['estimate', 'se', 'ci_low', 'ci_high', 'z', 'p', 'n', 'method']
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
    statistic: float = NAN
    statistic_name: str = ""
    df: float = NAN

    def as_dict(self) -> dict[str, Any]:
        """Return the scalar fields as a flat dict (``extra`` left out)."""
        values = {f.name: object.__getattribute__(self, f.name) for f in fields(self)}
        values.pop("extra")
        return values

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row DataFrame of the scalar fields."""
        return pd.DataFrame([self.as_dict()])

    def _test_text(self, digits: int = 4) -> str:
        stat, name = self.statistic, self.statistic_name
        if not name or math.isnan(stat):
            z = object.__getattribute__(self, "z")
            if math.isnan(z):
                return ""
            stat, name = z, "z"
        df = f"({_fmt(float(self.df), 0) if float(self.df).is_integer() else _fmt(float(self.df), 1)})"
        p = float(self.p)
        p_text = "NaN" if math.isnan(p) else f"{p:.3g}"
        return f"{name}{df if not math.isnan(self.df) else ''} = {_fmt(float(stat), digits)}, p = {p_text}"

    def summary(self, digits: int = 4) -> str:
        """A readable summary: estimate with CI, SE, test, n and the convention followed.

        Parameters
        ----------
        digits : int
            Decimals shown.
        """
        parts = [f"{self.method or 'estimate'}: {_fmt(float(self.estimate), digits)}"]
        if not (math.isnan(self.ci_low) and math.isnan(self.ci_high)):
            level = f"{100 * self.confidence:g}%"
            parts[0] += f" ({level} CI {_fmt(float(self.ci_low), digits)} to {_fmt(float(self.ci_high), digits)})"
        if not math.isnan(self.se):
            parts.append(f"SE {_fmt(float(self.se), digits)}")
        test = self._test_text(digits)
        if test:
            parts.append(test)
        parts.append(f"n = {self.n}")
        text = ", ".join(parts)
        if self.convention:
            text += f"\n  convention: {self.convention}"
        return text

    def __str__(self) -> str:
        return self.summary()

    def __float__(self) -> float:
        return float(self.estimate)


@dataclass(frozen=True, repr=False, eq=False)
class KendallW(Estimate):
    """Kendall's W: an :class:`Estimate` whose test is the chi-square ``m (n - 1) W`` on ``n - 1`` df.

    ``chi_square`` holds the statistic (also ``statistic``). Reading ``z`` still returns it for one release, with a
    :class:`DeprecationWarning`; ``to_frame()`` leaves ``z`` empty.
    """

    chi_square: float = NAN
    tie_correction: bool = True

    def __getattribute__(self, name: str) -> Any:
        if name == "z":
            warnings.warn(
                "kendall_w(...).z holds the chi-square statistic and is deprecated; use .chi_square (or .statistic)",
                DeprecationWarning,
                stacklevel=2,
            )
        return super().__getattribute__(name)

    def _raw(self) -> dict[str, Any]:
        return {f.name: object.__getattribute__(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._raw().items() if k != "z")
        return f"KendallW({body})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._raw() == other._raw()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """Scalar fields; ``z`` is NaN here (the chi-square is in ``chi_square``/``statistic``)."""
        values = super().as_dict()
        values["z"] = NAN
        return values


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
