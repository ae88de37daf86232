"""Paired and unpaired DeLong tests of module ``prognosis.roc`` on pROC's aSAH data.

Reference values: pROC's own test suite, ``tests/testthat/test-roc.test.R`` (xrobin/pROC, commit
0bc764d2702cfea130a80dd41ea43fd21d169752), where ``r.wfns <- roc(aSAH$outcome, aSAH$wfns)`` etc.:

* paired (default) ``roc.test(r.wfns, r.s100b)``: Z = 2.20898359144091, p = 0.0271757822291882,
  95 % CI of the difference 0.0104061769564846 to 0.174214419249478;
* unpaired ``roc.test(..., paired = FALSE)``: (wfns, s100b) D = 1.43490640926908, p = 0.152825378808796;
  (wfns, ndka) D = 3.10125096778969, p = 0.00220950791756457; (ndka, s100b) D = -1.55995743389685,
  p = 0.120192832430845.

For two truly different patient groups (men vs women) the unpaired statistic is also derived exactly from
the DeLong placement values computed by brute force over all case-control pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from scipy import stats

from kicc_analysis.prognosis import delong_test, delong_test_unpaired


@pytest.fixture(scope="module")
def asah() -> pd.DataFrame:
    d = pd.read_csv(shared_path("data", "stats", "aSAH.csv"))
    d["poor"] = (d["outcome"] == "Poor").astype(int)
    return d


def test_paired_delong_matches_proc_to_its_printed_digits(asah: pd.DataFrame) -> None:
    res = delong_test(asah["poor"], asah["wfns"], asah["s100b"])
    assert res.z == pytest.approx(2.20898359144091, rel=1e-10)
    assert res.p == pytest.approx(0.0271757822291882, rel=1e-10)
    assert (res.ci_low, res.ci_high) == pytest.approx((0.0104061769564846, 0.174214419249478), rel=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "d", "p"),
    [
        ("wfns", "s100b", 1.43490640926908, 0.152825378808796),
        ("wfns", "ndka", 3.10125096778969, 0.00220950791756457),
        ("ndka", "s100b", -1.55995743389685, 0.120192832430845),
    ],
)
def test_unpaired_delong_matches_proc(asah: pd.DataFrame, a: str, b: str, d: float, p: float) -> None:
    res = delong_test_unpaired(asah["poor"], asah[a], asah["poor"], asah[b])
    assert res.z == pytest.approx(d, rel=1e-10)
    assert res.extra["statistic_d"] == res.z == res.statistic and res.statistic_name == "D"
    assert res.df == res.extra["df"] and f"D({res.df:.1f})" in str(res)
    assert res.p == pytest.approx(p, rel=1e-9)
    assert res.method == "delong_test_unpaired" and "paired=FALSE" in res.convention
    swapped = delong_test_unpaired(asah["poor"], asah[b], asah["poor"], asah[a])
    assert swapped.z == pytest.approx(-res.z) and swapped.p == pytest.approx(res.p)


def _placements(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong variance by brute force over every case-control pair."""
    cases, controls = s[y == 1], s[y == 0]
    psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / len(cases) + v01.var(ddof=1) / len(controls))


def test_unpaired_delong_on_different_patients_is_derived_exactly(asah: pd.DataFrame) -> None:
    men, women = asah[asah["gender"] == "Male"], asah[asah["gender"] == "Female"]
    res = delong_test_unpaired(men["poor"], men["s100b"], women["poor"], women["s100b"])
    auc_m, var_m = _placements(men["poor"].to_numpy(), men["s100b"].to_numpy())
    auc_w, var_w = _placements(women["poor"].to_numpy(), women["s100b"].to_numpy())
    d = (auc_m - auc_w) / np.sqrt(var_m + var_w)
    df = (var_m + var_w) ** 2 / (var_m**2 / (len(men) - 1) + var_w**2 / (len(women) - 1))
    assert (res.extra["auc_a"], res.extra["auc_b"]) == pytest.approx((auc_m, auc_w), rel=1e-12)
    assert res.z == pytest.approx(d, rel=1e-10)
    assert res.extra["df"] == pytest.approx(df, rel=1e-10)
    assert res.p == pytest.approx(2 * stats.t.sf(abs(d), df), rel=1e-10)
    half = stats.t.ppf(0.975, df) * res.se
    assert (res.ci_low, res.ci_high) == pytest.approx((res.estimate - half, res.estimate + half), rel=1e-12)
    assert res.n == len(asah)
