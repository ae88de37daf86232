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

The code lives in one private module per concept: ``_gwet`` (input preparation and Gwet's raw-ratings framework),
``_two_rater`` (contingency tables, Cohen's kappa), ``_multi_rater`` (percent agreement, Brennan-Prediger, AC1/AC2,
Scott/Fleiss, Conger, Light) and ``_krippendorff``; this module is their public face.
"""

from __future__ import annotations

from ._krippendorff import krippendorff_alpha, krippendorff_distance
from ._multi_rater import (
    brennan_prediger,
    conger_kappa,
    fleiss_kappa,
    gwet_ac,
    light_kappa,
    percent_agreement,
    scott_pi,
)
from ._two_rater import cohen_kappa
from .bootstrap import draw_counts

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
