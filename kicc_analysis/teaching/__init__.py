"""Teaching cases: key images, case pages and casebooks for educators (issue 19).

Every output is checked by the package's one identifier detector (:mod:`kicc_analysis.privacy`) before it is
written, and nothing is written when the check fails.
"""

from .images import OVERLAY_STYLES, KeyImage, TeachingError, apply_window, key_image, resolve_window, save_figure

__all__ = ["OVERLAY_STYLES", "KeyImage", "TeachingError", "apply_window", "key_image", "resolve_window", "save_figure"]
