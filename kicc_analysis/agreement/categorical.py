"""Chance-corrected agreement for categorical ratings: the kappa family, Gwet's AC1/AC2, Krippendorff's alpha.

Conventions (see ``docs/agreement.md``)
---------------------------------------
* **Two raters, contingency table** (``cohen_kappa``, and every coefficient called with ``table=``): standard errors
  from the large-sample formulas of Fleiss, Cohen & Everitt (1969) for (weighted) kappa, and of Gwet (2014, ch. 2-3)
  for Scott's pi, AC1/AC2, Brennan-Prediger, Krippendorff's alpha and percent agreement. ``cohen_kappa`` by default
  follows SAS PROC FREQ / statsmodels: Wald CI ``kappa +/- z * ASE`` and the test uses the null ASE0 (normal);
  ``convention="gwet"`` uses Student t with ``n - 1`` df and the non-null SE (R irrCAC).
* **Raw ratings, any number of raters, missing ratings allowed** (``fleiss_kappa``, ``conger_kappa``, ``gwet_ac``,
  ``brennan_prediger``, ``percent_agreement``, ``scott_pi``, ``krippendorff_alpha``): Gwet's (2014, ch. 5; irrCAC
  ``*.raw`` functions) generalised coefficients and variances conditional on the subjects (finite-population
  correction off), CI ``coef +/- t(n-1) * SE`` clipped to [-1, 1], two-sided t test of coef = 0. Chance agreement
  averages the category prevalence over subjects (``pi_k = mean_i r_ik / r_i``) -- identical to pooling all ratings
  when no rating is missing. Subjects nobody rated are dropped and counted in ``extra['dropped']``.
* ``fleiss_kappa`` additionally reports the per-category kappas and the SE under H0 of Fleiss, Nee & Landis (1979)
  (R ``irr::kappam.fleiss``) when every subject has the same number of ratings.
* Light's kappa (mean of pairwise Cohen kappas) has no closed-form SE in common use; its SE is the delete-one-subject
  jackknife (normal CI).

Every function can add a bootstrap percentile interval (``n_boot=2000``): subjects are resampled with replacement,
vectorised through draw-count matrices (see :mod:`kicc_analysis.agreement.bootstrap`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate

from ._data import (
    WeightsArg,
    count_matrix,
    drop_unrated,
    encode_categories,
    fast_codes,
    to_wide,
    weight_matrix,
    weights_label,
)
from .bootstrap import draw_counts, make_estimate, with_bootstrap

GWET_RAW = "Gwet (2014) generalised coefficient and variance conditional on subjects; CI coef +/- t(n-1) SE"
GWET_TABLE = "Gwet (2014) two-rater contingency-table variance; CI coef +/- t(n-1) SE"


# --------------------------------------------------------------------------- preparation


def _quiet(func: Any) -> Any:
    """Degenerate data (one category used, pe = 1) give NaN coefficients without NumPy warnings."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return func(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Prepared:
    """Ratings ready for the Gwet framework."""

    codes: np.ndarray | None  # subjects x raters category positions (-1 missing); None for count-table input
    counts: np.ndarray  # subjects x categories r_ik
    categories: np.ndarray
    weights: np.ndarray
    dropped: dict[str, int]


def _prepare(
    data: Any,
    subject: str | None,
    rater: str | None,
    rating: str | None,
    categories: Sequence[Any] | None,
    weights: WeightsArg,
    weight_kind: str = "agreement",
    layout: str | None = None,
    weight_scale: str | None = None,
) -> Prepared:
    wide = drop_unrated(to_wide(data, subject, rater, rating, numeric=False, layout=layout))
    values = wide.values
    try:
        numeric = np.asarray(values, dtype=float)
        codes, cats = fast_codes(numeric, categories)
    except (TypeError, ValueError):
        codes, cats = encode_categories(values, categories)
    wm = weight_matrix(weights, cats, kind=weight_kind, scale=weight_scale)
    return Prepared(codes, count_matrix(codes, len(cats)), cats, wm, wide.dropped)


def _prepare_counts(
    counts: Any, categories: Sequence[Any] | None, weights: WeightsArg, weight_scale: str | None = None
) -> Prepared:
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2:
        raise AnalysisError(f"a count table must be subjects x categories (2-D), got shape {table.shape}")
    if np.any(~np.isfinite(table)) or np.any(table < 0):
        raise AnalysisError("a count table must hold finite non-negative counts")
    cats = np.arange(table.shape[1]) if categories is None else np.asarray(list(categories))
    if len(cats) != table.shape[1]:
        raise AnalysisError(f"{len(cats)} categories declared but the count table has {table.shape[1]} columns")
    keep = table.sum(1) > 0
    dropped = {"no_rating": int((~keep).sum())} if (~keep).any() else {}
    return Prepared(None, table[keep], cats, weight_matrix(weights, cats, scale=weight_scale), dropped)


# --------------------------------------------------------------------------- Gwet raw-ratings framework


def _agreement_parts(counts: np.ndarray, wm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-subject ``r_i``, indicator ``r_i >= 2``, weighted agreement ``pa_i`` and category shares ``r_ik / r_i``."""
    ri = counts.sum(1)
    two = (ri >= 2).astype(float)
    weighted = counts @ wm.T  # r*_ik = sum_l w_kl r_il
    sum_q = (counts * (weighted - 1.0)).sum(1)
    pa_i = np.where(ri >= 2, sum_q / np.where(ri >= 2, ri * (ri - 1), 1.0), 0.0)
    share = counts / np.where(ri > 0, ri, 1.0)[:, None]
    return ri, two, pa_i, share


def _pa_pi(counts: np.ndarray, wm: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted percent agreement and mean category prevalence for subject weights ``W`` ((n,) or (B, n))."""
    _, two, pa_i, share = _agreement_parts(counts, wm)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa = (W @ pa_i) / (W @ two)
        pi = (W @ share) / W.sum(-1)[..., None]
    return pa, pi


def _pe(kind: str, pi: np.ndarray, wm: np.ndarray) -> np.ndarray:
    q = wm.shape[0]
    if kind == "fleiss":
        return np.einsum("...k,kl,...l->...", pi, wm, pi)
    if kind == "ac":
        return wm.sum() * (pi * (1 - pi)).sum(-1) / (q * (q - 1)) if q > 1 else np.ones(pi.shape[:-1]) * 1e-15
    if kind == "bp":
        return np.full(pi.shape[:-1], wm.sum() / q**2)
    if kind == "pa":
        return np.zeros(pi.shape[:-1])
    raise AnalysisError(f"unknown chance-agreement model {kind!r}")


def _coef(kind: str, counts: np.ndarray, wm: np.ndarray, W: np.ndarray) -> np.ndarray:
    pa, pi = _pa_pi(counts, wm, W)
    pe = _pe(kind, pi, wm)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pa - pe) / (1 - pe)


