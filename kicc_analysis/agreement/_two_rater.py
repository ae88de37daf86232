"""Two raters: contingency tables, the Fleiss-Cohen-Everitt and Gwet two-rater variances, Cohen's kappa."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate

from ._data import (
    WeightsArg,
    encode_categories,
    fast_codes,
    weight_matrix,
    weights_label,
)
from ._gwet import (
    GWET_TABLE,
)
from .bootstrap import make_estimate, with_bootstrap

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
