"""Cox proportional-hazards regression, PH diagnostics and survival prediction metrics.

Conventions
-----------
* ``ties="efron"`` (default, as R ``coxph``) or ``"breslow"`` (SAS ``PROC PHREG``
  default, Stata ``stcox`` default). Both reproduce R ``survival::coxph`` to 7
  digits, including strata and delayed entry (``entry=``, counting-process data).
* Wald CI for the hazard ratio: ``exp(coef +- z * se)``; p-values from the Wald z.
  Likelihood-ratio test against the null model (all coefficients 0) on p df.
* Harrell's C uses the linear predictor (within strata, pairs in different
  strata are not compared); see :mod:`kicc_analysis.prognosis.concordance`.
* :func:`ph_test` reproduces R ``cox.zph`` from **survival >= 3.0** (the score
  test for adding ``x * g(t)``, ``transform="km"`` i.e. g(t) = 1 - KM(t-)) by default;
  ``method="schoenfeld"`` gives the survival 2.x approximation based on scaled Schoenfeld
  residuals, which lifelines ``proportional_hazard_test`` implements (lifelines' own ``"km"`` and
  ``"rank"`` transforms are ``"lifelines_km"`` and ``"lifelines_rank"`` here).
* Survival predictions use the Breslow (``ties="breslow"``) or Efron-adjusted
  (``ties="efron"``, as R ``survfit.coxph``) baseline cumulative hazard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import check_columns, check_survival, complete_mask
from kicc_analysis.prognosis._coxcore import CoxFit, fit_cox, schoenfeld_residuals, time_interaction_info
from kicc_analysis.prognosis._km import product_limit, step_right
from kicc_analysis.prognosis.concordance import (
    HARRELL_CONVENTION,
    Concordance,
    ConcordanceCounts,
    concordance_counts,
    concordance_estimate,
)

__all__ = ["CoxResult", "cox", "ph_test"]


@dataclass
class CoxResult:
    """A fitted Cox model.

    Attributes
    ----------
    table : DataFrame
        One row per covariate: ``coef, hr, se, z, p, hr_ci_low, hr_ci_high``.
    loglik, loglik_null : float
        Log partial likelihood at the estimate and at beta = 0.
    lr_chisq, lr_df, lr_p : float, int, float
        Likelihood-ratio test of all coefficients = 0.
    score_chisq : float
        Score (log-rank) test at beta = 0.
    concordance : Concordance
        Harrell's C of the linear predictor (within strata), an ``Estimate``.
    n, events, n_dropped : int
        Rows used, events, rows skipped for missing values.
    """

    table: pd.DataFrame
    loglik: float
    loglik_null: float
    lr_chisq: float
    lr_df: int
    lr_p: float
    score_chisq: float
    wald_chisq: float
    n: int
    events: int
    n_dropped: int
    ties: str
    covariates: list[str]
    confidence: float
    fit: CoxFit = field(repr=False)
    data: dict[str, Any] = field(repr=False, default_factory=dict)
    _concordance: Concordance | None = field(default=None, repr=False)

    @property
    def concordance(self) -> Concordance:
        """Harrell's C of the linear predictor within strata (computed on first access, O(n log^2 n))."""
        if self._concordance is None:
            d = self.data
            counts = _harrell_within_strata(d["time"], d["event"], self.linear_predictor(), d["strata"])
            self._concordance = concordance_estimate(
                counts, self.n, method="harrell_c", confidence=self.confidence,
                convention=HARRELL_CONVENTION + ("; pairs within strata" if d["strata"] is not None else ""),
            )  # fmt: skip
        return self._concordance

    @property
    def coef(self) -> np.ndarray:
        return self.fit.beta

    @property
    def var(self) -> np.ndarray:
        return self.fit.var

    def summary(self) -> pd.DataFrame:
        """Model-level statistics as a one-row table."""
        return pd.DataFrame(
            [
                {
                    "n": self.n,
                    "events": self.events,
                    "n_dropped": self.n_dropped,
                    "loglik": self.loglik,
                    "lr_chisq": self.lr_chisq,
                    "lr_df": self.lr_df,
                    "lr_p": self.lr_p,
                    "concordance": self.concordance.estimate,
                    "concordance_se": self.concordance.se,
                    "ties": self.ties,
                }
            ]
        )

    def __str__(self) -> str:
        head = (f"Cox proportional-hazards model ({self.ties} ties; R coxph conventions): n = {self.n}, "
                f"events = {self.events}, dropped = {self.n_dropped}\n"
                f"LR chi-square = {self.lr_chisq:.4f} on {self.lr_df} df, p = {self.lr_p:.4g}; "
                f"Harrell's C = {self.concordance.estimate:.4f} (se {self.concordance.se:.4f})\n")  # fmt: skip
        return head + self.table.to_string(index=False)

    def linear_predictor(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Centred linear predictor (x - mean) @ beta for ``frame`` (default: fitting data)."""
        if frame is None:
            x = self.data["x"]
        elif self.data.get("categorical"):
            from kicc_analysis.prognosis.logistic import design_matrix

            x = design_matrix(frame, self.data["source_covariates"], self.data["categorical"],
                              levels=self.data["levels"])[0].to_numpy(dtype=float)  # fmt: skip
        else:
            x = _design(frame, self.covariates)
        return (x - self.fit.center) @ self.fit.beta

    def predict_survival(self, frame: pd.DataFrame | None, times: Any, stratum_index: int = 0) -> np.ndarray:
        """S(t | x) for each row of ``frame`` at each of ``times``: array (n_rows, n_times)."""
        lp = self.linear_predictor(frame)
        tk, cumhaz = self.fit.baseline[stratum_index]
        t = np.atleast_1d(np.asarray(times, dtype=float))
        h0 = step_right(tk, cumhaz, t, start=0.0)
        return np.exp(-np.outer(np.exp(lp), h0))


def _design(frame: pd.DataFrame, covariates: Sequence[str]) -> np.ndarray:
    try:
        return frame[list(covariates)].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"cox: covariates must be numeric (encode categories as 0/1 dummies first); {exc}") from exc


def cox(
    cohort: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    *,
    ties: str = "efron",
    strata: str | Sequence[str] | None = None,
    entry: str | None = None,
    weights: str | None = None,
    categorical: Sequence[str] = (),
    reference: dict[str, Any] | None = None,
    confidence: float = 0.95,
) -> CoxResult:
    """Fit a Cox proportional-hazards model.

    Parameters
    ----------
    cohort : DataFrame
        One row per subject (or per interval with ``entry``).
    duration : str
        Column with follow-up time (e.g. days).
    event : str
        Column with the 0/1 event indicator.
    covariates : sequence of str
        Numeric covariate columns (dummy-code categories beforehand).
    ties : {"efron", "breslow"}
        Handling of tied event times.
    strata : str or sequence of str, optional
        Column(s) defining strata with separate baseline hazards.
    entry : str, optional
        Column with delayed-entry (left-truncation) time; subject at risk on (entry, duration].
    weights : str, optional
        Column with case weights.
    categorical : sequence of str
        Covariates to dummy-code against their first sorted level (or ``reference``);
        the table then has one row per non-reference level, e.g. ``kicc_site[S02]``.
    reference : dict, optional
        Reference level per categorical covariate.
    confidence : float
        Confidence level of the hazard-ratio intervals.

    Returns
    -------
    CoxResult

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"t": [5, 8, 3, 9, 12, 4, 7, 10], "e": [1, 1, 0, 1, 0, 1, 1, 1],
    ...                   "x": [1, 0, 1, 1, 0, 0, 1, 0]})
    >>> round(float(cox(d, "t", "e", ["x"]).table.loc[0, "hr"]), 2)
    2.5
    """
    covariates = list(covariates)
    if not covariates:
        raise AnalysisError("cox: at least one covariate is needed")
    levels: dict[str, list[Any]] = {}
    strata_cols = [] if strata is None else ([strata] if isinstance(strata, str) else list(strata))
    extra = [c for c in (entry, weights) if c is not None]
    check_columns(cohort, [duration, event, *covariates, *strata_cols, *extra], "cox")
    if categorical:
        from kicc_analysis.prognosis.logistic import design_matrix

        frame, levels = design_matrix(cohort, covariates, [c for c in categorical if c in covariates], reference)
        names = list(frame.columns)
        x = frame.to_numpy(dtype=float)
    else:
        names = covariates
        x = _design(cohort, covariates)
    t = cohort[duration].to_numpy(dtype=float)
    e = cohort[event].to_numpy(dtype=float)
    ent = None if entry is None else cohort[entry].to_numpy(dtype=float)
    wts = None if weights is None else cohort[weights].to_numpy(dtype=float)
    st = None
    if strata_cols:
        st_frame = cohort[strata_cols]
        st = st_frame.astype(str).agg("|".join, axis=1).to_numpy(dtype=object)
        st[st_frame.isna().any(axis=1).to_numpy()] = np.nan
    keep = complete_mask(
        "cox", **{duration: t, event: e}, covariates=x, entry=ent, weights=wts,
        strata=None if st is None else st.astype(object),
    )  # fmt: skip
    n_dropped = int((~keep).sum())
    x, t, e = x[keep], t[keep], e[keep]
    ent = None if ent is None else ent[keep]
    wts = None if wts is None else wts[keep]
    st = None if st is None else st[keep]
    check_survival(t, e, "cox")
    if ent is not None and np.any(ent >= t):
        raise AnalysisError(f"cox: entry must be < {duration}; {int((ent >= t).sum())} rows violate this")
    const = np.nonzero(np.ptp(x, axis=0) == 0)[0]
    if len(const):
        raise AnalysisError(f"cox: covariate(s) {[names[i] for i in const]} are constant in the complete rows")
    fit = fit_cox(x, t, e, ties=ties, strata=st, start=ent, weights=wts)
    se = np.sqrt(np.diag(fit.var))
    z = fit.beta / se
    zc = stats.norm.ppf(0.5 + confidence / 2)
    table = pd.DataFrame(
        {
            "covariate": names,
            "coef": fit.beta,
            "hr": np.exp(fit.beta),
            "se": se,
            "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "hr_ci_low": np.exp(fit.beta - zc * se),
            "hr_ci_high": np.exp(fit.beta + zc * se),
        }
    )
    lr = 2 * (fit.loglik - fit.loglik_null)
    p = x.shape[1]
    wald = float(fit.beta @ np.linalg.solve(fit.var, fit.beta))
    return CoxResult(
        table=table,
        loglik=fit.loglik,
        loglik_null=fit.loglik_null,
        lr_chisq=lr,
        lr_df=p,
        lr_p=float(stats.chi2.sf(lr, p)),
        score_chisq=fit.score_test,
        wald_chisq=wald,
        n=len(t),
        events=int(e.sum()),
        n_dropped=n_dropped,
        ties=ties,
        covariates=names,
        confidence=confidence,
        fit=fit,
        data={"x": x, "time": t, "event": e, "entry": ent, "strata": st, "weights": wts, "source_covariates": covariates,
              "categorical": [c for c in categorical if c in covariates], "levels": levels},
    )  # fmt: skip


def _harrell_within_strata(t: np.ndarray, e: np.ndarray, lp: np.ndarray, st: np.ndarray | None) -> ConcordanceCounts:
    """Harrell's C; with strata the pair counts are summed over strata (pairs across strata are not compared)."""
    if st is None:
        return concordance_counts(t, e.astype(int), lp)
    tot = np.zeros(4)
    tied_time = 0
    parts = []
    for s in pd.unique(st):
        sel = st == s
        if e[sel].sum() == 0:
            continue
        cc = concordance_counts(t[sel], e[sel].astype(int), lp[sel])
        tot += [cc.concordant, cc.discordant, cc.tied_risk, cc.comparable]
        tied_time += cc.tied_time
        parts.append(cc.pair_sums)
    c = (tot[0] + 0.5 * tot[2]) / tot[3]
    # infinitesimal-jackknife SE of the pooled C (pairs only within strata)
    d_num = np.concatenate([p[0] for p in parts])
    d_den = np.concatenate([p[1] for p in parts])
    se = float(np.sqrt(np.sum(((d_num - c * d_den) / tot[3]) ** 2)))
    return ConcordanceCounts(float(c), float(tot[0]), float(tot[1]), float(tot[2]), tied_time, float(tot[3]), se)


