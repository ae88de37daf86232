"""Logistic regression with publication odds-ratio tables, and the Hosmer–Lemeshow test.

Conventions
-----------
* Fitting by maximum likelihood with ``statsmodels`` ``Logit`` (Newton); the
  estimates match Stata ``logit`` and SAS ``PROC LOGISTIC`` to their printed digits.
* Odds-ratio CIs are Wald intervals ``exp(b +- z * se)`` (SAS "Wald Confidence
  Interval for Odds Ratios", Stata ``logit, or``); p-values are Wald z tests.
* Likelihood-ratio test of the model against the intercept-only model.
* Categorical predictors listed in ``categorical`` are dummy-coded against their
  first (sorted) level, or against ``reference={col: level}``.
* :func:`hosmer_lemeshow`: subjects are grouped by the quantiles of the
  predicted probability (``groups`` groups; cut-points at the
  ``k/groups`` quantiles, lowest included, tied probabilities always fall in the
  same group), which is R ``ResourceSelection::hoslem.test``; statistic
  ``sum (O - E)^2 / (E (1 - E/n))`` on ``groups - 2`` df.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_binary, check_columns, complete_mask
from kicc_analysis.results import Estimate

__all__ = ["LogisticResult", "logistic", "hosmer_lemeshow", "fit_logit", "design_matrix"]


def design_matrix(
    frame: pd.DataFrame,
    predictors: Sequence[str],
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    levels: Mapping[str, list[Any]] | None = None,
) -> tuple[pd.DataFrame, dict[str, list[Any]]]:
    """Numeric design matrix (no intercept) with categorical predictors dummy-coded.

    Returns the matrix (NaN rows kept) and the level lists used, so that the same
    coding can be applied to new data.
    """
    reference = dict(reference or {})
    levels = dict(levels or {})
    cols = {}
    for name in predictors:
        col = frame[name]
        if name in categorical:
            if name not in levels:
                lv = sorted(col.dropna().unique().tolist())
                if name in reference:
                    if reference[name] not in lv:
                        raise AnalysisError(f"reference level {reference[name]!r} of {name!r} not in data levels {lv}")
                    lv.remove(reference[name])
                    lv.insert(0, reference[name])
                levels[name] = lv
            for level in levels[name][1:]:
                dummy = (col == level).astype(float)
                dummy[col.isna()] = np.nan
                cols[f"{name}[{level}]"] = dummy
        else:
            try:
                cols[name] = pd.to_numeric(col, errors="raise").astype(float)
            except (TypeError, ValueError) as exc:
                raise AnalysisError(f"predictor {name!r} is not numeric; list it in categorical=... ({exc})") from exc
    return pd.DataFrame(cols, index=frame.index), levels


def fit_logit(y: np.ndarray, x: np.ndarray, names: Sequence[str] | None = None):
    """Fit a logistic model with intercept on clean arrays; returns a statsmodels result."""
    import statsmodels.api as sm

    exog = sm.add_constant(x, has_constant="add")
    if names is not None:
        exog = pd.DataFrame(exog, columns=["(Intercept)", *names])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = sm.Logit(y, exog).fit(disp=0, method="newton", maxiter=100)
        except np.linalg.LinAlgError as exc:
            raise AnalysisError("logistic: singular design (collinear predictors or perfect separation)") from exc
    if not res.mle_retvals.get("converged", True):
        warnings.warn("logistic: the fit did not converge (possible separation)", RuntimeWarning, stacklevel=3)
    return res


def _or_table(res: Any, names: list[str], confidence: float) -> pd.DataFrame:
    z = stats.norm.ppf(0.5 + confidence / 2)
    b = np.asarray(res.params)
    se = np.asarray(res.bse)
    with np.errstate(over="ignore"):  # separated fits give huge ORs (inf), flagged by ``converged``
        return pd.DataFrame(
            {
                "term": ["(Intercept)", *names],
                "coef": b,
                "se": se,
                "z": b / se,
                "p": 2 * stats.norm.sf(np.abs(b / se)),
                "or": np.exp(b),
                "or_ci_low": np.exp(b - z * se),
                "or_ci_high": np.exp(b + z * se),
            }
        )


@dataclass
class LogisticResult:
    """A fitted logistic model.

    Attributes
    ----------
    table : DataFrame
        Multivariable table: ``term, coef, se, z, p, or, or_ci_low, or_ci_high``.
    univariable : DataFrame or None
        One model per predictor (same complete rows), same columns.
    llf, llnull, lr_chisq, lr_df, lr_p, aic, bic, prsquared : float
        Model fit statistics (``prsquared`` = McFadden's pseudo-R^2).
    n, events, n_dropped : int
    converged : bool
        False when the Newton iterations did not converge (typically separation): do not report the ORs.
    """

    table: pd.DataFrame
    univariable: pd.DataFrame | None
    llf: float
    llnull: float
    lr_chisq: float
    lr_df: int
    lr_p: float
    aic: float
    bic: float
    prsquared: float
    n: int
    events: int
    n_dropped: int
    outcome: str
    predictors: list[str]
    categorical: list[str]
    levels: dict[str, list[Any]]
    confidence: float
    model: Any = field(repr=False)
    converged: bool = True

    def side_by_side(self, decimals: int = 2) -> pd.DataFrame:
        """Univariable and multivariable ORs side by side, formatted 'OR (low–high)' with p."""

        def fmt(t: pd.DataFrame) -> pd.DataFrame:
            t = t[t["term"] != "(Intercept)"]
            return pd.DataFrame(
                {
                    "term": t["term"],
                    "or_ci": [
                        f"{o:.{decimals}f} ({lo:.{decimals}f}–{hi:.{decimals}f})"
                        for o, lo, hi in zip(t["or"], t["or_ci_low"], t["or_ci_high"], strict=True)
                    ],
                    "p": t["p"].map(lambda v: "<0.001" if v < 0.001 else f"{v:.3f}"),
                }
            )

        multi = fmt(self.table).rename(columns={"or_ci": "multivariable OR (95% CI)", "p": "multivariable p"})
        if self.univariable is None:
            return multi.reset_index(drop=True)
        uni = fmt(self.univariable).rename(columns={"or_ci": "univariable OR (95% CI)", "p": "univariable p"})
        return uni.merge(multi, on="term", how="outer", sort=False).reset_index(drop=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted probabilities for new rows (NaN where a predictor is missing)."""
        x, _ = design_matrix(frame, self.predictors, self.categorical, levels=self.levels)
        lin = self.table["coef"].iloc[0] + x.to_numpy() @ self.table["coef"].iloc[1:].to_numpy()
        return 1.0 / (1.0 + np.exp(-lin))


def logistic(
    cohort: pd.DataFrame,
    outcome: str,
    predictors: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    univariable: bool = True,
    confidence: float = 0.95,
) -> LogisticResult:
    """Fit a multivariable logistic model (and the univariable ones) on complete cases.

    Parameters
    ----------
    cohort : DataFrame
        One row per patient.
    outcome : str
        Binary 0/1 outcome column (e.g. ``crito_icu``).
    predictors : sequence of str
        Predictor columns; numeric unless listed in ``categorical``.
    categorical : sequence of str
        Predictors to dummy-code (reference = first sorted level or ``reference``).
    reference : mapping, optional
        Reference level per categorical predictor.
    univariable : bool
        Also fit one model per predictor on the same complete rows.
    confidence : float
        Confidence level of the Wald OR intervals.

    Returns
    -------
    LogisticResult

    Notes
    -----
    Rows with a missing outcome or predictor are skipped with a
    :class:`~kicc_analysis.prognosis._checks.MissingDataWarning` (counts in
    ``n_dropped``); use :func:`kicc_analysis.prognosis.impute_and_pool` to keep them.
    """
    predictors = list(predictors)
    categorical = [c for c in categorical if c in predictors]
    check_columns(cohort, [outcome, *predictors], "logistic")
    x, levels = design_matrix(cohort, predictors, categorical, reference)
    y = pd.to_numeric(cohort[outcome], errors="coerce").to_numpy(dtype=float)
    keep = complete_mask("logistic", **{outcome: y}, predictors=x.to_numpy())
    y = check_binary(y[keep], outcome)
    xk = x.to_numpy()[keep]
    names = list(x.columns)
    res = fit_logit(y, xk, names)
    table = _or_table(res, names, confidence)
    uni = None
    if univariable:
        rows = []
        for name in predictors:
            cols = [i for i, c in enumerate(names) if c == name or c.startswith(f"{name}[")]
            r = fit_logit(y, xk[:, cols], [names[i] for i in cols])
            rows.append(_or_table(r, [names[i] for i in cols], confidence).iloc[1:])
        uni = pd.concat(rows, ignore_index=True)
    lr = 2 * (res.llf - res.llnull)
    df = xk.shape[1]
    return LogisticResult(
        table=table,
        univariable=uni,
        llf=float(res.llf),
        llnull=float(res.llnull),
        lr_chisq=float(lr),
        lr_df=df,
        lr_p=float(stats.chi2.sf(lr, df)),
        aic=float(res.aic),
        bic=float(res.bic),
        prsquared=float(res.prsquared),
        n=int(keep.sum()),
        events=int(y.sum()),
        n_dropped=int((~keep).sum()),
        outcome=outcome,
        predictors=predictors,
        categorical=categorical,
        levels=levels,
        confidence=confidence,
        model=res,
        converged=bool(res.mle_retvals.get("converged", True)) and bool(np.all(np.isfinite(res.bse))),
    )


def hosmer_lemeshow(y: Any, p: Any, groups: int = 10) -> Estimate:
    """Hosmer–Lemeshow goodness-of-fit test (quantile groups of predicted risk).

    Parameters
    ----------
    y : array-like of 0/1
        Observed outcomes.
    p : array-like
        Predicted probabilities in (0, 1).
    groups : int
        Number of risk groups (default deciles).

    Returns
    -------
    Estimate
        ``estimate`` = chi-square statistic, ``p`` on ``groups - 2`` df; ``extra["table"]``
        has observed and expected events per group.
    """
    yy = as_float_array(y, "y")
    pp = as_float_array(p, "p")
    keep = complete_mask("hosmer_lemeshow", y=yy, p=pp)
    yy, pp = check_binary(yy[keep], "y"), pp[keep]
    if np.any((pp <= 0) | (pp >= 1)):
        raise AnalysisError("hosmer_lemeshow: predicted probabilities must lie strictly between 0 and 1")
    if groups < 3:
        raise AnalysisError(f"hosmer_lemeshow: groups must be >= 3, found {groups}")
    cuts = np.unique(np.quantile(pp, np.linspace(0, 1, groups + 1)))
    g = np.clip(np.searchsorted(cuts, pp, side="left"), 1, len(cuts) - 1) - 1
    k = len(cuts) - 1
    n = np.bincount(g, minlength=k).astype(float)
    obs = np.bincount(g, weights=yy, minlength=k)
    exp = np.bincount(g, weights=pp, minlength=k)
    ok = n > 0
    n, obs, exp = n[ok], obs[ok], exp[ok]
    chisq = float(np.sum((obs - exp) ** 2 / (exp * (1 - exp / n))))
    df = int(ok.sum()) - 2
    table = pd.DataFrame({"n": n, "observed": obs, "expected": exp})
    return Estimate(
        chisq,
        p=float(stats.chi2.sf(chisq, df)),
        n=len(yy),
        method="hosmer_lemeshow",
        convention=f"quantile groups of predicted risk (R ResourceSelection::hoslem.test), df = {df}",
        extra={"df": df, "table": table},
    )
