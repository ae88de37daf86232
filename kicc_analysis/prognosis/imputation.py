"""Multiple imputation by chained equations (MICE) and Rubin's rules.

Conventions
-----------
* Imputation: ``statsmodels.imputation.mice.MICEData`` (chained equations,
  predictive mean matching from linear models for each incomplete variable),
  ``m`` imputed data sets taken ``n_burnin`` / ``n_between`` cycles apart.
* Pooling (:func:`pool_rubin`) follows R ``mice::pool`` (mice >= 3):
  ``Qbar`` mean of the estimates, ``Ubar`` mean within variance, ``B`` between
  variance, ``T = Ubar + (1 + 1/m) B``; ``riv = (1 + 1/m) B / Ubar``,
  ``lambda = (1 + 1/m) B / T``; Barnard–Rubin (1999) degrees of freedom
  ``df = 1 / (1/df_old + 1/df_obs)`` with ``df_old = (m - 1) / lambda^2`` and
  ``df_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)``; ``dfcom = inf``
  gives ``df_old``; fraction of missing information ``fmi = (riv + 2 / (df + 3)) / (riv + 1)``.
  CIs and p-values use the t distribution with ``df``.
* Column names: mice's ``ubar`` and ``b`` keep their names; mice's total variance ``t`` is ``total_var``
  and the Wald t statistic ``Qbar / sqrt(T)`` is ``statistic`` (mice ``summary()``), so that no column
  called ``t`` can be read as the other quantity. Reading ``t`` still gives the statistic for one
  release, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.progress import progress_bar

__all__ = ["pool_rubin", "impute", "impute_and_pool", "PooledResult", "PooledTable"]


class PooledTable(pd.DataFrame):
    """The table :func:`pool_rubin` returns (a DataFrame).

    Reading the pre-protocol column ``t`` (``table["t"]`` or ``table.t``) returns ``statistic`` with a
    :class:`DeprecationWarning`: in R ``mice::pool`` ``t`` is the total variance, here ``total_var``.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    @staticmethod
    def _warn_t() -> None:
        warnings.warn("pool_rubin: column 't' is deprecated and will be removed in the next release; the t "
                      "statistic is 'statistic' and Rubin's total variance T (mice's 't') is 'total_var'",
                      DeprecationWarning, stacklevel=3)  # fmt: skip

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key == "t":
            self._warn_t()
            return super().__getitem__("statistic").rename("t")
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        if name == "t":
            self._warn_t()
            return super().__getitem__("statistic").rename("t")
        return super().__getattr__(name)


@dataclass(frozen=True)
class PooledResult:
    """Pooled estimates (``table``: a :class:`PooledTable`, see :func:`pool_rubin`)."""

    table: pd.DataFrame
    m: int
    n_missing: pd.Series
    imputed: list[pd.DataFrame] | None = None