PH_METHODS = ("score", "schoenfeld")
#: g(t) names; each name means the same function under both methods
PH_TRANSFORMS = ("km", "rank", "identity", "log", "lifelines_km", "lifelines_rank")


def _ph_transform(transform: str, t: np.ndarray, e: np.ndarray, method: str):
    """g(t) as a function of event times (``lifelines_rank`` is handled by the caller: it is per death)."""
    if transform == "km":  # 1 - KM(t-): R cox.zph, survival 2.x and >= 3
        km = product_limit(t, e)
        return lambda tt: 1.0 - km.before(tt)
    if transform == "lifelines_km":  # 1 - KM(t), right-continuous: lifelines TimeTransformers "km"
        km = product_limit(t, e)
        return lambda tt: 1.0 - km.at(tt)
    if transform == "identity":
        return lambda tt: np.asarray(tt, dtype=float)
    if transform == "log":
        return lambda tt: np.log(tt)
    if transform == "rank":  # R rank(times) of the event times: tied deaths share their average rank
        ev_t = np.sort(t[e > 0])
        ranks = stats.rankdata(ev_t)
        return lambda tt: np.interp(tt, ev_t, ranks)
    raise AnalysisError(
        f"ph_test: transform must be one of {', '.join(PH_TRANSFORMS)}; found {transform!r}"
        + (" ('lifelines_rank' exists only with method='schoenfeld')" if transform == "lifelines_rank" else "")
    )


