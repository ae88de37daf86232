"""The minimal baseline of an export (``kicc_analysis.export.baseline``) against scikit-learn as the peer: the same
logistic coefficients (unpenalised) and the same test-split AUC (``roc_auc_score``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.errors import KiccError
from kicc_analysis.export.baseline import split_baseline


def _targets(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 12, n)
    brixia = rng.integers(0, 19, n).astype(float)
    logit = -9.0 + 0.35 * brixia + 0.1 * age
    oxygen = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    split = rng.choice(["train", "validation", "test"], size=n, p=[0.7, 0.1, 0.2])
    table = pd.DataFrame({"brixia": brixia, "demog_age": age, "inter_suppleo2": oxygen, "split": split})
    table.loc[rng.choice(n, 12, replace=False), "brixia"] = np.nan  # unread radiographs
    return table


def test_coefficients_and_auc_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    metrics = pytest.importorskip("sklearn.metrics")
    targets = _targets()
    table = split_baseline(targets, "inter_suppleo2", {"brixia + age": ["brixia", "demog_age"], "age": ["demog_age"]})
    complete = targets.dropna()
    train, test = complete[complete["split"] == "train"], complete[complete["split"] == "test"]
    for row, columns in zip(table.itertuples(), (["brixia", "demog_age"], ["demog_age"]), strict=True):
        peer = sklearn.LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(
            train[columns], train["inter_suppleo2"]
        )
        coefficients = dict(term.split("=") for term in row.coefficients.split("; "))
        np.testing.assert_allclose(
            [float(coefficients[c]) for c in ["(Intercept)", *columns]],
            [peer.intercept_[0], *peer.coef_[0]],
            rtol=1e-3,
        )
        expected = metrics.roc_auc_score(test["inter_suppleo2"], peer.predict_proba(test[columns])[:, 1])
        assert row.auc == pytest.approx(expected, abs=1e-9)
        assert row.ci_low < row.auc < row.ci_high
        assert (row.n_train, row.n_test) == (len(train), len(test))
        assert row.events_test == int(test["inter_suppleo2"].sum())
        assert row.left_out_missing == 12
    assert np.isnan(table.loc[0, "delong_p_vs_first"]) and 0 < table.loc[1, "delong_p_vs_first"] <= 1


def test_models_are_scored_on_the_same_patients_and_failures_are_reasons():
    targets = _targets()
    targets.loc[targets["split"] == "test", "inter_suppleo2"] = 0.0  # a test split with one class only
    table = split_baseline(targets, "inter_suppleo2", {"brixia": ["brixia"], "age": ["demog_age"]})
    assert table["skipped"].str.contains("both classes").all()
    assert table["auc"].isna().all()
    with pytest.raises(KiccError, match=r"lacks column\(s\) \['labs_crp_mgl'\]"):
        split_baseline(targets, "inter_suppleo2", {"crp": ["labs_crp_mgl"]})
