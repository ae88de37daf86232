"""ROC analysis: AUC with DeLong CI, DeLong test for paired AUCs, Youden cut-off.

Conventions
-----------
* ``direction="<"`` (default): higher scores indicate the positive class (y = 1),
  i.e. R ``pROC`` ``direction="<"`` (controls < cases). The AUC is the
  Mann–Whitney probability P(score_case > score_control) + 0.5 P(tie).
* DeLong et al. (1988) variance computed with mid-ranks in O(n log n)
  (Sun & Xu 2014), as ``pROC::ci.auc(method="delong")``; the CI is the normal
  interval ``auc +- z * se`` clipped to [0, 1] (pROC).
* :func:`delong_test` is ``pROC::roc.test(method="delong", paired=TRUE)``: z on
  the AUC difference with the DeLong covariance; the CI is for ``auc_a - auc_b``.
* :func:`delong_test_unpaired` is ``pROC::roc.test(method="delong", paired=FALSE)`` for two
  curves from different patients: ``D = (auc_a - auc_b) / sqrt(V_a + V_b)`` with the DeLong
  variances, referred to Student's t with Welch–Satterthwaite df
  ``(V_a + V_b)^2 / (V_a^2 / (N_a - 1) + V_b^2 / (N_b - 1))`` (N = cases + controls), as pROC's
  ``delong.unpaired.test``; the CI is ``diff +- t_df * se`` (pROC prints no CI for this test).
* :func:`hanley_mcneil_se`: Hanley & McNeil (1982) eq. 2 with Q1 = A/(2-A), Q2 = 2A^2/(1+A).
* Youden cut-off: the threshold maximising sensitivity + specificity - 1 where
  subjects with ``score >= threshold`` are called positive; thresholds are the
  midpoints between consecutive distinct scores (pROC ``coords(best.method="youden")``).
  Its CI is a percentile bootstrap stratified by class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_binary, complete_mask
from kicc_analysis.progress import progress_bar
from kicc_analysis.results import Estimate

__all__ = [
    "roc_auc",
    "delong_test",
    "delong_test_unpaired",
    "youden",
    "hanley_mcneil_se",
    "roc_curve",
    "delong_components",
]


def _clean(y: Any, *scores: Any, where: str) -> tuple[np.ndarray, list[np.ndarray]]:
    yy = as_float_array(y, "y")
    ss = [as_float_array(s, f"score{i or ''}") for i, s in enumerate(scores)]
    keep = complete_mask(where, y=yy, **{f"score_{i}": s for i, s in enumerate(ss)})
    yy = check_binary(yy[keep], "y")
    return yy, [s[keep] for s in ss]


def _orient(score: np.ndarray, direction: str) -> np.ndarray:
    if direction == "<":
        return score
    if direction == ">":
        return -score
    raise AnalysisError(f"direction must be '<' (higher score = positive) or '>', found {direction!r}")


def delong_components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong structural components (V10 per case, V01 per control).

    ``V10_i = P(control < case_i) + 0.5 P(tie)`` and ``V01_j = P(case > control_j) + 0.5 P(tie)``,
    computed by binary search in the sorted scores of the other class: O(n log n), equivalent to the
    mid-rank formulation of Sun & Xu (2014).
    """
    pos = score[y == 1]
    neg = score[y == 0]
    m, n = len(pos), len(neg)
    # sorted needles make the binary searches cache-friendly; results are scattered back to input order
    pos_order = np.argsort(pos)
    neg_order = np.argsort(neg)
    pos_sorted = pos[pos_order]
    neg_sorted = neg[neg_order]
    lo = np.searchsorted(neg_sorted, pos_sorted, side="left")
    hi = np.searchsorted(neg_sorted, pos_sorted, side="right")
    v10 = np.empty(m)
    v10[pos_order] = (lo + 0.5 * (hi - lo)) / n
    lo = np.searchsorted(pos_sorted, neg_sorted, side="left")
    hi = np.searchsorted(pos_sorted, neg_sorted, side="right")
    v01 = np.empty(n)
    v01[neg_order] = ((m - hi) + 0.5 * (hi - lo)) / m
    auc = float(v10.mean())
    return auc, v10, v01


