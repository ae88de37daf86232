"""One result protocol across the prognosis package (issue 14, item 10).

Every estimate exposes ``estimate, se, ci_low, ci_high, p, n, method, convention`` and ``to_frame()``;
functions return one type whatever their arguments; the pre-protocol names keep working for one release
with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.prognosis import (
    brier_score,
    cox,
    cumulative_incidence,
    harrell_c,
    pool_rubin,
    time_dependent_auc,
    uno_c,
)
from kicc_analysis.prognosis.competing_risks import CumulativeIncidenceFit
from kicc_analysis.results import Estimate

FIELDS = ("estimate", "se", "ci_low", "ci_high", "p", "n", "method", "convention")
RNG = np.random.default_rng(5)
T = RNG.exponential(10, 120).round(1) + 0.1
E = (RNG.random(120) < 0.7).astype(int)
RISK = -T + RNG.normal(0, 5, 120)


def _has_protocol(est: Estimate) -> None:
    for name in FIELDS:
        assert hasattr(est, name), name
    frame = est.to_frame()
    assert len(frame) == 1 and set(FIELDS) <= set(frame.columns)


def test_harrell_and_uno_return_the_same_estimate_type() -> None:
    h, u = harrell_c(T, E, RISK), uno_c(T, E, RISK)
    assert type(h) is type(u)
    _has_protocol(h)
    _has_protocol(u)
    assert h.method == "harrell_c" and u.method == "uno_c"
    assert h.ci_low < h.estimate < h.ci_high and 0 < h.se < 0.1
    assert h.p < 0.05  # the risk score is informative
    assert h.extra["comparable"] == h.extra["concordant"] + h.extra["discordant"] + h.extra["tied_risk"]


def test_old_concordance_names_warn_and_still_answer() -> None:
    h = harrell_c(T, E, RISK)
    with pytest.warns(DeprecationWarning, match="use '.estimate'"):
        assert h.c == h.estimate
    with pytest.warns(DeprecationWarning, match="concordant"):
        assert h.concordant == h.extra["concordant"]


def test_cox_concordance_is_an_estimate() -> None:
    d = pd.DataFrame({"t": T, "e": E, "x": RISK})
    m = cox(d, "t", "e", ["x"])
    _has_protocol(m.concordance)
    assert m.summary().loc[0, "concordance"] == m.concordance.estimate
    assert m.concordance.estimate == pytest.approx(harrell_c(T, E, m.linear_predictor()).estimate, abs=1e-12)


def test_summary_figures_are_estimates_not_attrs() -> None:
    auc = time_dependent_auc(T, E, RISK, [5, 10, 15])
    _has_protocol(auc.summary_estimate)
    assert auc.summary_estimate.method == "mean_auc" and list(auc.table.columns)[:2] == ["time", "auc"]
    with pytest.warns(DeprecationWarning, match="table"):
        old = auc["auc"]
    pd.testing.assert_series_equal(old, auc.table["auc"])
    with pytest.warns(DeprecationWarning):
        assert auc.attrs["mean_auc"] == auc.summary_estimate.estimate
    surv = np.exp(-np.outer(np.exp(RISK / 10), [5, 10]) / 10)
    brier = brier_score(T, E, surv, [5, 10])
    assert brier.summary_estimate.method == "integrated_brier"
    assert brier.summary_estimate.estimate == pytest.approx(np.trapezoid(brier.table["brier"], [5, 10]) / 5)
    assert "integrated_brier" in str(brier)


def test_pool_rubin_names_cannot_be_misread() -> None:
    pooled = pool_rubin([[1.0], [1.2], [0.8]], [[0.04], [0.05], [0.06]])
    ubar, b = 0.05, np.var([1.0, 1.2, 0.8], ddof=1)
    assert pooled["total_var"].iloc[0] == pytest.approx(ubar + (1 + 1 / 3) * b)  # mice's `t`
    assert pooled["se"].iloc[0] == pytest.approx(np.sqrt(pooled["total_var"].iloc[0]))
    assert pooled["statistic"].iloc[0] == pytest.approx(1.0 / pooled["se"].iloc[0])
    assert "t" not in pooled.columns
    with pytest.warns(DeprecationWarning, match="total_var"):
        assert pooled["t"].iloc[0] == pooled["statistic"].iloc[0]


def test_cumulative_incidence_returns_one_type() -> None:
    et = np.where(E == 1, np.random.default_rng(8).integers(1, 3, 120), 0)
    single = cumulative_incidence(T, et)
    grouped = cumulative_incidence(T, et, group=np.arange(120) % 2)
    assert isinstance(single, CumulativeIncidenceFit) and isinstance(grouped, CumulativeIncidenceFit)
    assert list(single) == ["all"] and list(grouped) == [0, 1]
    pd.testing.assert_frame_equal(single.cif(1), single["all"].cif(1))
    with pytest.raises(AttributeError, match=r"use fit\[label\]\.cif"):
        grouped.cif(1)
    assert set(grouped.to_frame()["group"]) == {0, 1}


def test_results_print_with_their_convention() -> None:
    from kicc_analysis.prognosis import kaplan_meier, logrank

    d = pd.DataFrame({"t": T, "e": E, "x": RISK, "g": np.arange(120) % 2})
    text = str(cox(d, "t", "e", ["x"]))
    assert "efron ties" in text and "Harrell's C" in text and "hr_ci_low" in text
    lr = str(logrank(T, E, d["g"]))
    assert lr.startswith("logrank test") and "R survdiff" in lr
    km = str(kaplan_meier(T, E, conf_type="log-log"))
    assert "CONFTYPE=LOGLOG" in km and "conf.type='log-log'" in km