@_quiet
def _gwet_raw(kind: str, counts: np.ndarray, wm: np.ndarray) -> dict[str, float]:
    """Point estimate and Gwet variance of a Fleiss/AC/BP/PA-type coefficient from the count matrix."""
    n, q = counts.shape
    ri, two, pa_i, _ = _agreement_parts(counts, wm)
    n2 = two.sum()
    if n2 == 0:
        raise AnalysisError("no subject was rated by two raters or more; agreement is not defined")
    pa, pi = _pa_pi(counts, wm, np.ones(n))
    pe = float(_pe(kind, pi, wm))
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = (pa - pe) / (1 - pe)
        coef_i = (n / n2) * (pa_i - pe * two) / (1 - pe)
        if kind == "fleiss":
            pi_w = (wm @ pi + wm.T @ pi) / 2
            pe_i = (counts @ pi_w) / ri
        elif kind == "ac":
            pe_i = (wm.sum() / (q * (q - 1))) * (counts @ (1 - pi)) / ri
        else:
            pe_i = np.full(n, pe)
        coef_x = coef_i - 2 * (1 - coef) * (pe_i - pe) / (1 - pe)
        var = np.sum((coef_x - coef) ** 2) / (n * (n - 1)) if n > 1 else np.nan
    return {"coef": float(coef), "se": float(np.sqrt(var)), "pa": float(pa), "pe": pe, "n": n, "n2": int(n2)}


def _onehot_raters(codes: np.ndarray, q: int) -> np.ndarray:
    """Subjects x raters x categories indicators (all zero for a missing rating)."""
    return (codes[:, :, None] == np.arange(q)[None, None, :]).astype(float)


def _conger_pe(onehot: np.ndarray, wm: np.ndarray, W: np.ndarray) -> np.ndarray:
    n, r, q = onehot.shape
    classif = (W @ onehot.reshape(n, r * q)).reshape(W.shape[:-1] + (r, q))
    with np.errstate(divide="ignore", invalid="ignore"):
        pgk = classif / classif.sum(-1, keepdims=True)
    pbar = pgk.mean(-2)
    s2 = (np.einsum("...gk,...gl->...kl", pgk, pgk) - r * pbar[..., :, None] * pbar[..., None, :]) / (r - 1)
    return np.einsum("kl,...kl->...", wm, pbar[..., :, None] * pbar[..., None, :] - s2 / r)


@_quiet
def _conger_raw(codes: np.ndarray, counts: np.ndarray, wm: np.ndarray) -> dict[str, float]:
    """Conger's (1980) kappa with Gwet's (2014) variance (irrCAC ``conger.kappa.raw``)."""
    n, r = codes.shape
    q = wm.shape[0]
    if r < 2:
        raise AnalysisError(f"Conger's kappa needs at least 2 raters, got {r}")
    ri, two, pa_i, _ = _agreement_parts(counts, wm)
    n2 = two.sum()
    if n2 == 0:
        raise AnalysisError("no subject was rated by two raters or more; agreement is not defined")
    onehot = _onehot_raters(codes, q)
    pa = pa_i.sum() / n2
    pe = float(_conger_pe(onehot, wm, np.ones(n)))
    coef = (pa - pe) / (1 - pe)
    eps = (codes >= 0).astype(float)
    ng = eps.sum(0)
    pgk = onehot.sum(0) / ng[:, None]
    pbar = pgk.mean(0)
    term = onehot - (eps - ng / n)[:, :, None] * pgk[None, :, :]
    lam_k = (term @ wm.T) * (n / ng)[None, :, None]
    lam = (lam_k * (r * pbar[None, None, :] - pgk[None, :, :])).sum(-1)
    pe_i = lam.sum(1) / (r * (r - 1))
    coef_i = (n / n2) * (pa_i - pe * two) / (1 - pe)
    coef_x = coef_i - 2 * (1 - coef) * (pe_i - pe) / (1 - pe)
    var = np.sum((coef_x - coef) ** 2) / (n * (n - 1))
    return {"coef": float(coef), "se": float(np.sqrt(var)), "pa": float(pa), "pe": pe, "n": n, "n2": int(n2)}