def _ph_schoenfeld(model: CoxResult, transform: str) -> list[dict[str, Any]]:
    """The test of R survival < 3.0 ``cox.zph`` and lifelines ``proportional_hazard_test``.

    Scaled Schoenfeld residuals ``r* = d * r V`` (d deaths, V the model variance) are correlated with
    g(t) at the death times: ``T_j = (sum (g - gbar) r*_j)^2 / (d V_jj sum (g - gbar)^2)`` on 1 df; the
    global statistic is ``(u' V u) d / sum (g - gbar)^2`` with ``u = sum (g - gbar) r`` on p df (R 2.x).
    """
    d = model.data
    t, e = d["time"], d["event"]
    _, times, resid = schoenfeld_residuals(d["x"], t, e, model.fit.beta, ties=model.ties, strata=d["strata"],
                                           start=d["entry"], weights=d["weights"])  # fmt: skip
    if transform == "lifelines_rank":  # cumulative count of deaths in time order (ties in input order)
        gt = np.arange(1, len(times) + 1, dtype=float)[np.argsort(np.argsort(times, kind="stable"), kind="stable")]
    else:
        gt = np.asarray(_ph_transform(transform, t, e, "schoenfeld")(times), dtype=float)
    xx = gt - gt.mean()
    n_dead = len(times)
    var = model.fit.var
    scaled = n_dead * resid @ var
    test = xx @ scaled
    chisq = test**2 / (np.diag(var) * n_dead * (xx @ xx))
    rows = [{"covariate": name, "chisq": float(c), "df": 1, "p": float(stats.chi2.sf(c, 1))}
            for name, c in zip(model.covariates, chisq, strict=True)]  # fmt: skip
    u = xx @ resid
    glob = float(u @ var @ u * n_dead / (xx @ xx))
    p = len(model.covariates)
    rows.append({"covariate": "GLOBAL", "chisq": glob, "df": p, "p": float(stats.chi2.sf(glob, p))})
    return rows


