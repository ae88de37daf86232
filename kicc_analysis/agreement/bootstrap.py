"""Vectorised subject bootstrap and the shared :class:`~kicc_analysis.results.Estimate` builder.

Every coefficient of this package is a smooth function of *sums over subjects* of per-subject quantities
(category counts, pair indicators...). A bootstrap replicate that resamples subjects with replacement is therefore
fully described by how many times each subject was drawn: a ``(B, n)`` matrix of draw counts ``W``. Replicate sums
are then one matrix product ``W @ F`` instead of ``B`` Python-level recomputations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate


def draw_counts(n: int, n_boot: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Return a ``(n_boot, n)`` float matrix: how often each of ``n`` subjects is drawn in each replicate."""
    if n < 2:
        raise AnalysisError(f"bootstrap needs at least 2 subjects, got {n}")
    if n_boot < 1:
        raise AnalysisError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def percentile_ci(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Percentile interval and bootstrap SE of finite replicates; returns ``(low, high, se, n_used)``."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return np.nan, np.nan, np.nan, int(finite.size)
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(np.std(finite, ddof=1)), int(finite.size)


def bootstrap_replicates(
    statistic: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Evaluate ``statistic(W)`` for a ``(n_boot, n)`` draw-count matrix ``W`` (vectorised over replicates)."""
    W = draw_counts(n, n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(statistic(W), dtype=float)


def make_estimate(
    estimate: float,
    se: float,
    *,
    n: int,
    method: str,
    convention: str,
    confidence: float = 0.95,
    df: float | None = None,
    se_test: float | None = None,
    null: float = 0.0,
    bounds: tuple[float, float] | None = (-1.0, 1.0),
    extra: Mapping[str, Any] | None = None,
) -> Estimate:
    """Assemble an :class:`Estimate` with a Wald interval and test.

    Parameters
    ----------
    estimate, se : float
        Point estimate and its (non-null) standard error.
    df : float, optional
        Degrees of freedom of a Student t reference (Gwet's convention, ``n - 1``); normal when omitted.
    se_test : float, optional
        Standard error under the null hypothesis used for ``z``/``p`` (e.g. Fleiss-Cohen-Everitt ASE0); ``se``
        when omitted.
    bounds : (low, high) or None
        The interval is clipped to these bounds (kappa-type coefficients live in [-1, 1]).
    """
    if confidence <= 0 or confidence >= 1:
        raise AnalysisError(f"confidence must be in (0, 1), got {confidence}")
    # scipy.special's t and normal functions: the same values as scipy.stats' ppf/sf, without its ~0.1 ms overhead
    q = special.stdtrit(df, 0.5 + confidence / 2) if df is not None else special.ndtri(0.5 + confidence / 2)
    low, high = estimate - q * se, estimate + q * se
    if bounds is not None and np.isfinite(low):
        low, high = max(bounds[0], low), min(bounds[1], high)
    s_test = se if se_test is None else se_test
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (estimate - null) / s_test if s_test and np.isfinite(s_test) and s_test > 0 else np.nan
    if np.isfinite(z):
        p = 2 * special.stdtr(df, -abs(z)) if df is not None else 2 * special.ndtr(-abs(z))
    else:
        p = np.nan
    return Estimate(
        estimate=float(estimate),
        se=float(se),
        ci_low=float(low),
        ci_high=float(high),
        z=float(z),
        p=float(p),
        n=int(n),
        method=method,
        convention=convention,
        confidence=confidence,
        extra=dict(extra or {}),
        statistic=float(z),
        statistic_name=("t" if df is not None else "z") if np.isfinite(z) else "",
        df=float(df) if df is not None else np.nan,
    )


def with_bootstrap(
    est: Estimate,
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_boot: int,
    seed: int | np.random.Generator | None,
) -> Estimate:
    """Return ``est`` with bootstrap percentile limits added to ``extra`` (``boot_ci_low/high``, ``boot_se``)."""
    if not n_boot:
        return est
    reps = bootstrap_replicates(statistic, n, n_boot, seed)
    low, high, se, used = percentile_ci(reps, est.confidence)
    extra = dict(est.extra)
    extra.update(boot_ci_low=low, boot_ci_high=high, boot_se=se, boot_replicates=used, n_boot=n_boot)
    return Estimate(**{**est.as_dict(), "extra": extra})
