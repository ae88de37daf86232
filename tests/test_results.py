"""kicc_analysis.results: the shared Estimate protocol and its printed summary."""

from __future__ import annotations

import math

import pytest

from kicc_analysis.agreement import gwet_ac
from kicc_analysis.results import Estimate, estimates_to_frame

PROTOCOL = ("estimate", "se", "ci_low", "ci_high", "p", "n", "method", "convention")


def test_every_protocol_field_and_positional_construction_still_work():
    est = Estimate(0.4, 0.1, 0.2, 0.6, 4.0, 6e-5, 30, "demo", "Wald", 0.9)  # the 10 positional fields of old
    assert all(hasattr(est, name) for name in PROTOCOL)
    assert est.confidence == 0.9 and math.isnan(est.statistic) and math.isnan(est.df)
    frame = est.to_frame()
    assert set(PROTOCOL) <= set(frame.columns) and "extra" not in frame.columns
    assert float(est) == 0.4


def test_summary_is_readable_and_names_the_convention():
    est = gwet_ac([[1, 1, 2], [2, 2, 2], [3, 3, 3], [1, 2, 1], [2, 2, 2]])
    text = est.summary()
    assert text == str(est)
    assert text.startswith("gwet_ac1: ") and "95% CI" in text and f"SE {est.se:.4f}" in text
    assert f"t({est.n - 1:d}) = " in text and f"n = {est.n}" in text
    assert text.splitlines()[1] == f"  convention: {est.convention}"
    assert "90% CI" in str(Estimate(1.0, 0.1, 0.8, 1.2, confidence=0.9, method="m"))
    assert str(Estimate(2.5, method="icc")) == "icc: 2.5000, n = 0"


def test_estimates_to_frame_stacks_rows():
    table = estimates_to_frame({"a": Estimate(1.0, n=3), "b": Estimate(2.0, n=4)})
    assert table["name"].tolist() == ["a", "b"] and table["estimate"].tolist() == [1.0, 2.0]
    with pytest.raises(TypeError):
        Estimate()  # estimate is required
