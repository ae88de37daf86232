"""Helpers for the prognosis tests: compare to published values at their printed precision."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def published_tolerance(value: float, rel_floor: float = 0.0, units: float = 0.5) -> float:
    """``units`` (default half a unit) of the last printed digit of ``value`` (as written in the reference JSON)."""
    text = repr(float(value)).lower()
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if mantissa.endswith(".0") and not exponent:
        decimals = 1
    decimals -= int(exponent) if exponent else 0
    return units * 10.0 ** (-decimals) * (1 + 1e-9) + rel_floor * max(1.0, abs(value))


def assert_published(actual: Any, expected: Any, what: str, rel_floor: float = 0.0, units: float = 0.5) -> None:
    """Assert ``actual`` equals ``expected`` to the precision each expected number is printed with."""
    exp = np.atleast_1d(np.asarray(expected, dtype=object))
    act = np.atleast_1d(np.asarray(actual, dtype=float))
    assert act.shape == exp.shape, f"{what}: shape {act.shape} != expected {exp.shape}"
    for i, (a, e) in enumerate(zip(act, exp, strict=True)):
        if e is None:
            continue
        if isinstance(e, int) and not isinstance(e, bool):
            assert a == e, f"{what}[{i}]: {a} != {e}"
            continue
        tol = published_tolerance(float(e), rel_floor, units)
        assert math.isfinite(a) and abs(a - float(e)) <= tol, f"{what}[{i}]: {a!r} != {e!r} (tolerance {tol:g})"


def test_published_tolerance_follows_printed_digits() -> None:
    assert abs(published_tolerance(0.8571) - 0.5e-4) < 1e-10
    assert abs(published_tolerance(16.79) - 0.5e-2) < 1e-10
    assert abs(published_tolerance(4.17e-05) - 0.5e-7) < 1e-15


def test_assert_published_rejects_a_wrong_digit() -> None:
    import pytest

    assert_published([0.85714], [0.8571], "ok")
    with pytest.raises(AssertionError):
        assert_published([0.8572], [0.8571], "bad")
