"""Prognostic analysis for KICC-19: TRIPOD-style model development and validation.

Submodules (import from here; all functions take plain DataFrames / arrays):

* :mod:`.table_one` – baseline table (``table_one``)
* :mod:`.logistic` – logistic regression with OR tables, Hosmer–Lemeshow
* :mod:`.roc` – AUC with DeLong CI, DeLong test, Youden cut-off
* :mod:`.calibration`, :mod:`.decision_curve` – calibration and net benefit
* :mod:`.survival` – Kaplan–Meier, log-rank family
* :mod:`.cox`, :mod:`.concordance` – Cox model, PH test, Harrell/Uno C, time-dependent AUC/Brier
* :mod:`.competing_risks` – Aalen–Johansen CIF, Gray's test, Fine–Gray, cause-specific Cox
* :mod:`.imputation` – MICE with Rubin's rules
* :mod:`.validation` – bootstrap optimism correction
* :mod:`.plots` – publication figures

Names are loaded lazily so ``import kicc_analysis.prognosis`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "table_one": "table_one",
    "logistic": "logistic",
    "hosmer_lemeshow": "logistic",
    "roc_auc": "roc",
    "delong_test": "roc",
    "youden": "roc",
    "hanley_mcneil_se": "roc",
    "roc_curve": "roc",
    "calibration": "calibration",
    "decision_curve": "decision_curve",
    "decision_curve_survival": "decision_curve",
    "kaplan_meier": "survival",
    "logrank": "survival",
    "km_table": "survival",
    "cox": "cox",
    "ph_test": "cox",
    "harrell_c": "concordance",
    "uno_c": "concordance",
    "time_dependent_auc": "concordance",
    "brier_score": "concordance",
    "cumulative_incidence": "competing_risks",
    "gray_test": "competing_risks",
    "fine_gray": "competing_risks",
    "cause_specific_cox": "competing_risks",
    "impute_and_pool": "imputation",
    "pool_rubin": "imputation",
    "bootstrap_validate": "validation",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"kicc_analysis.prognosis.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kicc_analysis.prognosis' has no attribute {name!r}")
