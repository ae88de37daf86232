"""Decision-curve analysis (Vickers & Elkin 2006): net benefit of a model versus treat-all / treat-none.

Conventions (R ``dcurves::dca``, whose printed output the tests reproduce)
--------------------------------------------------------------------------
* Test positive when ``p >= threshold``; a variable with only 0/1 values is a
  binary test (positive when 1, at every threshold).
* ``net_benefit = tp_rate - fp_rate * pt / (1 - pt) - harm``, rates per patient.
* ``net_intervention_avoided = (net_benefit - net_benefit_all) / (pt / (1 - pt))``
  (per one patient; multiply by 100 for "per 100 patients"); NaN/±inf at pt = 0 as dcurves.
* ``as_probability=True`` converts a marker to a risk with a univariable logistic regression.
* Survival version at a ``horizon``: ``pos_rate = 1 - KM(horizon)``;
  ``tp_rate = P(test+) (1 - KM_test+(horizon))``, ``fp_rate = P(test+) KM_test+(horizon)``;
  NaN when the horizon lies beyond the last follow-up time of the test-positive patients
  (even when their KM has reached 0), as dcurves.
* CIs: optional percentile bootstrap of the net benefit (``n_boot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis._checks import as_float_array, check_binary, complete_mask
from kicc_analysis.prognosis._km import product_limit

__all__ = ["decision_curve", "decision_curve_survival", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS = np.round(np.arange(0, 1.0, 0.01), 2)


def _as_probability(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    from kicc_analysis.prognosis.logistic import fit_logit

    res = fit_logit(y, x[:, None])
    return np.asarray(res.predict())


def _is_binary(v: np.ndarray) -> bool:
    return set(np.unique(v).tolist()) <= {0.0, 1.0}


def _nb_frame(
    name: str, label: str, n: int, thr: np.ndarray, pos_rate: float, test_pos: np.ndarray, tp: np.ndarray,
    fp: np.ndarray, harm: float, nb_all: np.ndarray,
) -> pd.DataFrame:  # fmt: skip
    odds = thr / (1 - thr)
    nb = tp - fp * odds - harm
    with np.errstate(divide="ignore", invalid="ignore"):
        nia = (nb - nb_all) / odds
    return pd.DataFrame(
        {"variable": name, "label": label, "n": n, "threshold": thr, "pos_rate": pos_rate, "test_pos_rate": test_pos,
         "tp_rate": tp, "fp_rate": fp, "harm": harm, "net_benefit": nb, "net_intervention_avoided": nia}
    )  # fmt: skip


def decision_curve(
    y: Any,
    predictions: Mapping[str, Any] | Any,
    thresholds: Any = None,
    *,
    harm: Mapping[str, float] | None = None,
    as_probability: tuple[str, ...] | list[str] = (),
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Net benefit across threshold probabilities for one or more predictions (binary outcome).

    Parameters
    ----------
    y : array-like of 0/1
        Observed outcome.
    predictions : mapping name -> array, or one array
        Predicted risks (0–1), binary tests (0/1), or markers listed in ``as_probability``.
    thresholds : array-like, optional
        Threshold probabilities (default 0, 0.01, ..., 0.99).
    harm : mapping, optional
        Harm of testing per prediction (subtracted from its net benefit).
    as_probability : sequence of str
        Predictions to convert to risks by univariable logistic regression.
    n_boot : int
        Bootstrap replicates for a percentile CI of the net benefit (0 = none).

    Returns
    -------
    DataFrame
        dcurves layout: ``variable, label, n, threshold, pos_rate, test_pos_rate, tp_rate,
        fp_rate, harm, net_benefit, net_intervention_avoided`` (+ ``nb_ci_low, nb_ci_high``),
        rows for "all" (treat all), "none" (treat none) and each prediction.
    """
    preds = dict(predictions) if isinstance(predictions, Mapping) else {"model": predictions}
    yy = as_float_array(y, "y")
    arrays = {k: as_float_array(v, k) for k, v in preds.items()}
    keep = complete_mask("decision_curve", y=yy, **arrays)
    yy = check_binary(yy[keep], "y")
    arrays = {k: v[keep] for k, v in arrays.items()}
    for k in as_probability:
        arrays[k] = _as_probability(yy, arrays[k])
    thr = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=float)
    if np.any((thr < 0) | (thr >= 1)):
        raise AnalysisError("decision_curve: thresholds must lie in [0, 1)")
    harm = dict(harm or {})

    def curves(yv: np.ndarray, arr: dict[str, np.ndarray]) -> pd.DataFrame:
        n = len(yv)
        prev = float(yv.mean())
        ones = np.ones_like(thr)
        nb_all = prev - (1 - prev) * thr / (1 - thr)
        out = [
            _nb_frame("all", "Treat All", n, thr, prev, ones, prev * ones, (1 - prev) * ones, 0.0, nb_all),
            _nb_frame("none", "Treat None", n, thr, prev, 0 * ones, 0 * ones, 0 * ones, 0.0, nb_all),
        ]
        for name, p in arr.items():
            if _is_binary(p) and name not in as_probability:
                pos = np.broadcast_to(p[:, None] == 1, (n, len(thr)))
            else:
                pos = p[:, None] >= thr[None, :]
            tp = (pos & (yv[:, None] == 1)).mean(axis=0)
            fp = (pos & (yv[:, None] == 0)).mean(axis=0)
            out.append(_nb_frame(name, name, n, thr, prev, pos.mean(axis=0), tp, fp, harm.get(name, 0.0), nb_all))
        return pd.concat(out, ignore_index=True)

    result = curves(yy, arrays)
    if n_boot:
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, len(result)))
        for b in range(n_boot):
            idx = rng.integers(0, len(yy), len(yy))
            boots[b] = curves(yy[idx], {k: v[idx] for k, v in arrays.items()})["net_benefit"].to_numpy()
        a = (1 - confidence) / 2
        result["nb_ci_low"], result["nb_ci_high"] = np.nanquantile(boots, [a, 1 - a], axis=0)
    return result