def pool_rubin(
    estimates: Sequence[Any],
    variances: Sequence[Any],
    *,
    dfcom: float = np.inf,
    names: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Pool m sets of estimates with Rubin's rules (R ``mice::pool`` conventions).

    Parameters
    ----------
    estimates : sequence of 1-D arrays
        Point estimates per imputed data set (m x p).
    variances : sequence of arrays
        Per data set, either the p variances or the p x p covariance matrices.
    dfcom : float
        Complete-data degrees of freedom (``n - p`` for GLMs; ``inf`` for Cox / large samples).
    names : sequence of str, optional
        Term names.
    confidence : float
        CI level.

    Returns
    -------
    PooledTable
        One row per term: ``term, estimate, se, statistic, df, p, ci_low, ci_high, riv, lambda, fmi, ubar, b,
        total_var`` (``estimate`` = Qbar, ``se = sqrt(total_var)``, ``statistic = estimate / se`` on ``df``).

    Examples
    --------
    >>> pooled = pool_rubin([[1.0], [1.2], [0.8]], [[0.04], [0.05], [0.06]])
    >>> round(float(pooled["total_var"].iloc[0]), 4)  # Ubar 0.05 + (1 + 1/3) * B 0.04
    0.1033
    """
    q = np.atleast_2d(np.asarray(estimates, dtype=float))
    v = np.asarray(variances, dtype=float)
    if v.ndim == 3:
        v = np.diagonal(v, axis1=1, axis2=2)
    v = np.atleast_2d(v)
    m = q.shape[0]
    if m < 2:
        raise AnalysisError(f"pool_rubin: need at least 2 imputations, found {m}")
    if v.shape != q.shape:
        raise AnalysisError(f"pool_rubin: estimates {q.shape} and variances {v.shape} do not match")
    qbar = q.mean(axis=0)
    ubar = v.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1 + 1 / m) * b
    riv = (1 + 1 / m) * b / ubar
    lam = (1 + 1 / m) * b / t
    with np.errstate(divide="ignore", invalid="ignore"):
        df_old = (m - 1) / lam**2
        if np.isfinite(dfcom):
            df_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
            df = df_old * df_obs / (df_old + df_obs)
        else:
            df = df_old
    df = np.where(b == 0, dfcom if np.isfinite(dfcom) else 1e12, df)
    fmi = (riv + 2 / (df + 3)) / (riv + 1)
    se = np.sqrt(t)
    tstat = qbar / se
    crit = stats.t.ppf(0.5 + confidence / 2, df)
    return PooledTable(
        {
            "term": list(names) if names is not None else [f"b{i}" for i in range(q.shape[1])],
            "estimate": qbar, "se": se, "statistic": tstat, "df": df, "p": 2 * stats.t.sf(np.abs(tstat), df),
            "ci_low": qbar - crit * se, "ci_high": qbar + crit * se, "riv": riv, "lambda": lam, "fmi": fmi,
            "ubar": ubar, "b": b, "total_var": t,
        }
    )  # fmt: skip


def impute(
    data: pd.DataFrame,
    m: int = 20,
    *,
    n_burnin: int = 10,
    n_between: int = 5,
    seed: int = 0,
    progress: bool | None = None,
) -> list[pd.DataFrame]:
    """Return ``m`` completed copies of ``data`` (all columns numeric) by chained equations."""
    from statsmodels.imputation.mice import MICEData

    non_numeric = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if non_numeric:
        raise AnalysisError(f"impute: columns must be numeric (dummy-code categories); found {non_numeric}")
    all_missing = [c for c in data.columns if data[c].isna().all()]
    if all_missing:
        raise AnalysisError(f"impute: columns with no observed value cannot be imputed: {all_missing}")
    frame = data.reset_index(drop=True).astype(float)
    frame.columns = [f"v{i}" for i in range(frame.shape[1])]  # MICEData needs formula-safe names
    # MICEData draws from the legacy global NumPy generator: seed it and restore its state afterwards
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        mice_data = MICEData(frame)
        mice_data.update_all(n_burnin)
        out = []
        for _ in progress_bar(range(m), show=progress, desc="MICE", leave=False):
            mice_data.update_all(n_between)
            done = mice_data.data.copy()
            done.columns = data.columns
            done.index = data.index
            out.append(done)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return out


def _extract(result: Any) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """(estimates, covariance, names, dfcom) from a LogisticResult / CoxResult / (params, cov) tuple."""
    from kicc_analysis.prognosis.cox import CoxResult
    from kicc_analysis.prognosis.logistic import LogisticResult

    if isinstance(result, LogisticResult):
        res = result.model
        return (np.asarray(res.params), np.asarray(res.cov_params()), list(result.table["term"]),
                float(res.df_resid))  # fmt: skip
    if isinstance(result, CoxResult):
        return result.fit.beta, result.fit.var, list(result.covariates), np.inf
    if isinstance(result, tuple) and len(result) in (2, 3):
        params = result[0]
        names = list(params.index) if isinstance(params, pd.Series) else [f"b{i}" for i in range(len(params))]
        dfcom = float(result[2]) if len(result) == 3 else np.inf
        return np.asarray(params, dtype=float), np.asarray(result[1], dtype=float), names, dfcom
    raise AnalysisError(
        "impute_and_pool: analysis must return a LogisticResult, CoxResult or (params, cov[, dfcom]) tuple; "
        f"found {type(result).__name__}"
    )


def impute_and_pool(
    data: pd.DataFrame,
    analysis: Callable[[pd.DataFrame], Any],
    *,
    m: int = 20,
    n_burnin: int = 10,
    n_between: int = 5,
    seed: int = 0,
    keep_imputed: bool = False,
    confidence: float = 0.95,
    progress: bool | None = None,
) -> PooledResult:
    """Multiply impute ``data``, run ``analysis`` on each completed set and pool with Rubin's rules.

    Parameters
    ----------
    data : DataFrame
        Numeric columns: outcome(s), predictors and auxiliary variables for the imputation model.
    analysis : callable
        ``analysis(completed_frame)`` returning a :class:`LogisticResult`, :class:`CoxResult`
        or ``(params, cov[, dfcom])``; e.g. ``lambda d: logistic(d, "death", ["age", "ct"])``.
    m : int
        Number of imputations (>= 2; 20 or the % of incomplete cases is typical).
    n_burnin, n_between : int
        Chained-equation cycles before the first and between successive imputations.
    seed : int
        Random seed (results are reproducible).

    Returns
    -------
    PooledResult
    """
    imputed = impute(data, m, n_burnin=n_burnin, n_between=n_between, seed=seed, progress=progress)
    ests, covs, names, dfcom = [], [], None, np.inf
    for frame in imputed:
        est, cov, nm, dfc = _extract(analysis(frame))
        ests.append(est)
        covs.append(cov)
        names, dfcom = nm, dfc
    table = pool_rubin(ests, covs, dfcom=dfcom, names=names, confidence=confidence)
    return PooledResult(table, m, data.isna().sum(), imputed if keep_imputed else None)
