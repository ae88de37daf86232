"""Gwet's (2014) raw-ratings framework shared by the categorical coefficients: input preparation, observed and
chance agreement per subject, the generalised coefficients and their variance conditional on subjects."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
from .bootstrap import make_estimate

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
    ri, two, pa_i, share = _agreement_parts(counts, wm)
    n2 = two.sum()
    if n2 == 0:
        raise AnalysisError("no subject was rated by two raters or more; agreement is not defined")
    pa, pi = pa_i.sum() / n2, share.sum(0) / n  # = _pa_pi(counts, wm, ones(n)) without recomputing the parts
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
