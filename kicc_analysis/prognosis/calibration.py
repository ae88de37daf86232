"""Calibration of predicted risks for a binary outcome.

Conventions
-----------
* Calibration-in-the-large (``citl``): intercept ``a`` of ``logit P(y) = a + offset(logit p)``
  (Steyerberg, Clinical Prediction Models 2nd ed. §15.3); 0 is perfect.
* Calibration slope and its intercept: ``logit P(y) = a + b logit p`` (Cox 1958; R
  ``rms::val.prob`` "Intercept"/"Slope"); slope 1 is perfect, < 1 means overfitting.
* Brier score ``mean((p - y)^2)`` and scaled Brier ``1 - Brier / (ybar (1 - ybar))``.
* O/E ratio ``sum(y) / sum(p)``.
* Binned curve: ``bins`` groups of equal size by predicted risk (quantile cut-points),
  observed proportion with a Wilson CI.
* Smoothed curve: LOWESS of y on p (``frac=2/3``, no robustness iterations, as
  ``rms::val.prob``); ICI / E50 / E90 / Emax (Austin & Steyerberg 2019) are the mean,
  median, 90th percentile and max of ``|smoothed - p|``; optional bootstrap band.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_binary, complete_mask
from kicc_analysis.results import Estimate

__all__ = ["Calibration", "calibration", "calibration_slope", "calibration_in_the_large", "brier"]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _glm(y: np.ndarray, x: np.ndarray | None, offset: np.ndarray | None) -> Any:
    import statsmodels.api as sm

    exog = np.ones((len(y), 1)) if x is None else sm.add_constant(x, has_constant="add")
    return sm.GLM(y, exog, family=sm.families.Binomial(), offset=offset).fit()


def calibration_in_the_large(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Intercept of the logistic model with ``logit p`` as offset (0 = perfect)."""
    res = _glm(y, None, _logit(p))
    return _estimate(res, 0, "calibration_in_the_large", "logit P(y) = a + offset(logit p)", len(y), 0.0, confidence)


