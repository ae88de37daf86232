"""Teaching cases: key images, case pages and casebooks for educators (issue 19).

Every output is checked by the package's one identifier detector (:mod:`kicc_analysis.privacy`) before it is
written, and nothing is written when the check fails.
"""

from .case import (
    CSP,
    TeachingCase,
    age_band,
    audit_clears,
    build_case,
    case_iframe,
    case_outputs,
    check_bytes,
    load_educator_text,
    render_case,
    validate_educator_text,
)
from .casebook import render_casebook
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
from .propose import PROPOSAL_COLUMNS, propose_cases

__all__ = [
    "CSP",
    "TeachingCase",
    "age_band",
    "audit_clears",
    "build_case",
    "case_iframe",
    "case_outputs",
    "check_bytes",
    "load_educator_text",
    "render_case",
    "validate_educator_text",
    "render_casebook",
    "PROPOSAL_COLUMNS",
    "propose_cases",
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
