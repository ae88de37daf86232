"""kicc-analysis: cohort, CT quantification and statistics for the KICC-19 repository.

Typical use in JupyterLab::

    from kicc_analysis import load_cohort
    cohort = load_cohort("/data/kicc19")

Heavy submodules are imported lazily so that ``import kicc_analysis`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_cohort": ("kicc_analysis.cohort", "load_cohort"),
    "build_cohort": ("kicc_analysis.cohort", "build_cohort"),
    "validate_clinical": ("kicc_analysis.dictionary", "validate_clinical"),
    "load_dictionary": ("kicc_analysis.dictionary", "load_dictionary"),
    "scan_repository": ("kicc_analysis.repository", "scan_repository"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        return getattr(import_module(module_name), attribute)
    raise AttributeError(f"module 'kicc_analysis' has no attribute {name!r}")
