"""Kaplan–Meier quantiles and confidence bands under the five transforms (module ``prognosis.survival``).

References
----------
* SAS/STAT 14.1 User's Guide, The LIFETEST Procedure, "Breslow, Fleming-Harrington, and Kaplan-Meier
  Methods" (statug_lifetest_details03): 95 % CI of the 25th percentile of the ALL group of the bone-marrow
  transplant data (Klein & Moeschberger 1997) under CONFTYPE = LINEAR [107, 276], LOGLOG [86, 230],
  LOG [107, 332], ASINSQRT [104, 276], LOGIT [104, 230]. The data set ships with statsmodels
  (``statsmodels/duration/tests/results/bmt.csv``, whose ``test_bmt`` transcribes the same SAS values).
* R survival, ``survfit(Surv(time, status) ~ x, data = aml)`` as printed in ``?survfit`` / the survival
  vignette: Maintained n 11, events 7, median 31, 0.95LCL 18, UCL NA; Nonmaintained 12, 11, 23, 8, NA.
* R survival, ``survfit(Surv(time, status) ~ 1, data = lung)``: n 228, events 165, median 310 (285, 363);
  ``~ sex``: 270 (212, 310) and 426 (348, 550) (printed in the survival vignette and in Zabor's
  "Survival analysis in R" tutorial).
* Peers computed here on the same data: statsmodels ``SurvfuncRight.quantile_ci`` (SAS's method, all five
  transforms, every quartile) and lifelines ``KaplanMeierFitter`` (log-log band, median CI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis import kaplan_meier, km_table
from kicc_analysis.prognosis.survival import KaplanMeierFit

TRANSFORMS = {"plain": "linear", "log-log": "cloglog", "log": "log", "arcsin": "asinsqrt", "logit": "logit"}


@pytest.fixture(scope="module")
def bmt() -> pd.DataFrame:
    statsmodels = pytest.importorskip("statsmodels")
    path = Path(statsmodels.__file__).parent / "duration" / "tests" / "results" / "bmt.csv"
    if not path.exists():
        pytest.skip(f"statsmodels ships no BMT data at {path}")
    return pd.read_csv(path)


def test_sas_lifetest_first_quartile_ci_all_transforms(bmt: pd.DataFrame) -> None:
    sas = {"LINEAR": (107, 276), "LOGLOG": (86, 230), "LOG": (107, 332), "ASINSQRT": (104, 276),
           "LOGIT": (104, 230)}  # fmt: skip
    everyone = bmt[bmt.Group == "ALL"]
    km = kaplan_meier(everyone["T"], everyone["Status"])
    for conf_type, (low, high) in sas.items():
        q = km.quantiles([0.25], conf_type=conf_type).iloc[0]
        assert (q["ci_low"], q["ci_high"]) == (low, high), conf_type


def test_quantile_cis_match_statsmodels_every_group_quartile_and_transform(bmt: pd.DataFrame) -> None:
    from statsmodels.duration.survfunc import SurvfuncRight

    for _, d in bmt.groupby("Group"):
        km = kaplan_meier(d["T"], d["Status"])
        peer = SurvfuncRight(d["T"].to_numpy(), d["Status"].to_numpy())
        for ours_name, peer_name in TRANSFORMS.items():
            q = km.quantiles((0.25, 0.5, 0.75), conf_type=ours_name)
            for _, row in q.iterrows():
                low, high = peer.quantile_ci(row["prob"], method=peer_name)
                if np.isnan(low):  # no event time in the confidence set: both undefined
                    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
                    continue
                assert row["ci_low"] == low, (row, low)
                assert row["ci_high"] == high or (np.isnan(row["ci_high"]) and np.isinf(high)), (row, high)
                if np.isfinite(row["time"]):
                    assert row["time"] == peer.quantile(row["prob"])


def test_r_survfit_aml_medians() -> None:
    maintained = ([9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161], [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0])
    non = ([5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45], [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1])
    fit = kaplan_meier(maintained[0] + non[0], maintained[1] + non[1], ["Maintained"] * 11 + ["Nonmaintained"] * 12)
    table = fit.to_frame().set_index("group")
    assert table.loc["Maintained", ["n", "events", "median", "median_ci_low"]].tolist() == [11, 7, 31, 18]
    assert table.loc["Nonmaintained", ["n", "events", "median", "median_ci_low"]].tolist() == [12, 11, 23, 8]
    assert table["median_ci_high"].isna().all()  # R prints NA


def test_r_survfit_lung_medians_and_lifelines_median_ci() -> None:
    lung = pd.read_csv(shared_path("data", "stats", "lung.csv"))
    km = kaplan_meier(lung["time"], lung["status"])
    med = km.median_estimate()
    assert (med.estimate, med.ci_low, med.ci_high, med.n) == (310, 285, 363, 228)
    by_sex = kaplan_meier(lung["time"], lung["status"], lung["sex"]).to_frame().set_index("group")
    assert by_sex.loc[1, ["median", "median_ci_low", "median_ci_high"]].tolist() == [270, 212, 310]
    assert by_sex.loc[2, ["median", "median_ci_low", "median_ci_high"]].tolist() == [426, 348, 550]
    lifelines = pytest.importorskip("lifelines")
    from lifelines.utils import median_survival_times

    kmf = lifelines.KaplanMeierFitter().fit(lung["time"], lung["status"])
    peer_ci = median_survival_times(kmf.confidence_interval_).iloc[0].tolist()
    q = km.quantiles([0.5], conf_type="log-log").iloc[0]
    assert [q["ci_low"], q["ci_high"]] == peer_ci
    assert q["time"] == kmf.median_survival_time_
    band = km.confidence_band("log-log").set_index("time")
    peer = kmf.confidence_interval_.loc[band.index]
    np.testing.assert_allclose(band["ci_low"], peer.iloc[:, 0], rtol=1e-10)
    np.testing.assert_allclose(band["ci_high"], peer.iloc[:, 1], rtol=1e-10)


@pytest.mark.parametrize("conf_type", ["logit", "arcsin", "log", "log-log", "plain"])
def test_band_is_symmetric_on_its_transformed_scale(conf_type: str) -> None:
    rng = np.random.default_rng(3)
    t = rng.integers(1, 60, 80)
    e = rng.random(80) < 0.7
    km = kaplan_meier(t, e, conf_type=conf_type, confidence=0.9)["all"]
    s = km.table["surv"].to_numpy()
    se_log = np.sqrt(km.var_log)
    z = stats.norm.ppf(0.95)
    ok = (s > 0) & (s < 1)
    g, se_g = {
        "logit": (lambda x: np.log(x / (1 - x)), se_log / (1 - s)),
        "arcsin": (lambda x: np.arcsin(np.sqrt(x)), 0.5 * se_log * np.sqrt(s / (1 - s))),
        "log": (np.log, se_log),
        "log-log": (lambda x: np.log(-np.log(x)), se_log / np.abs(np.log(s))),
        "plain": (lambda x: x, s * se_log),
    }[conf_type]
    low, high = km.table["ci_low"].to_numpy(), km.table["ci_high"].to_numpy()
    inner = ok & (low > 0) & (high < 1)  # away from the clipping at 0 and 1
    assert inner.sum() > 10
    centre = g(s[inner])
    width = np.sort(np.c_[g(low[inner]) - centre, g(high[inner]) - centre], axis=1)
    np.testing.assert_allclose(width[:, 0], -z * se_g[inner], rtol=1e-9)
    np.testing.assert_allclose(width[:, 1], z * se_g[inner], rtol=1e-9)
    assert np.all(low[ok] <= s[ok]) and np.all(s[ok] <= high[ok])


def test_sas_names_are_aliases_and_bad_names_are_reported() -> None:
    t, e = [1, 2, 3, 4, 5, 6], [1, 0, 1, 1, 0, 1]
    for sas, ours in [("LINEAR", "plain"), ("LOGLOG", "log-log"), ("ASINSQRT", "arcsin"), ("LOGIT", "logit")]:
        pd.testing.assert_frame_equal(kaplan_meier(t, e, conf_type=sas).table, kaplan_meier(t, e, conf_type=ours).table)
    with pytest.raises(AnalysisError, match="conf_type must be one of"):
        kaplan_meier(t, e, conf_type="cubic")
    with pytest.raises(AnalysisError, match="probs"):
        kaplan_meier(t, e).quantiles([50])


def test_one_return_type_grouped_or_not() -> None:
    t, e, g = [1, 2, 3, 4, 5, 6], [1, 0, 1, 1, 0, 1], ["a", "b", "a", "b", "a", "b"]
    single, grouped = kaplan_meier(t, e), kaplan_meier(t, e, g)
    assert isinstance(single, KaplanMeierFit) and isinstance(grouped, KaplanMeierFit)
    assert list(single) == ["all"] and list(grouped) == ["a", "b"]
    assert single.median == single["all"].median  # one curve: its attributes on the fit
    with pytest.raises(AttributeError, match=r"use fit\[label\]\.median"):
        _ = grouped.median
    pd.testing.assert_frame_equal(km_table(grouped), grouped.to_frame().drop(columns="conf_type"))
    text = str(grouped)
    assert "Brookmeyer-Crowley" in text and "conf.type='log'" in text and "CONFTYPE=LOG" in text
    assert list(grouped.quantiles().columns) == ["group", "prob", "time", "ci_low", "ci_high", "conf_type"]


def test_a_group_without_events_has_undefined_quantiles() -> None:
    fit = kaplan_meier([1, 2, 3, 4, 5], [1, 1, 0, 0, 0], group=["a", "a", "b", "b", "b"])
    assert np.isnan(fit["b"].median) and fit["b"].quantiles()[["time", "ci_low", "ci_high"]].isna().all().all()
    assert fit.to_frame().set_index("group").loc["b", "events"] == 0
