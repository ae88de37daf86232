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

Everything but :mod:`.plots` (matplotlib) is imported with the package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Functions share their names with the modules that define them (``cox.cox``, ``logistic.logistic``,
# ``table_one.table_one``), so they are imported eagerly: the function then shadows the module attribute.
from kicc_analysis.prognosis._checks import MissingDataWarning
from kicc_analysis.prognosis.calibration import calibration
from kicc_analysis.prognosis.competing_risks import (
    cause_specific_cox,
    competing_outcome,
    cumulative_incidence,
    fine_gray,
    gray_test,
)
from kicc_analysis.prognosis.concordance import brier_score, harrell_c, time_dependent_auc, uno_c
from kicc_analysis.prognosis.cox import cox, ph_test
from kicc_analysis.prognosis.decision_curve import decision_curve, decision_curve_survival
from kicc_analysis.prognosis.imputation import impute_and_pool, pool_rubin
from kicc_analysis.prognosis.logistic import hosmer_lemeshow, logistic
from kicc_analysis.prognosis.roc import (
    delong_test,
    delong_test_unpaired,
    hanley_mcneil_se,
    roc_auc,
    roc_curve,
    youden,
)
from kicc_analysis.prognosis.survival import kaplan_meier, km_table, logrank
from kicc_analysis.prognosis.table_one import table_one
from kicc_analysis.prognosis.validation import bootstrap_validate

__all__ = [
    "bootstrap_validate", "brier_score", "calibration", "cause_specific_cox", "competing_outcome", "cox",
    "cumulative_incidence", "decision_curve", "decision_curve_survival", "delong_test", "delong_test_unpaired", "fine_gray", "gray_test",
    "hanley_mcneil_se", "harrell_c", "hosmer_lemeshow", "impute_and_pool", "kaplan_meier", "km_table", "logistic",
    "logrank", "MissingDataWarning", "ph_test", "plots", "pool_rubin", "roc_auc", "roc_curve", "table_one", "time_dependent_auc", "uno_c",
    "youden",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "plots":  # matplotlib is imported only when figures are wanted
        return import_module("kicc_analysis.prognosis.plots")
    raise AttributeError(f"module 'kicc_analysis.prognosis' has no attribute {name!r}")