def ph_test(model: CoxResult, transform: str = "km", *, method: str = "score") -> pd.DataFrame:
    """Test of proportional hazards per covariate and globally.

    ``method="score"`` (default) is R ``cox.zph`` from **survival >= 3.0**: for each covariate the score
    test of adding ``x * g(t)`` to the fitted model (all other time terms at 0), computed from the joint
    information matrix; ``GLOBAL`` tests all time terms together.
    ``method="schoenfeld"`` is the earlier approximation of **survival < 3.0** ``cox.zph`` (Grambsch &
    Therneau 1994), which lifelines ``proportional_hazard_test`` implements: the correlation of scaled
    Schoenfeld residuals with g(t).

    Parameters
    ----------
    model : CoxResult
        A model returned by :func:`cox`.
    transform : str
        g(t), the same function under both methods: ``"km"`` = 1 - KM(t-) (R's default), ``"rank"`` = R
        ``rank(times)`` of the event times (ties share the average rank), ``"identity"`` = t, ``"log"`` = log t.
        lifelines defines two of its names differently, so they get their own names here:
        ``"lifelines_km"`` = 1 - KM(t) (right-continuous) and, with ``method="schoenfeld"`` only,
        ``"lifelines_rank"`` = the running count of deaths (tied deaths numbered in input order;
        lifelines' default ``"rank"``).
    method : {"score", "schoenfeld"}
        Which test (see above).

    Returns
    -------
    DataFrame
        ``covariate, chisq, df, p, method, transform`` with a final ``GLOBAL`` row.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"t": [5, 8, 3, 9, 12, 4, 7, 10], "e": [1, 1, 0, 1, 0, 1, 1, 1],
    ...                   "x": [1, 0, 1, 1, 0, 0, 1, 0]})
    >>> ph_test(cox(d, "t", "e", ["x"]))["covariate"].tolist()
    ['x', 'GLOBAL']
    """
    if method not in PH_METHODS:
        raise AnalysisError(f"ph_test: method must be 'score' (R survival >= 3) or 'schoenfeld' "
                            f"(R survival < 3, lifelines); found {method!r}")  # fmt: skip
    if method == "schoenfeld":
        if transform not in PH_TRANSFORMS:
            _ph_transform(transform, model.data["time"], model.data["event"], method)  # raises the message
        rows = _ph_schoenfeld(model, transform)
        label = "R survival < 3.0 cox.zph / lifelines proportional_hazard_test (scaled Schoenfeld)"
        return pd.DataFrame(rows).assign(method=label, transform=transform)
    d = model.data
    t, e = d["time"], d["event"]
    g = _ph_transform(transform, t, e, method)
    u, imat = time_interaction_info(
        d["x"], t, e, model.fit.beta, g, ties=model.ties, strata=d["strata"], start=d["entry"], weights=d["weights"]
    )
    p = len(model.covariates)
    if np.linalg.matrix_rank(imat) < imat.shape[0]:
        n_events = int(np.sum(e > 0))
        raise AnalysisError(
            f"ph_test: the score-test information matrix is singular ({n_events} events for {p} covariates); "
            "too few distinct event times to test proportional hazards"
        )
    rows = []
    for i, name in enumerate(model.covariates):
        j = list(range(p)) + [p + i]
        chisq = float(u[j] @ np.linalg.solve(imat[np.ix_(j, j)], u[j]))
        rows.append({"covariate": name, "chisq": chisq, "df": 1, "p": float(stats.chi2.sf(chisq, 1))})
    chisq = float(u @ np.linalg.solve(imat, u))
    rows.append({"covariate": "GLOBAL", "chisq": chisq, "df": p, "p": float(stats.chi2.sf(chisq, p))})
    return pd.DataFrame(rows).assign(method="R survival >= 3.0 cox.zph (score test)", transform=transform)
