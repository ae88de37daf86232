"""A minimal baseline on an exported table: logistic regression fitted on one split, scored on another.

Shows that an export's pieces fit (targets, inputs, splits); it is not a model worth reporting. Fitting:
:func:`kicc_analysis.prognosis.logistic.logistic` (maximum likelihood, statsmodels ``Logit``, no penalty); scoring:
:func:`kicc_analysis.prognosis.roc.roc_auc` (AUC with the DeLong CI) and
:func:`~kicc_analysis.prognosis.roc.delong_test` against the first model on the same test patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kicc_analysis.errors import KiccError

COLUMNS = (
    "model",
    "outcome",
    "left_out_missing",
    "n_train",
    "events_train",
    "n_test",
    "events_test",
    "auc",
    "ci_low",
    "ci_high",
    "delong_p_vs_first",
    "coefficients",
    "skipped",
)


def split_baseline(
    targets: pd.DataFrame,
    outcome: str,
    models: Mapping[str, Sequence[str]],
    *,
    train_split: str = "train",
    test_split: str = "test",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fit each model on the ``train_split`` rows of ``targets`` and score it on the ``test_split`` rows.

    Rows missing the outcome or any predictor of any model are left out of every model (so that all models are
    scored on the same test patients) and counted in ``left_out_missing``.

    Parameters
    ----------
    targets : DataFrame
        An export's ``targets.csv`` (or ``cases.csv``): ``split``, the outcome and the predictor columns.
    outcome : str
        Binary 0/1 target column, e.g. ``inter_suppleo2``.
    models : mapping
        Model name -> predictor columns, e.g. ``{"brixia + age": ["brixia", "demog_age"], "age": ["demog_age"]}``.
    train_split, test_split : str
        Values of ``split`` to fit on and to score on.
    confidence : float
        Level of the AUC confidence interval.

    Returns
    -------
    DataFrame
        One row per model: ``model, outcome, left_out_missing, n_train, events_train, n_test, events_test, auc,
        ci_low, ci_high`` (DeLong), ``delong_p_vs_first`` (paired DeLong test against the first model; NaN for the
        first), ``coefficients`` (``term=coef; ...`` on the log-odds scale, per unit of each predictor) and
        ``skipped`` (the reason when the model could not be fitted or scored, e.g. a split without both outcome
        classes; empty otherwise).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> table = pd.DataFrame({"x": x, "y": (x + rng.normal(size=200) > 0).astype(int),
    ...                       "split": np.where(np.arange(200) < 140, "train", "test")})
    >>> row = split_baseline(table, "y", {"x": ["x"]}).iloc[0]
    >>> int(row["n_train"]), int(row["n_test"]), bool(row["auc"] > 0.7)
    (140, 60, True)
    """
    from kicc_analysis.prognosis.logistic import logistic
    from kicc_analysis.prognosis.roc import delong_test, roc_auc

    needed = sorted({outcome, "split", *[c for columns in models.values() for c in columns]})
    missing_columns = [c for c in needed if c not in targets.columns]
    if missing_columns:
        raise KiccError(f"split_baseline: targets table lacks column(s) {missing_columns}; expected {needed}")
    complete = targets.dropna(subset=[c for c in needed if c != "split"])
    train = complete[complete["split"] == train_split]
    test = complete[complete["split"] == test_split]
    rows, scores = [], {}
    for name, columns in models.items():
        row = {"model": name, "outcome": outcome, "left_out_missing": len(targets) - len(complete), "skipped": ""}
        try:
            fit = logistic(train, outcome, list(columns), univariable=False)
            predicted = fit.predict(test)
            auc = roc_auc(test[outcome], predicted, confidence=confidence)
        except KiccError as exc:
            rows.append(row | {"skipped": f"{type(exc).__name__}: {exc}"})
            continue
        scores[name] = predicted
        coefficients = "; ".join(f"{t}={c:.6g}" for t, c in zip(fit.table["term"], fit.table["coef"], strict=True))
        rows.append(
            row
            | {
                "n_train": fit.n,
                "events_train": fit.events,
                "n_test": auc.n,
                "events_test": auc.extra["n_cases"],
                "auc": auc.estimate,
                "ci_low": auc.ci_low,
                "ci_high": auc.ci_high,
                "coefficients": coefficients,
            }
        )
    first = next(iter(models))
    for row in rows:
        row["delong_p_vs_first"] = (
            delong_test(test[outcome], scores[first], scores[row["model"]]).p
            if row["model"] != first and first in scores and row["model"] in scores
            else np.nan
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("n_train", "events_train", "n_test", "events_test"):
        table[column] = table[column].astype("Int64")
    return table