def calibration_slope(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> tuple[Estimate, Estimate]:
    """(intercept, slope) of ``logit P(y) = a + b logit p`` (slope test against 1)."""
    res = _glm(y, _logit(p), None)
    conv = "logit P(y) = a + b logit p (rms::val.prob)"
    return (
        _estimate(res, 0, "calibration_intercept", conv, len(y), 0.0, confidence),
        _estimate(res, 1, "calibration_slope", conv, len(y), 1.0, confidence),
    )


def _estimate(res: Any, i: int, method: str, conv: str, n: int, null: float, confidence: float) -> Estimate:
    b, se = float(res.params[i]), float(res.bse[i])
    zc = stats.norm.ppf(0.5 + confidence / 2)
    z = (b - null) / se
    return Estimate(b, se, b - zc * se, b + zc * se, z, float(2 * stats.norm.sf(abs(z))), n, method, conv, confidence)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score mean((p - y)^2)."""
    return float(np.mean((p - y) ** 2))


def _wilson(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    ph = k / n
    den = 1 + z**2 / n
    centre = (ph + z**2 / (2 * n)) / den
    half = z * np.sqrt(ph * (1 - ph) / n + z**2 / (4 * n**2)) / den
    return np.minimum(centre - half, ph), np.maximum(centre + half, ph)


def _lowess(y: np.ndarray, p: np.ndarray, grid: np.ndarray, frac: float) -> np.ndarray:
    from statsmodels.nonparametric.smoothers_lowess import lowess

    fitted = lowess(y, p, frac=frac, it=0, return_sorted=True)
    xs, ys = fitted[:, 0], fitted[:, 1]
    xs, idx = np.unique(xs, return_index=True)
    return np.interp(grid, xs, ys[idx])


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibration`.

    ``summary`` – one row per statistic (Estimate fields); ``binned`` – per risk group
    ``n, mean_predicted, observed, ci_low, ci_high``; ``smoothed`` – ``predicted, observed``
    (+ ``ci_low, ci_high`` with bootstrap).
    """

    summary: pd.DataFrame
    binned: pd.DataFrame
    smoothed: pd.DataFrame
    estimates: dict[str, Estimate]


def calibration(
    y: Any,
    p: Any,
    *,
    bins: int = 10,
    frac: float = 2 / 3,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Calibration:
    """Calibration statistics and curves of predicted risks ``p`` for outcomes ``y``.

    Parameters
    ----------
    y : array-like of 0/1
        Observed outcome.
    p : array-like
        Predicted risk in (0, 1).
    bins : int
        Number of equal-size risk groups of the binned curve.
    frac : float
        LOWESS span.
    n_boot : int
        Bootstrap replicates for a pointwise band of the smoothed curve (0 = none).
    confidence : float
        CI level.

    Returns
    -------
    Calibration
    """
    yy = as_float_array(y, "y")
    pp = as_float_array(p, "p")
    keep = complete_mask("calibration", y=yy, p=pp)
    yy, pp = check_binary(yy[keep], "y").astype(float), pp[keep]
    if np.any((pp <= 0) | (pp >= 1)):
        raise AnalysisError("calibration: predicted risks must lie strictly between 0 and 1")
    z = stats.norm.ppf(0.5 + confidence / 2)
    citl = calibration_in_the_large(yy, pp, confidence)
    icpt, slope = calibration_slope(yy, pp, confidence)
    b = brier(yy, pp)
    ybar = yy.mean()
    grid = np.linspace(np.quantile(pp, 0.01), np.quantile(pp, 0.99), 100)
    smooth_at_p = _lowess(yy, pp, pp, frac)
    err = np.abs(smooth_at_p - pp)
    est = {
        "calibration_in_the_large": citl,
        "calibration_intercept": icpt,
        "calibration_slope": slope,
        "brier": Estimate(b, n=len(yy), method="brier", convention="mean((p - y)^2)"),
        "scaled_brier": Estimate(
            1 - b / (ybar * (1 - ybar)), n=len(yy), method="scaled_brier", convention="1 - Brier / Brier(prevalence)"
        ),  # fmt: skip
        "oe_ratio": Estimate(float(yy.sum() / pp.sum()), n=len(yy), method="oe_ratio", convention="sum(y)/sum(p)"),
        "ici": Estimate(float(err.mean()), n=len(yy), method="ici", convention="Austin & Steyerberg 2019, LOWESS"),
        "e50": Estimate(float(np.median(err)), n=len(yy), method="e50", convention="median |smoothed - p|"),
        "e90": Estimate(float(np.quantile(err, 0.9)), n=len(yy), method="e90", convention="90th pct |smoothed - p|"),
        "emax": Estimate(float(err.max()), n=len(yy), method="emax", convention="max |smoothed - p|"),
    }
    cuts = np.unique(np.quantile(pp, np.linspace(0, 1, bins + 1)))
    g = np.clip(np.searchsorted(cuts, pp, side="left"), 1, len(cuts) - 1) - 1
    k = len(cuts) - 1
    n_g = np.bincount(g, minlength=k).astype(float)
    ok = n_g > 0
    obs = np.bincount(g, weights=yy, minlength=k)[ok]
    mp = np.bincount(g, weights=pp, minlength=k)[ok] / n_g[ok]
    lo, hi = _wilson(obs, n_g[ok], z)
    binned = pd.DataFrame(
        {"n": n_g[ok].astype(int), "mean_predicted": mp, "observed": obs / n_g[ok], "ci_low": lo, "ci_high": hi}
    )
    smoothed = pd.DataFrame({"predicted": grid, "observed": _lowess(yy, pp, grid, frac)})
    if n_boot:
        rng = np.random.default_rng(seed)
        curves = np.empty((n_boot, len(grid)))
        for i in range(n_boot):
            idx = rng.integers(0, len(yy), len(yy))
            curves[i] = _lowess(yy[idx], pp[idx], grid, frac)
        a = (1 - confidence) / 2
        smoothed["ci_low"], smoothed["ci_high"] = np.nanquantile(curves, [a, 1 - a], axis=0)
    summary = pd.DataFrame([{"statistic": k, **v.as_dict()} for k, v in est.items()])
    return Calibration(summary, binned, smoothed, est)