def _delong_cov(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    comps = [delong_components(y, s) for s in scores]
    aucs = np.array([c[0] for c in comps])
    v10 = np.vstack([c[1] for c in comps])
    v01 = np.vstack([c[2] for c in comps])
    m, n = v10.shape[1], v01.shape[1]

    def cov(v: np.ndarray) -> np.ndarray:
        if v.shape[1] < 2:
            return np.zeros((v.shape[0], v.shape[0]))
        c = v - v.mean(axis=1, keepdims=True)
        return np.einsum("ik,jk->ij", c, c) / (v.shape[1] - 1)  # no BLAS threads for a 1-2 row product

    return aucs, cov(v10) / m + cov(v01) / n


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC by Hanley & McNeil (1982), eq. 2 (exponential approximation)."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(np.sqrt(var))


def roc_auc(y: Any, score: Any, *, direction: str = "<", confidence: float = 0.95) -> Estimate:
    """Area under the ROC curve with DeLong standard error and CI.

    Parameters
    ----------
    y : array-like of 0/1
        True class (1 = case, e.g. died / admitted to ICU).
    score : array-like
        Marker or predicted probability.
    direction : {"<", ">"}
        ``"<"``: higher score = more likely a case (default).
    confidence : float
        Confidence level.

    Returns
    -------
    Estimate
        AUC, DeLong ``se``, CI, and ``z``/``p`` for H0: AUC = 0.5. ``extra`` holds
        ``n_cases``, ``n_controls`` and the Hanley–McNeil SE.

    Examples
    --------
    >>> round(roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).estimate, 2)
    0.75
    """
    yy, (s,) = _clean(y, score, where="roc_auc")
    s = _orient(s, direction)
    aucs, cov = _delong_cov(yy, [s])
    auc, se = float(aucs[0]), float(np.sqrt(cov[0, 0]))
    zc = stats.norm.ppf(0.5 + confidence / 2)
    z = (auc - 0.5) / se if se > 0 else np.nan
    m, n = int(yy.sum()), int((1 - yy).sum())
    return Estimate(
        auc,
        se=se,
        ci_low=float(max(0.0, auc - zc * se)),
        ci_high=float(min(1.0, auc + zc * se)),
        z=z,
        p=float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
        n=len(yy),
        statistic=z,
        statistic_name="z",
        method="roc_auc",
        convention="DeLong 1988 variance (pROC ci.auc method='delong'); Wald CI clipped to [0, 1]",
        confidence=confidence,
        extra={"n_cases": m, "n_controls": n, "se_hanley_mcneil": hanley_mcneil_se(auc, m, n)},
    )


def delong_test(y: Any, score_a: Any, score_b: Any, *, direction: str = "<", confidence: float = 0.95) -> Estimate:
    """DeLong test of two correlated AUCs measured on the same subjects.

    Returns
    -------
    Estimate
        ``estimate`` = AUC_a - AUC_b with its SE and CI, ``z`` and two-sided ``p``;
        ``extra`` has both AUCs and their correlation.
    """
    yy, (a, b) = _clean(y, score_a, score_b, where="delong_test")
    aucs, cov = _delong_cov(yy, [_orient(a, direction), _orient(b, direction)])
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    z = diff / se if se > 0 else np.nan
    zc = stats.norm.ppf(0.5 + confidence / 2)
    corr = float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])) if cov[0, 0] * cov[1, 1] > 0 else np.nan
    return Estimate(
        diff,
        se=se,
        ci_low=diff - zc * se,
        ci_high=diff + zc * se,
        z=z,
        p=float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
        n=len(yy),
        statistic=z,
        statistic_name="z",
        method="delong_test",
        convention="pROC roc.test(method='delong', paired=TRUE)",
        confidence=confidence,
        extra={"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "correlation": corr},
    )


def delong_test_unpaired(
    y_a: Any,
    score_a: Any,
    y_b: Any,
    score_b: Any,
    *,
    direction: str = "<",
    confidence: float = 0.95,
) -> Estimate:
    """DeLong test of two AUCs from different patients (unpaired ROC curves).

    Parameters
    ----------
    y_a, score_a : array-like
        Class (1 = case) and marker of the first sample.
    y_b, score_b : array-like
        Class and marker of the second, independent sample (other patients).
    direction : {"<", ">"}
        ``"<"``: higher score = more likely a case (both curves).
    confidence : float
        Confidence level of the CI of ``auc_a - auc_b``.

    Returns
    -------
    Estimate
        ``estimate`` = AUC_a - AUC_b, ``se = sqrt(V_a + V_b)``, ``z`` = pROC's statistic ``D``,
        two-sided ``p`` from Student's t on ``extra["df"]`` degrees of freedom, CI ``diff +- t * se``;
        ``extra`` has both AUCs, ``statistic_d`` and ``df``.

    Examples
    --------
    >>> res = delong_test_unpaired([0, 0, 1, 1, 0, 1], [1, 2, 3, 4, 2, 5], [0, 1, 0, 1, 0], [1, 2, 3, 4, 0])
    >>> round(res.extra["auc_a"], 3), round(res.extra["auc_b"], 3)
    (1.0, 0.833)
    """
    ya, (sa,) = _clean(y_a, score_a, where="delong_test_unpaired (sample a)")
    yb, (sb,) = _clean(y_b, score_b, where="delong_test_unpaired (sample b)")
    auc_a, var_a = _delong_cov(ya, [_orient(sa, direction)])
    auc_b, var_b = _delong_cov(yb, [_orient(sb, direction)])
    va, vb = float(var_a[0, 0]), float(var_b[0, 0])
    diff = float(auc_a[0] - auc_b[0])
    se = float(np.sqrt(va + vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (len(ya) - 1) + vb**2 / (len(yb) - 1))
    d = diff / se if se > 0 else np.nan
    p = float(2 * stats.t.sf(abs(d), df)) if np.isfinite(d) else np.nan
    tc = stats.t.ppf(0.5 + confidence / 2, df) if np.isfinite(df) else np.nan
    return Estimate(
        diff,
        se=se,
        ci_low=float(diff - tc * se),
        ci_high=float(diff + tc * se),
        z=float(d),
        p=p,
        n=len(ya) + len(yb),
        statistic=float(d),
        statistic_name="D",
        df=float(df),
        method="delong_test_unpaired",
        convention="pROC roc.test(method='delong', paired=FALSE): D on Welch-Satterthwaite t df",
        confidence=confidence,
        extra={
            "auc_a": float(auc_a[0]),
            "auc_b": float(auc_b[0]),
            "statistic_d": float(d),
            "df": float(df),
            "n_a": len(ya),
            "n_b": len(yb),
        },  # fmt: skip
    )


def roc_curve(y: Any, score: Any, *, direction: str = "<") -> pd.DataFrame:
    """Empirical ROC curve: ``threshold, sensitivity, specificity`` (positive if score >= threshold).

    Thresholds are -inf, the midpoints between consecutive distinct scores, and +inf (pROC).
    """
    yy, (s,) = _clean(y, score, where="roc_curve")
    s = _orient(s, direction)
    u = np.unique(s)
    thr = np.r_[-np.inf, (u[1:] + u[:-1]) / 2, np.inf]
    pos = np.sort(s[yy == 1])
    neg = np.sort(s[yy == 0])
    sens = 1 - np.searchsorted(pos, thr, side="left") / len(pos)
    spec = np.searchsorted(neg, thr, side="left") / len(neg)
    out_thr = thr if direction == "<" else -thr
    return pd.DataFrame({"threshold": out_thr, "sensitivity": sens, "specificity": spec})


def _youden_point(yy: np.ndarray, s: np.ndarray) -> tuple[float, float, float, float]:
    u = np.unique(s)
    if len(u) < 2:
        return np.nan, np.nan, np.nan, np.nan
    thr = (u[1:] + u[:-1]) / 2
    pos = np.sort(s[yy == 1])
    neg = np.sort(s[yy == 0])
    sens = 1 - np.searchsorted(pos, thr, side="left") / len(pos)
    spec = np.searchsorted(neg, thr, side="left") / len(neg)
    j = sens + spec - 1
    i = int(np.argmax(j))
    return float(thr[i]), float(j[i]), float(sens[i]), float(spec[i])


def youden(
    y: Any,
    score: Any,
    *,
    direction: str = "<",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    progress: bool | None = None,
) -> Estimate:
    """Optimal cut-off by Youden's J with a stratified percentile-bootstrap CI.

    Returns
    -------
    Estimate
        ``estimate`` = cut-off (score units); ``extra`` has J, sensitivity,
        specificity at the cut-off, and bootstrap CIs of J (``j_ci``).
    """
    yy, (s,) = _clean(y, score, where="youden")
    so = _orient(s, direction)
    thr, j, sens, spec = _youden_point(yy, so)
    rng = np.random.default_rng(seed)
    pos_idx = np.nonzero(yy == 1)[0]
    neg_idx = np.nonzero(yy == 0)[0]
    boot_t = np.full(n_boot, np.nan)
    boot_j = np.full(n_boot, np.nan)
    for b in progress_bar(range(n_boot), show=progress, desc="Youden bootstrap", leave=False):
        idx = np.r_[rng.choice(pos_idx, len(pos_idx)), rng.choice(neg_idx, len(neg_idx))]
        boot_t[b], boot_j[b], _, _ = _youden_point(yy[idx], so[idx])
    a = (1 - confidence) / 2
    lo, hi = np.nanquantile(boot_t, [a, 1 - a]) if n_boot else (np.nan, np.nan)
    sign = 1 if direction == "<" else -1
    lo, hi = sorted((sign * lo, sign * hi))
    return Estimate(
        sign * thr,
        se=float(np.nanstd(boot_t, ddof=1)) if n_boot > 1 else np.nan,
        ci_low=float(lo),
        ci_high=float(hi),
        n=len(yy),
        method="youden_cutoff",
        convention="max sens+spec-1, positive if score >= cut-off (midpoint thresholds, pROC); "
        "stratified percentile bootstrap",
        confidence=confidence,
        extra={
            "j": j,
            "sensitivity": sens,
            "specificity": spec,
            "j_ci": tuple(np.nanquantile(boot_j, [a, 1 - a])) if n_boot else (np.nan, np.nan),
            "n_boot": n_boot,
        },
    )
