"""Coefficients for any number of raters on raw ratings (missing allowed): percent agreement, Brennan-Prediger,
Gwet's AC1/AC2, Scott's pi / Fleiss' kappa, Conger's and Light's kappas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate

from ._data import (
    WeightsArg,
    weights_label,
)
from ._gwet import (
    _agreement_parts,
    _coef,
    _conger_pe,
    _conger_raw,
    _gwet_raw,
    _onehot_raters,
    _prepare,
    _prepare_counts,
    _quiet,
    _raw_estimate,
)
from ._two_rater import _two_rater
from .bootstrap import make_estimate, with_bootstrap

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
    per = {"kappa": kappa_k, "se0": np.full_like(kappa_k, se_k), "z": z_k, "p": 2 * special.ndtr(-np.abs(z_k))}
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