def _kripp_parts(counts: np.ndarray, wm: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Krippendorff's alpha (Gwet's formulation) for subject weights W over pairable subjects only."""
    ri = counts.sum(1)
    weighted = counts @ wm.T
    sum_q = (counts * (weighted - 1.0)).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = W @ ri
        units = W.sum(-1)
        ri_mean = total / units
        pa_prime = (W @ (sum_q / (ri - 1))) / (ri_mean * units)
        eps = 1.0 / total
        pa = (1 - eps) * pa_prime + eps
        pi = (W @ counts) / total[..., None]
        pe = np.einsum("...k,kl,...l->...", pi, wm, pi)
        return (pa - pe) / (1 - pe), pa, pe


KRIPP_SE = ("irrcac", "irrcac_1.0", "irrcac_dist")


@_quiet
def _kripp_raw(counts: np.ndarray, wm: np.ndarray, se_method: str = "irrcac") -> dict[str, float]:
    """Krippendorff's alpha with Gwet's (2014) linearised variance, in one of irrCAC's three forms.

    ``pa' = mean_i sum_k r_ik (r*_ik - 1) / (rbar (r_i - 1))`` is the *uncorrected* observed agreement and
    ``pa = (1 - eps) pa' + eps`` (``eps = 1 / sum r_i``) Krippendorff's small-sample corrected one. The variance is
    ``sum_i (alpha*_i - centre)^2 / (n (n - 1))`` over the n pairable subjects, with

    * ``"irrcac"`` (irrCAC source since Aug 2021, ``krippen.alpha.raw``): ``pa_i`` linearises the ratio ``pa'``,
      centred on ``pa'`` itself: ``pa_i = b_i / rbar - pa' (r_i - rbar) / rbar``; ``alpha*_i = alpha_i -
      2 (1 - alpha') (pe_i - pe) / (1 - pe)``, centre ``alpha' = (pa' - pe) / (1 - pe)``.
    * ``"irrcac_1.0"`` (CRAN irrCAC 1.0, Gwet's vignette printout, Python irrCAC 0.4): the same, but ``pa_i`` is
      centred on the *corrected* ``pa`` (``- pa (r_i - rbar) / rbar``), which is not the linearisation of ``pa'``
      and inflates the SE slightly when subjects have unequal numbers of ratings.
    * ``"irrcac_dist"`` (irrCAC ``krippen.alpha.dist``, count-table input): ``pa_i = (1 - eps) (b_i / rbar -
      pa' (r_i - rbar) / rbar) + eps``; ``alpha*_i = alpha_i - (1 - alpha) (pe_i - pe) / (1 - pe)``, centre
      ``alpha``.
    """
    if se_method not in KRIPP_SE:
        raise AnalysisError(f"se_method must be one of {KRIPP_SE}, got {se_method!r}")
    ri_all = counts.sum(1)
    n_rated = int(np.count_nonzero(ri_all > 0))
    pairable = ri_all >= 2
    if not pairable.all():
        counts = counts[pairable]
    n = counts.shape[0]
    if n == 0:
        raise AnalysisError("no subject was rated by two raters or more; Krippendorff's alpha is not defined")
    # One pass over the pairable subjects (the same quantities as _kripp_parts with unit weights).
    ri = counts.sum(1)
    total = ri.sum()
    ri_mean = total / n
    b_i = np.einsum("ik,ik->i", counts, counts @ wm.T - 1.0) / (ri_mean * (ri - 1))
    pa_prime = np.mean(b_i)
    eps = 1.0 / total
    pa = float((1 - eps) * pa_prime + eps)
    pi = counts.sum(0) / total
    pe = float(pi @ wm @ pi)
    alpha = (pa - pe) / (1 - pe) if pe != 1 else np.nan
    alpha_prime = (pa_prime - pe) / (1 - pe)
    pi_w = (wm @ pi + wm.T @ pi) / 2
    pe_i = (counts @ pi_w) / ri_mean - pe * (ri - ri_mean) / ri_mean
    if se_method == "irrcac_dist":
        pa_i = (1 - eps) * (b_i - pa_prime * (ri - ri_mean) / ri_mean) + eps
        centre = alpha
        k_x = (pa_i - pe) / (1 - pe) - (1 - alpha) * (pe_i - pe) / (1 - pe)
    else:
        pa_centre = pa_prime if se_method == "irrcac" else pa
        pa_i = b_i - pa_centre * (ri - ri_mean) / ri_mean
        centre = alpha_prime
        k_x = (pa_i - pe) / (1 - pe) - 2 * (1 - alpha_prime) * (pe_i - pe) / (1 - pe)
    var = np.sum((k_x - centre) ** 2) / (n * (n - 1)) if n > 1 else np.nan
    # t reference: irrCAC >= 1.1 uses every subject of the input (n0 - 1 df), 1.0 and .dist the pairable ones.
    df = n_rated - 1 if se_method == "irrcac" else n - 1
    return {"coef": alpha, "se": float(np.sqrt(var)), "pa": pa, "pe": pe, "n": n, "n2": n, "df": df}


def _raw_estimate(
    res: dict[str, float],
    method: str,
    prep: Prepared,
    weights: WeightsArg,
    confidence: float,
    convention: str = GWET_RAW,
    extra: dict[str, Any] | None = None,
) -> Estimate:
    n = int(res["n"])
    df = int(res.get("df", n - 1))
    info = {
        "pa": res["pa"],
        "pe": res["pe"],
        "weights": weights_label(weights),
        "categories": prep.categories.tolist(),
        "n_pairable": res["n2"],
        "dropped": prep.dropped,
    }
    info.update(extra or {})
    return make_estimate(
        res["coef"],
        res["se"],
        n=n,
        method=method,
        convention=convention,
        confidence=confidence,
        df=df if df > 0 else None,
        extra=info,
    )


# --------------------------------------------------------------------------- two-rater contingency tables


def _table_from_raters(
    rater1: Any, rater2: Any, categories: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray, int]:
    a = np.asarray(rater1, dtype=object).ravel()
    b = np.asarray(rater2, dtype=object).ravel()
    if a.shape != b.shape:
        raise AnalysisError(f"rater1 and rater2 must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if a.size == 0:
        raise AnalysisError("no ratings given")
    try:
        codes, cats = fast_codes(np.stack([a, b], 1).astype(float), categories)
    except (TypeError, ValueError):
        codes, cats = encode_categories(np.stack([a, b], 1), categories)
    both = (codes >= 0).all(1)
    n_drop = int((~both).sum())
    if both.sum() == 0:
        raise AnalysisError("no subject was rated by both raters")
    q = len(cats)
    table = np.zeros((q, q))
    np.add.at(table, (codes[both, 0], codes[both, 1]), 1.0)
    return table, cats, n_drop


def _check_table(table: Any) -> np.ndarray:
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise AnalysisError(f"a contingency table must be square q x q, got shape {t.shape}")
    if np.any(~np.isfinite(t)) or np.any(t < 0) or t.sum() <= 0:
        raise AnalysisError("a contingency table must hold finite non-negative counts with a positive total")
    return t


def _table_coefficient(kind: str, table: np.ndarray, wm: np.ndarray) -> dict[str, float]:
    """Two-rater coefficient and its large-sample SE from a q x q table (Fleiss-Cohen-Everitt / Gwet 2014)."""
    n = table.sum()
    q = table.shape[0]
    p = table / n
    pk, pl = p.sum(1), p.sum(0)
    pa = np.float64(np.sum(wm * p))
    pi = (pk + pl) / 2
    se0 = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "kappa":
            pe = np.float64(np.sum(wm * np.outer(pk, pl)))
            coef = (pa - pe) / (1 - pe)
            wbar_row, wbar_col = wm @ pl, wm.T @ pk
            inner = wm - (1 - coef) * (wbar_row[:, None] + wbar_col[None, :])
            var = (np.sum(p * inner**2) - (pa - 2 * (1 - coef) * pe) ** 2) / (n * (1 - pe) ** 2)
            inner0 = wm - (wbar_row[:, None] + wbar_col[None, :])
            var0 = (np.sum(np.outer(pk, pl) * inner0**2) - pe**2) / (n * (1 - pe) ** 2)
            se0 = float(np.sqrt(var0))
        elif kind in ("scott", "kripp"):
            pe = np.float64(pi @ wm @ pi)
            coef = (pa - pe) / (1 - pe)
            inner = wm - (1 - coef) * ((wm @ pi)[:, None] + (wm.T @ pi)[None, :])
            var = (np.sum(p * inner**2) - (pa - 2 * (1 - coef) * pe) ** 2) / (n * (1 - pe) ** 2)
            if kind == "kripp":
                eps = 1 / (2 * n)
                pa = (1 - eps) * pa + eps
                coef = (pa - pe) / (1 - pe)
        elif kind == "ac":
            tw = wm.sum() / (q * (q - 1))
            pe = np.float64(tw * np.sum(pi * (1 - pi)))
            coef = (pa - pe) / (1 - pe)
            inner = wm - 2 * (1 - coef) * tw * (1 - (pi[:, None] + pi[None, :]) / 2)
            var = (np.sum(p * inner**2) - (pa - 2 * (1 - coef) * pe) ** 2) / (n * (1 - pe) ** 2)
        elif kind == "bp":
            pe = np.float64(wm.sum() / q**2)
            coef = (pa - pe) / (1 - pe)
            var = (np.sum(wm**2 * p) - pa**2) / (n * (1 - pe) ** 2)
        elif kind == "pa":
            pe, coef = np.float64(0.0), pa
            var = (np.sum(wm**2 * p) - pa**2) / n
        else:
            raise AnalysisError(f"unknown coefficient {kind!r}")
    return {"coef": float(coef), "se": float(np.sqrt(max(var, 0.0))), "se0": se0, "pa": pa, "pe": pe, "n": int(n)}


def _table_boot(kind: str, codes_pair: np.ndarray, q: int, wm: np.ndarray):
    """Bootstrap statistic for two-rater coefficients: replicate tables from draw counts."""
    cell = codes_pair[:, 0] * q + codes_pair[:, 1]
    onehot = (cell[:, None] == np.arange(q * q)[None, :]).astype(float)

    def stat(W: np.ndarray) -> np.ndarray:
        tables = (W @ onehot).reshape(-1, q, q)
        n = tables.sum((1, 2))
        p = tables / n[:, None, None]
        pk, pl = p.sum(2), p.sum(1)
        pa = np.einsum("kl,bkl->b", wm, p)
        pi = (pk + pl) / 2
        if kind == "kappa":
            pe = np.einsum("kl,bk,bl->b", wm, pk, pl)
        elif kind in ("scott", "kripp"):
            pe = np.einsum("kl,bk,bl->b", wm, pi, pi)
            if kind == "kripp":
                pa = (1 - 1 / (2 * n)) * pa + 1 / (2 * n)
        elif kind == "ac":
            pe = wm.sum() * (pi * (1 - pi)).sum(1) / (q * (q - 1))
        elif kind == "bp":
            pe = np.full(len(n), wm.sum() / q**2)
        else:
            pe = np.zeros(len(n))
        return (pa - pe) / (1 - pe)

    return stat


def _two_rater(
    kind: str,
    method: str,
    rater1: Any,
    rater2: Any,
    table: Any,
    weights: WeightsArg,
    categories: Sequence[Any] | None,
    weight_kind: str,
    confidence: float,
    n_boot: int,
    seed: Any,
    convention: str,
    weight_scale: str | None = None,
) -> Estimate:
    n_drop = 0
    if table is not None:
        t = _check_table(table)
        cats = np.arange(t.shape[0]) if categories is None else np.asarray(list(categories))
        if len(cats) != t.shape[0]:
            raise AnalysisError(f"{len(cats)} categories declared for a {t.shape[0]}x{t.shape[0]} table")
    else:
        if rater2 is None:
            raise AnalysisError("give rater1 and rater2 ratings, or table= a q x q contingency table")
        t, cats, n_drop = _table_from_raters(rater1, rater2, categories)
    wm = weight_matrix(weights, cats, kind=weight_kind, scale=weight_scale)
    res = _table_coefficient(kind, t, wm)
    n = res["n"]
    extra = {
        "pa": res["pa"],
        "pe": res["pe"],
        "weights": weights_label(weights, weight_scale),
        "categories": cats.tolist(),
        "dropped": {"missing_rating": n_drop} if n_drop else {},
        "table": t,
    }
    if kind == "kappa" and convention == "fce":
        extra["se0"] = res["se0"]
        est = make_estimate(
            res["coef"],
            res["se"],
            n=n,
            method=method,
            confidence=confidence,
            se_test=res["se0"],
            convention="Fleiss-Cohen-Everitt (1969) ASE; Wald CI kappa +/- z ASE; z = kappa/ASE0 "
            "(SAS PROC FREQ, statsmodels)",
            extra=extra,
        )
    elif convention in ("fce", "gwet"):
        if kind == "kappa":
            extra["se0"] = res["se0"]
        est = make_estimate(
            res["coef"],
            res["se"],
            n=n,
            method=method,
            confidence=confidence,
            df=n - 1,
            convention=GWET_TABLE,
            extra=extra,
        )
    else:
        raise AnalysisError(f"convention must be 'fce' or 'gwet', got {convention!r}")
    if n_boot:
        if not np.allclose(t, np.round(t)):
            raise AnalysisError("bootstrap needs integer counts in the contingency table")
        rows, cols = np.nonzero(t)
        reps = np.round(t[rows, cols]).astype(int)
        pairs = np.repeat(np.stack([rows, cols], 1), reps, axis=0)
        est = with_bootstrap(est, _table_boot(kind, pairs, len(cats), wm), len(pairs), n_boot, seed)
    return est


# --------------------------------------------------------------------------- public API: two raters


def cohen_kappa(
    rater1: Any = None,
    rater2: Any = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    table: Any = None,
    weight_scale: str | None = None,
    weight_kind: str = "agreement",
    convention: str = "fce",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Cohen's kappa (weighted or not) between two raters, with large-sample SE.

    Parameters
    ----------
    rater1, rater2 : array-like
        The two raters' ratings of the same subjects (NaN/None = missing; such subjects are dropped and counted in
        ``extra['dropped']``).
    weights : None, "linear", "quadratic" or q x q matrix
        Agreement weights (see :func:`~kicc_analysis.agreement._data.weight_matrix`); ``weight_kind="disagreement"``
        reads a matrix as Cohen's (1968) disagreement weights.
    categories : sequence, optional
        Ordered categories; declare them so that an unused level still counts.
    weight_scale : {None, "value", "rank"}
        Linear/quadratic weights on the categories' numeric values (default, irrCAC) or on their ranks (R irr
        ``kappa2``, scikit-learn ``cohen_kappa_score``, statsmodels ``cohens_kappa``); ``None`` uses values and warns
        (:class:`~kicc_analysis.agreement.ConventionWarning`) when the two differ.
    table : q x q array, optional
        Contingency table (rows rater 1, columns rater 2) instead of raw ratings.
    convention : {"fce", "gwet"}
        ``"fce"`` (default, SAS/statsmodels): Wald CI with the Fleiss-Cohen-Everitt ASE, z test with the null ASE0,
        normal reference. ``"gwet"``: t(n-1) CI and test with the non-null SE (R irrCAC ``kappa2.table``).
    n_boot : int
        Bootstrap replicates for a percentile CI in ``extra`` (0 = none).

    Returns
    -------
    Estimate
        ``extra`` holds ``pa``, ``pe``, ``se0`` and the table.

    Examples
    --------
    >>> k = cohen_kappa(table=[[0, 4, 1], [0, 8, 0], [0, 1, 5]])  # SAS PROC FREQ example
    >>> round(k.estimate, 4), round(k.se, 4), round(k.extra["se0"], 4)
    (0.4842, 0.138, 0.1484)
    """
    return _two_rater(
        "kappa",
        "cohen_kappa" if weights is None else "weighted_kappa",
        rater1,
        rater2,
        table,
        weights,
        categories,
        weight_kind,
        confidence,
        n_boot,
        seed,
        convention,
        weight_scale=weight_scale,
    )


# --------------------------------------------------------------------------- public API: raw ratings, many raters


def _multi(
    kind: str,
    method: str,
    data: Any,
    subject: str | None,
    rater: str | None,
    rating: str | None,
    weights: WeightsArg,
    categories: Sequence[Any] | None,
    table: Any,
    counts: Any,
    confidence: float,
    n_boot: int,
    seed: Any,
    layout: str | None = None,
    weight_scale: str | None = None,
) -> Estimate:
    if table is not None:
        table_kind = {"fleiss": "scott"}.get(kind, kind)
        return _two_rater(
            table_kind,
            method,
            None,
            None,
            table,
            weights,
            categories,
            "agreement",
            confidence,
            n_boot,
            seed,
            "gwet",
            weight_scale=weight_scale,
        )
    prep = (
        _prepare_counts(counts, categories, weights, weight_scale)
        if counts is not None
        else _prepare(data, subject, rater, rating, categories, weights, layout=layout, weight_scale=weight_scale)
    )
    res = _gwet_raw(kind, prep.counts, prep.weights)
    est = _raw_estimate(res, method, prep, weights, confidence)
    if n_boot:
        est = with_bootstrap(
            est, lambda W: _coef(kind, prep.counts, prep.weights, W), prep.counts.shape[0], n_boot, seed
        )
    return est


def percent_agreement(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    table: Any = None,
    counts: Any = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """(Weighted) percent agreement among raters, Gwet's SE. Same inputs as :func:`gwet_ac`."""
    return _multi(
        "pa",
        "percent_agreement",
        data,
        subject,
        rater,
        rating,
        weights,
        categories,
        table,
        counts,
        confidence,
        n_boot,
        seed,
        layout=layout,
        weight_scale=weight_scale,
    )


def brennan_prediger(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    table: Any = None,
    counts: Any = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Brennan-Prediger coefficient (= Randolph's free-marginal multi-rater kappa); chance agreement 1/q
    (unweighted) or ``sum(w)/q^2``. Same inputs as :func:`gwet_ac`."""
    return _multi(
        "bp",
        "brennan_prediger",
        data,
        subject,
        rater,
        rating,
        weights,
        categories,
        table,
        counts,
        confidence,
        n_boot,
        seed,
        layout=layout,
        weight_scale=weight_scale,
    )


def gwet_ac(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    table: Any = None,
    counts: Any = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Gwet's AC1 (unweighted) or AC2 (with ``weights``), any number of raters, missing ratings allowed.

    Parameters
    ----------
    data : DataFrame or array
        Long table (with ``subject``, ``rater``, ``rating`` column names) or wide subjects x raters array.
    weights : None, "linear", "quadratic" or matrix
        Agreement weights; AC2 when given.
    categories : sequence, optional
        Declared ordered categories (unused levels count).
    table : q x q array, optional
        Two-rater contingency table instead of raw ratings (Gwet's two-rater variance).
    counts : n x q array, optional
        Subjects x categories count table (how many raters chose each category) instead of raw ratings.
    weight_scale : {None, "value", "rank"}
        Linear/quadratic weights on category values (default) or ranks; see :func:`cohen_kappa`.
    layout : {None, "subjects_x_raters", "raters_x_subjects"}
        Orientation of a wide array (see :func:`~kicc_analysis.agreement.to_wide`); a wide input with more raters
        than subjects and no ``layout`` raises a :class:`~kicc_analysis.agreement.LayoutWarning`.
    n_boot : int
        Bootstrap replicates for a percentile interval in ``extra`` (0 = none).

    Examples
    --------
    Gwet's (2014) 12 units x 4 raters with missing ratings (irrCAC ``cac.raw4raters``; AC1 0.77544, SE 0.14295):

    >>> nan = float("nan")
    >>> ratings = [[1, 1, nan, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    ...            [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [nan, 5, 5, 5], [nan, nan, 1, 1], [nan, nan, 3, nan]]
    >>> est = gwet_ac(ratings, categories=[1, 2, 3, 4, 5])
    >>> round(est.estimate, 5), round(est.se, 5), est.n
    (0.77544, 0.14295, 12)
    """
    method = "gwet_ac1" if weights is None else "gwet_ac2"
    return _multi(
        "ac",
        method,
        data,
        subject,
        rater,
        rating,
        weights,
        categories,
        table,
        counts,
        confidence,
        n_boot,
        seed,
        layout=layout,
        weight_scale=weight_scale,
    )


def scott_pi(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    table: Any = None,
    counts: Any = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Scott's pi; with raw ratings of more than two raters this is Fleiss' kappa (Gwet's generalisation)."""
    return _multi(
        "fleiss",
        "scott_pi",
        data,
        subject,
        rater,
        rating,
        weights,
        categories,
        table,
        counts,
        confidence,
        n_boot,
        seed,
        layout=layout,
        weight_scale=weight_scale,
    )


@_quiet
def _fleiss_h0(counts: np.ndarray) -> dict[str, Any]:
    """Fleiss (1971) per-category kappas and Fleiss, Nee & Landis (1979) SEs under H0 (fixed m raters)."""
    ri = counts.sum(1)
    if not np.allclose(ri, ri[0]) or ri[0] < 2:
        return {
            "se0": np.nan,
            "z0": np.nan,
            "per_category": None,
            "h0_note": "H0 SE and per-category kappas need the same number (>=2) of ratings per subject",
        }
    n, m = counts.shape[0], ri[0]
    pj = counts.sum(0) / (n * m)
    qj = 1 - pj
    pq = np.sum(pj * qj)
    var0 = 2 / (pq**2 * n * m * (m - 1)) * (pq**2 - np.sum(pj * qj * (qj - pj)))
    with np.errstate(divide="ignore", invalid="ignore"):
        pjk = (np.sum(counts**2, 0) - n * m * pj) / (n * m * (m - 1) * pj)
        kappa_k = (pjk - pj) / (1 - pj)
    se_k = np.sqrt(2 / (n * m * (m - 1)))
    z_k = kappa_k / se_k
    per = {"kappa": kappa_k, "se0": np.full_like(kappa_k, se_k), "z": z_k, "p": 2 * stats.norm.sf(np.abs(z_k))}
    return {"se0": float(np.sqrt(var0)), "per_category": per}


def fleiss_kappa(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    categories: Sequence[Any] | None = None,
    weights: WeightsArg = None,
    counts: Any = None,
    method: str = "fleiss",
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Fleiss' kappa for many raters, with per-category kappas; missing ratings allowed.

    Parameters
    ----------
    data, subject, rater, rating : see :func:`gwet_ac`
    counts : n x q array, optional
        Subjects x categories count table instead of raw ratings.
    method : {"fleiss", "randolph"}
        ``"randolph"`` gives Randolph's free-marginal kappa (= Brennan-Prediger, chance 1/q).

    Returns
    -------
    Estimate
        SE/CI/p from Gwet's variance (valid with missing ratings, t(n-1)); ``extra`` adds ``se0`` and ``z0``
        (Fleiss, Nee & Landis 1979 SE under H0, as R ``irr::kappam.fleiss``) and ``per_category`` (a DataFrame of
        category kappas with their z and p) when every subject has the same number of ratings.
    """
    if method == "randolph":
        return brennan_prediger(
            data,
            subject,
            rater,
            rating,
            weights=weights,
            categories=categories,
            counts=counts,
            layout=layout,
            weight_scale=weight_scale,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
        )
    if method != "fleiss":
        raise AnalysisError(f"method must be 'fleiss' or 'randolph', got {method!r}")
    import pandas as pd

    prep = (
        _prepare_counts(counts, categories, weights, weight_scale)
        if counts is not None
        else _prepare(data, subject, rater, rating, categories, weights, layout=layout, weight_scale=weight_scale)
    )
    res = _gwet_raw("fleiss", prep.counts, prep.weights)
    if np.allclose(prep.weights, np.eye(len(prep.categories))):
        h0 = _fleiss_h0(prep.counts)
    else:
        h0 = {
            "se0": np.nan,
            "per_category": None,
            "h0_note": "H0 SE and per-category kappas are defined for unweighted Fleiss kappa only",
        }
    extra: dict[str, Any] = {"se0": h0["se0"], "z0": res["coef"] / h0["se0"] if h0["se0"] else np.nan}
    if h0.get("per_category") is not None:
        extra["per_category"] = pd.DataFrame({"category": prep.categories, **h0["per_category"]})
    else:
        extra["h0_note"] = h0["h0_note"]
    est = _raw_estimate(res, "fleiss_kappa", prep, weights, confidence, extra=extra)
    if n_boot:
        est = with_bootstrap(
            est, lambda W: _coef("fleiss", prep.counts, prep.weights, W), prep.counts.shape[0], n_boot, seed
        )
    return est


def conger_kappa(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Conger's (1980) generalised kappa (= R ``irr::kappam.fleiss(exact=TRUE)``) with Gwet's variance.

    Equals Cohen's kappa for two raters with complete data. Needs raw ratings (rater identities matter).
    """
    prep = _prepare(data, subject, rater, rating, categories, weights, layout=layout, weight_scale=weight_scale)
    res = _conger_raw(prep.codes, prep.counts, prep.weights)
    est = _raw_estimate(res, "conger_kappa", prep, weights, confidence)
    if n_boot:
        q = len(prep.categories)
        onehot = _onehot_raters(prep.codes, q)
        _, two, pa_i, _ = _agreement_parts(prep.counts, prep.weights)

        def stat(W: np.ndarray) -> np.ndarray:
            pa = (W @ pa_i) / (W @ two)
            pe = _conger_pe(onehot, prep.weights, W)
            return (pa - pe) / (1 - pe)

        est = with_bootstrap(est, stat, prep.counts.shape[0], n_boot, seed)
    return est


def _pairwise_kappa_stat(codes: np.ndarray, q: int, wm: np.ndarray):
    """Statistic(W) -> mean pairwise Cohen kappa (Light 1971) for subject weights W (B, n)."""
    r = codes.shape[1]
    pairs = [(a, b) for a in range(r) for b in range(a + 1, r)]
    onehots = []
    for a, b in pairs:
        ok = (codes[:, a] >= 0) & (codes[:, b] >= 0)
        cell = np.where(ok, codes[:, a] * q + codes[:, b], -1)
        onehots.append((cell[:, None] == np.arange(q * q)[None, :]).astype(float))

    def stat(W: np.ndarray) -> np.ndarray:
        values = []
        for oh in onehots:
            t = (W @ oh).reshape(W.shape[:-1] + (q, q))
            n = t.sum((-2, -1))
            p = t / n[..., None, None]
            pk, pl = p.sum(-1), p.sum(-2)
            pa = np.einsum("kl,...kl->...", wm, p)
            pe = np.einsum("kl,...k,...l->...", wm, pk, pl)
            values.append((pa - pe) / (1 - pe))
        return np.mean(values, axis=0)

    return stat


def _light_jackknife(codes: np.ndarray, q: int, wm: np.ndarray) -> np.ndarray:
    """Delete-one-subject values of Light's kappa in O(pairs * q^2) instead of O(n^2).

    Removing subject i changes one rater pair's table only in the cell the subject occupies, so each pair has at most
    q^2 + 1 distinct leave-one-out kappas (one per cell, plus "subject missing in this pair").
    """
    n, r = codes.shape
    cells = np.arange(q * q)
    removed = (cells[:, None] == cells[None, :]).astype(float).reshape(q * q, q, q)
    total = np.zeros(n)
    for a in range(r):
        for b in range(a + 1, r):
            ok = (codes[:, a] >= 0) & (codes[:, b] >= 0)
            cell = np.where(ok, codes[:, a] * q + codes[:, b], -1)
            table = np.bincount(cell[ok], minlength=q * q).reshape(q, q).astype(float)
            tables = np.concatenate([table[None] - removed, table[None]])  # last = nothing removed
            m = tables.sum((1, 2))
            p = tables / m[:, None, None]
            pk, pl = p.sum(2), p.sum(1)
            pa = np.einsum("kl,ckl->c", wm, p)
            pe = np.einsum("kl,ck,cl->c", wm, pk, pl)
            loo = (pa - pe) / (1 - pe)
            total += loo[np.where(ok, cell, q * q)]
    return total / (r * (r - 1) / 2)


def light_kappa(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    weights: WeightsArg = None,
    categories: Sequence[Any] | None = None,
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Light's (1971) kappa: the mean of all pairwise Cohen kappas (R ``irr::kappam.light``).

    Each pair uses the subjects both raters rated. The SE is the delete-one-subject jackknife (normal CI); there is
    no closed-form SE in common use.
    """
    prep = _prepare(data, subject, rater, rating, categories, weights, layout=layout, weight_scale=weight_scale)
    if prep.codes.shape[1] < 2:
        raise AnalysisError("Light's kappa needs at least 2 raters")
    q = len(prep.categories)
    stat = _pairwise_kappa_stat(prep.codes, q, prep.weights)
    n = prep.codes.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(stat(np.ones((1, n)))[0])
        jack = _light_jackknife(prep.codes, q, prep.weights)
    jack = jack[np.isfinite(jack)]
    m = jack.size
    se = float(np.sqrt((m - 1) / m * np.sum((jack - jack.mean()) ** 2))) if m > 1 else np.nan
    est = make_estimate(
        value,
        se,
        n=n,
        method="light_kappa",
        confidence=confidence,
        convention="Light (1971) mean pairwise Cohen kappa; jackknife SE, normal CI",
        extra={"weights": weights_label(weights), "categories": prep.categories.tolist(), "dropped": prep.dropped},
    )
    return with_bootstrap(est, stat, n, n_boot, seed) if n_boot else est


# --------------------------------------------------------------------------- Krippendorff


def krippendorff_distance(level: str, categories: np.ndarray, marginals: np.ndarray | None = None) -> np.ndarray:
    """Krippendorff's squared difference function ``delta^2_ck`` for a measurement level.

    ``ordinal`` uses the marginal frequencies ``n_g`` of pairable values: ``(sum_{g=c..k} n_g - (n_c + n_k)/2)^2``;
    ``interval`` ``(c - k)^2``; ``ratio`` ``((c - k)/(c + k))^2``; ``nominal`` 0/1.
    """
    q = len(categories)
    if level == "nominal":
        return 1.0 - np.eye(q)
    values = np.asarray(categories, dtype=float)
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            d = ((values[:, None] - values[None, :]) / (values[:, None] + values[None, :])) ** 2
        return np.nan_to_num(d, nan=0.0)
    if level == "ordinal":
        if marginals is None:
            raise AnalysisError("the ordinal metric needs the marginal frequencies of the values")
        order = np.argsort(values)
        nm = marginals[order]
        cum = np.concatenate([[0.0], np.cumsum(nm)])
        idx = np.arange(q)
        lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
        d_sorted = (cum[hi + 1] - cum[lo] - np.add.outer(nm, nm) / 2) ** 2
        inv = np.empty(q, dtype=int)
        inv[order] = np.arange(q)
        return d_sorted[np.ix_(inv, inv)]
    raise AnalysisError(f"level must be nominal, ordinal, interval or ratio, got {level!r}")


def krippendorff_alpha(
    data: Any = None,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    level: str = "nominal",
    categories: Sequence[Any] | None = None,
    weights: WeightsArg = None,
    counts: Any = None,
    table: Any = None,
    se_method: str = "irrcac",
    weight_scale: str | None = None,
    layout: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Krippendorff's alpha for any number of raters with missing ratings, with Gwet's SE.

    Parameters
    ----------
    data : DataFrame or array
        Long table or wide array; a wide array is subjects x raters unless ``layout="raters_x_subjects"``
        (Krippendorff's "reliability data", the layout of the ``krippendorff`` package).
    level : {"nominal", "ordinal", "interval", "ratio"}
        Krippendorff's metric; converted to agreement weights ``1 - delta^2 / max(delta^2)`` (alpha is unchanged
        by that scaling). Ignored when ``weights`` is given.
    categories : sequence, optional
        Declared values (needed so that unused ordinal levels enter ``n_g`` with 0).
    table : q x q array, optional
        Two-rater contingency table (Gwet's two-rater alpha and SE; ``level``/``weights`` as for raw data).
    counts : n x q array, optional
        Subjects x categories count table instead of raw ratings.
    se_method : {"irrcac", "irrcac_1.0", "irrcac_dist"}
        Form of Gwet's linearised variance (see ``docs/agreement.md``). ``"irrcac"`` (default): irrCAC's current
        ``krippen.alpha.raw`` (the linearisation of the uncorrected agreement pa'; t with (subjects rated) - 1 df);
        ``"irrcac_1.0"``: CRAN irrCAC 1.0 / Gwet's vignette printout (centred on the corrected pa; t with
        (pairable subjects) - 1 df); ``"irrcac_dist"``: irrCAC ``krippen.alpha.dist`` for count tables.
    layout : {None, "subjects_x_raters", "raters_x_subjects"}
        Orientation of a wide array (see :func:`kicc_analysis.agreement.to_wide`).

    Notes
    -----
    Only subjects with at least two ratings (pairable) enter, as in Krippendorff's definition; ``n`` counts them.

    Examples
    --------
    Krippendorff's (2011) reliability data, 4 observers (rows) x 12 units, as in the ``krippendorff`` package:

    >>> nan = float("nan")
    >>> reliability_data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    ...                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, nan],
    ...                     [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
    ...                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    >>> est = krippendorff_alpha(reliability_data, layout="raters_x_subjects")
    >>> round(est.estimate, 4), round(est.se, 5), est.n
    (0.7434, 0.14548, 11)
    >>> round(krippendorff_alpha(reliability_data, layout="raters_x_subjects", se_method="irrcac_1.0").se, 5)
    0.14557
    """
    if table is not None:
        t = _check_table(table)
        cats = np.arange(t.shape[0]) if categories is None else np.asarray(list(categories))
        w = weights
        if w is None and level != "nominal":
            w = _level_weights(level, cats, t.sum(0) + t.sum(1))
        return _two_rater(
            "kripp",
            f"krippendorff_alpha_{level}",
            None,
            None,
            t,
            w,
            cats,
            "agreement",
            confidence,
            n_boot,
            seed,
            "gwet",
            weight_scale=weight_scale,
        )
    if counts is not None:
        prep = _prepare_counts(counts, categories, None)
    else:
        prep = _prepare(data, subject, rater, rating, categories, None, layout=layout)
    pairable = prep.counts.sum(1) >= 2
    if weights is not None:
        wm = weight_matrix(weights, prep.categories, scale=weight_scale)
    else:
        marginals = prep.counts.sum(0) if pairable.all() else prep.counts[pairable].sum(0)
        wm = _level_weights(level, prep.categories, marginals)
    res = _kripp_raw(prep.counts, wm, se_method)
    dropped = dict(prep.dropped)
    if (~pairable).any():
        dropped["single_rating"] = int((~pairable).sum())
    prep = Prepared(prep.codes, prep.counts, prep.categories, wm, dropped)
    est = _raw_estimate(
        res,
        f"krippendorff_alpha_{level if weights is None else weights_label(weights)}",
        prep,
        weights if weights is not None else level,
        confidence,
        convention=_KRIPP_CONVENTION[se_method],
    )
    if n_boot:
        sub = prep.counts[pairable]
        # The ordinal metric depends on the marginals; it is held fixed at the observed ones in replicates.
        est = with_bootstrap(est, lambda W: _kripp_parts(sub, wm, W)[0], sub.shape[0], n_boot, seed)
    return est


_KRIPP_CONVENTION = {
    "irrcac": "Krippendorff (2011) alpha; Gwet (2014) variance linearising the uncorrected pa' (irrCAC "
    "krippen.alpha.raw, source since 2021); CI alpha +/- t(subjects rated - 1) SE",
    "irrcac_1.0": "Krippendorff (2011) alpha; Gwet (2014) variance centred on the corrected pa (CRAN irrCAC 1.0 "
    "krippen.alpha.raw); CI alpha +/- t(pairable subjects - 1) SE",
    "irrcac_dist": "Krippendorff (2011) alpha; irrCAC krippen.alpha.dist variance (count table); "
    "CI alpha +/- t(pairable subjects - 1) SE",
}


def _level_weights(level: str, cats: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    d = krippendorff_distance(level, cats, marginals)
    top = d.max()
    return 1.0 - d / top if top > 0 else np.ones_like(d)


__all__ = [
    "brennan_prediger",
    "cohen_kappa",
    "conger_kappa",
    "draw_counts",
    "fleiss_kappa",
    "gwet_ac",
    "krippendorff_alpha",
    "krippendorff_distance",
    "light_kappa",
    "percent_agreement",
    "scott_pi",
]
