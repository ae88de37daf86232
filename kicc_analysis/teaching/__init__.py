"""Teaching cases: key images, case pages and casebooks for educators (issue 19).

Every output is checked by the package's one identifier detector (:mod:`kicc_analysis.privacy`) before it is
written, and nothing is written when the check fails.
"""

from .case import CSP, TeachingCase, age_band, build_case, check_bytes, load_educator_text, render_case
from .comparison import (
    MATCH_RULES,
    Comparison,
    ComparisonStudy,
    comparison_figure,
    find_carina,
    lung_level,
    repository_studies,
)
from .images import OVERLAY_STYLES, KeyImage, TeachingError, apply_window, key_image, resolve_window, save_figure

__all__ = [
    "CSP",
    "TeachingCase",
    "age_band",
    "build_case",
    "check_bytes",
    "load_educator_text",
    "render_case",
    "MATCH_RULES",
    "Comparison",
    "ComparisonStudy",
    "comparison_figure",
    "find_carina",
    "lung_level",
    "repository_studies",
    "OVERLAY_STYLES",
    "KeyImage",
    "TeachingError",
    "apply_window",
    "key_image",
    "resolve_window",
    "save_figure",
]
