"""Proportional-hazards tests of module ``prognosis.cox``: the pre-3.0 ``cox.zph`` test as an option.

The option ``method="schoenfeld"`` is checked against lifelines ``proportional_hazard_test`` (the test of
R survival < 3.0) computed here on the same data (R's lung data, which has tied death times, and random
data with many ties); the default score test of survival >= 3.0 stays checked against R in
``test_prognosis_shared.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from kicc_analysis.errors import AnalysisError
from kicc_analysis.prognosis import cox, ph_test

LIFELINES_NAMES = {"lifelines_rank": "rank", "lifelines_km": "km", "identity": "identity", "log": "log"}


def _compare_with_lifelines(data: pd.DataFrame, covariates: list[str]) -> None:
    lifelines = pytest.importorskip("lifelines")
    from lifelines.statistics import proportional_hazard_test

    ours_model = cox(data, "time", "status", covariates)
    peer_model = lifelines.CoxPHFitter().fit(data[["time", "status", *covariates]], "time", "status")
    np.testing.assert_allclose(ours_model.table["coef"], peer_model.params_.to_numpy(), rtol=1e-5)
    for ours_name, peer_name in LIFELINES_NAMES.items():
        ours = ph_test(ours_model, ours_name, method="schoenfeld").set_index("covariate")
        peer = proportional_hazard_test(peer_model, data, time_transform=peer_name).summary.loc[covariates]
        np.testing.assert_allclose(ours.loc[covariates, "chisq"], peer["test_statistic"].to_numpy(), rtol=2e-5,
                                   err_msg=ours_name)  # fmt: skip
        np.testing.assert_allclose(ours.loc[covariates, "p"], peer["p"].to_numpy(), rtol=2e-5)
        assert (ours["method"].str.contains("lifelines")).all() and (ours["transform"] == ours_name).all()


def test_schoenfeld_option_matches_lifelines_on_lung() -> None:
    lung = pd.read_csv(shared_path("data", "stats", "lung.csv"))[["time", "status", "age", "sex", "ph.ecog"]].dropna()
    _compare_with_lifelines(lung, ["age", "sex", "ph.ecog"])


def test_schoenfeld_option_matches_lifelines_on_tied_random_data() -> None:
    rng = np.random.default_rng(11)
    n = 150
    x1, x2 = rng.normal(size=n), rng.integers(0, 2, n).astype(float)
    time = np.ceil(rng.exponential(20 * np.exp(-0.5 * x1 + 0.3 * x2 * np.linspace(-1, 1, n)))).astype(float)
    status = (rng.random(n) < 0.75).astype(float)
    _compare_with_lifelines(pd.DataFrame({"time": time, "status": status, "x1": x1, "x2": x2}), ["x1", "x2"])


def test_one_covariate_global_equals_its_row_and_methods_differ() -> None:
    lung = pd.read_csv(shared_path("data", "stats", "lung.csv"))
    m = cox(lung, "time", "status", ["sex"])
    old = ph_test(m, method="schoenfeld").set_index("covariate")
    assert old.loc["GLOBAL", "chisq"] == pytest.approx(old.loc["sex", "chisq"], rel=1e-12)
    new = ph_test(m).set_index("covariate")
    assert new.loc["sex", "chisq"] != pytest.approx(old.loc["sex", "chisq"], rel=1e-3)  # two different tests
    assert new["method"].iloc[0].startswith("R survival >= 3.0")


def test_transform_names_cannot_be_confused() -> None:
    d = pd.DataFrame({"t": [5, 8, 3, 9, 12, 4, 7, 10], "e": [1, 1, 0, 1, 0, 1, 1, 1], "x": [1, 0, 1, 1, 0, 0, 1, 0]})
    m = cox(d, "t", "e", ["x"])
    with pytest.raises(AnalysisError, match="only with method='schoenfeld'"):
        ph_test(m, "lifelines_rank")
    with pytest.raises(AnalysisError, match="transform must be one of"):
        ph_test(m, "all", method="schoenfeld")
    with pytest.raises(AnalysisError, match="method must be"):
        ph_test(m, method="grambsch")
    # "km" means 1 - KM(t-) in both methods; lifelines' right-continuous version has its own name
    lung = cox(pd.read_csv(shared_path("data", "stats", "lung.csv")), "time", "status", ["age"])
    km = ph_test(lung, "km", method="schoenfeld")["chisq"].iloc[0]
    assert km != pytest.approx(ph_test(lung, "lifelines_km", method="schoenfeld")["chisq"].iloc[0], rel=1e-4)
