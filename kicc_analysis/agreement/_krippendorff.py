"""Krippendorff's alpha with Gwet's linearised variance in irrCAC's three forms, and Krippendorff's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate

from ._data import (
    WeightsArg,
    weight_matrix,
    weights_label,
)
from ._gwet import (
    Prepared,
    _prepare,
    _prepare_counts,
    _quiet,
    _raw_estimate,
)
from ._two_rater import _check_table, _two_rater
from .bootstrap import with_bootstrap

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
