"""Observer agreement: kappa family, Gwet AC1/AC2, Krippendorff's alpha, ICC, Bland-Altman, CCC, Kendall's W,
segmentation overlap and surface distances, STAPLE.

Every coefficient with uncertainty returns a :class:`kicc_analysis.results.Estimate` (``estimate, se, ci_low,
ci_high, z, p, n, method, convention``); ``convention`` says which published formula was followed. See
``docs/agreement.md`` for the conventions and the references each one reproduces.
"""

from ._data import LAYOUTS, AgreementWarning, ConventionWarning, LayoutWarning, to_wide
from .categorical import (
    brennan_prediger,
    cohen_kappa,
    conger_kappa,
    fleiss_kappa,
    gwet_ac,
    krippendorff_alpha,
    krippendorff_distance,
    light_kappa,
    percent_agreement,
    scott_pi,
)
from .continuous import BlandAltman, anova_mean_squares, bland_altman, icc, kendall_w, lin_ccc
from .plots import bland_altman_plot, confusion_matrix_plot, forest_plot
from .segmentation import SegmentationAgreement, StapleResult, segmentation_agreement, staple, surface_distances
from .tables import COEFFICIENTS, agreement_table, confusion_matrix, pairwise_table

__all__ = [
    "COEFFICIENTS",
    "LAYOUTS",
    "AgreementWarning",
    "ConventionWarning",
    "LayoutWarning",
    "to_wide",
    "BlandAltman",
    "SegmentationAgreement",
    "StapleResult",
    "agreement_table",
    "anova_mean_squares",
    "bland_altman",
    "bland_altman_plot",
    "confusion_matrix_plot",
    "forest_plot",
    "brennan_prediger",
    "cohen_kappa",
    "confusion_matrix",
    "conger_kappa",
    "fleiss_kappa",
    "gwet_ac",
    "icc",
    "kendall_w",
    "krippendorff_alpha",
    "krippendorff_distance",
    "light_kappa",
    "lin_ccc",
    "pairwise_table",
    "percent_agreement",
    "scott_pi",
    "segmentation_agreement",
    "staple",
    "surface_distances",
]