def _km_at(time: np.ndarray, event: np.ndarray, horizon: float) -> float:
    """Kaplan–Meier S(horizon); NaN beyond the last follow-up time (R ``summary(survfit, times=)`` -> dcurves NA)."""
    if len(time) == 0:
        return np.nan
    km = product_limit(time, event)
    if horizon > km.time[-1]:
        return np.nan
    return float(km.at(horizon))


def decision_curve_survival(
    time: Any,
    event: Any,
    predictions: Mapping[str, Any] | Any,
    horizon: float,
    thresholds: Any = None,
    *,
    harm: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Net benefit at a time horizon for censored outcomes (Kaplan–Meier based, dcurves ``Surv`` method).

    ``predictions`` are predicted risks of the event by ``horizon`` (e.g. 1 - S(horizon | x)).
    """
    t = as_float_array(time, "time")
    e = as_float_array(event, "event")
    preds = dict(predictions) if isinstance(predictions, Mapping) else {"model": predictions}
    arrays = {k: as_float_array(v, k) for k, v in preds.items()}
    keep = complete_mask("decision_curve_survival", time=t, event=e, **arrays)
    t, e = t[keep], e[keep]
    arrays = {k: v[keep] for k, v in arrays.items()}
    thr = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=float)
    harm = dict(harm or {})
    n = len(t)
    prev = 1 - _km_at(t, e, horizon)
    ones = np.ones_like(thr)
    nb_all = prev - (1 - prev) * thr / (1 - thr)
    out = [
        _nb_frame("all", "Treat All", n, thr, prev, ones, prev * ones, (1 - prev) * ones, 0.0, nb_all),
        _nb_frame("none", "Treat None", n, thr, prev, 0 * ones, 0 * ones, 0 * ones, 0.0, nb_all),
    ]
    for name, p in arrays.items():
        binary = _is_binary(p)
        test_pos = np.empty(len(thr))
        tp = np.empty(len(thr))
        fp = np.empty(len(thr))
        for i, th in enumerate(thr):
            pos = (p == 1) if binary else (p >= th)
            rate = pos.mean()
            test_pos[i] = rate
            if rate == 0:
                tp[i] = fp[i] = 0.0
                continue
            s = _km_at(t[pos], e[pos], horizon)
            tp[i] = rate * (1 - s)
            fp[i] = rate * s
        out.append(_nb_frame(name, name, n, thr, prev, test_pos, tp, fp, harm.get(name, 0.0), nb_all))
    return pd.concat(out, ignore_index=True)
