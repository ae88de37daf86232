"""Internal validation by bootstrap optimism correction (Harrell, Lee & Mark 1996; Efron's enhanced bootstrap).

For each of ``n`` bootstrap samples the whole modelling procedure (``model_fn``)
is repeated; optimism = mean(performance in the bootstrap sample - performance of
that model in the original data); corrected = apparent - optimism. Metrics: AUC
(Mann–Whitney), calibration slope and intercept (``logit P(y) = a + b logit p``),
calibration-in-the-large (offset model) and Brier score. This is R ``rms::validate``
(``method="boot"``) for the corresponding indexes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import check_columns
from kicc_analysis.progress import progress_bar

__all__ = ["bootstrap_validate", "logistic_model", "performance", "newton_logit"]

_EPS = 1e-12


def newton_logit(y: np.ndarray, x: np.ndarray, offset: np.ndarray | None = None, max_iter: int = 50) -> np.ndarray:
    """Maximum-likelihood logistic coefficients (intercept first) by Newton–Raphson; fast, no statistics."""
    X = np.column_stack([np.ones(len(y)), x]) if x.size else np.ones((len(y), 1))
    off = 0.0 if offset is None else offset
    beta = np.zeros(X.shape[1])
    ll_old = -np.inf
    for _ in range(max_iter):
        eta = X @ beta + off
        p = expit(eta)
        # log-likelihood via logaddexp (stable); under quasi-separation it converges while beta drifts
        ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        if abs(ll - ll_old) < 1e-10 * (abs(ll) + 1.0):
            break
        ll_old = ll
        w = p * (1 - p)
        grad = X.T @ (y - p)
        hess = (X * w[:, None]).T @ X
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError as exc:
            raise AnalysisError("logistic fit: singular information (separation or collinearity)") from exc
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def performance(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, calibration intercept/slope, calibration-in-the-large and Brier of risks ``p``."""
    p = np.clip(p, _EPS, 1 - _EPS)
    n1 = y.sum()
    n0 = len(y) - n1
    ranks = stats.rankdata(p)
    auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    lp = np.log(p / (1 - p))
    a, b = newton_logit(y, lp[:, None])
    citl = newton_logit(y, np.empty((len(y), 0)), offset=lp)[0]
    return {"auc": float(auc), "calibration_intercept": float(a), "calibration_slope": float(b),
            "calibration_in_the_large": float(citl), "brier": float(np.mean((p - y) ** 2))}  # fmt: skip


def logistic_model(
    outcome: str, predictors: list[str]
) -> Callable[[pd.DataFrame], Callable[[pd.DataFrame], np.ndarray]]:
    """A ``model_fn`` for :func:`bootstrap_validate`: main-effects logistic regression on complete data."""

    def fit(train: pd.DataFrame) -> Callable[[pd.DataFrame], np.ndarray]:
        beta = newton_logit(train[outcome].to_numpy(float), train[predictors].to_numpy(float))

        def predict(frame: pd.DataFrame) -> np.ndarray:
            return expit(beta[0] + frame[predictors].to_numpy(float) @ beta[1:])

        return predict

    return fit


def bootstrap_validate(
    model_fn: Callable[[pd.DataFrame], Callable[[pd.DataFrame], np.ndarray]],
    data: pd.DataFrame,
    n: int = 200,
    *,
    outcome: str,
    seed: int | None = 0,
    confidence: float = 0.95,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Optimism-corrected performance by the bootstrap (Harrell's method).

    Parameters
    ----------
    model_fn : callable
        ``model_fn(train_frame)`` fits the model (including any selection steps) and returns
        ``predict(frame) -> risks``; see :func:`logistic_model`.
    data : DataFrame
        Complete data (impute first, or restrict to complete cases and report it).
    n : int
        Bootstrap replicates (200 is Harrell's usual choice).
    outcome : str
        Binary 0/1 outcome column.
    seed : int
        Random seed.

    Returns
    -------
    DataFrame
        One row per metric: ``apparent, optimism, corrected, boot_train_mean, boot_test_mean,
        optimism_ci_low, optimism_ci_high, n_boot`` (failed replicates are counted in ``n_failed``).
    """
    check_columns(data, [outcome], "bootstrap_validate")
    if data.isna().any().any():
        cols = data.columns[data.isna().any()].tolist()
        raise AnalysisError(f"bootstrap_validate: data has missing values in {cols}; impute or drop (and report) first")
    y = data[outcome].to_numpy(float)
    apparent = performance(y, model_fn(data)(data))
    rng = np.random.default_rng(seed)
    rows_train, rows_test = [], []
    failed = 0
    for _ in progress_bar(range(n), show=progress, desc="bootstrap", leave=False):
        idx = rng.integers(0, len(data), len(data))
        boot = data.iloc[idx]
        yb = y[idx]
        if yb.min() == yb.max():
            failed += 1
            continue
        try:
            predict = model_fn(boot)
            rows_train.append(performance(yb, predict(boot)))
            rows_test.append(performance(y, predict(data)))
        except (AnalysisError, np.linalg.LinAlgError, FloatingPointError):
            failed += 1
    if not rows_train:
        raise AnalysisError("bootstrap_validate: every bootstrap replicate failed")
    tr = pd.DataFrame(rows_train)
    te = pd.DataFrame(rows_test)
    opt = tr - te
    a = (1 - confidence) / 2
    out = pd.DataFrame(
        {
            "metric": list(apparent),
            "apparent": list(apparent.values()),
            "optimism": opt.mean().to_numpy(),
            "boot_train_mean": tr.mean().to_numpy(),
            "boot_test_mean": te.mean().to_numpy(),
            "optimism_ci_low": opt.quantile(a).to_numpy(),
            "optimism_ci_high": opt.quantile(1 - a).to_numpy(),
        }
    )
    out["corrected"] = out["apparent"] - out["optimism"]
    out["n_boot"] = len(tr)
    out["n_failed"] = failed
    return out
