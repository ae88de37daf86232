"""Tests of kicc_analysis.readings: the scheme table, the reader-score format and its validation, the public
BrixIA and Cohen loaders (../shared/data/cxr/brixia_cohen)."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

import kicc_analysis.readings.schemes as schemes_module
import kicc_analysis.readings.scores as scores_module
from kicc_analysis.errors import ReadingsError
from kicc_analysis.readings import (
    SCHEMES,
    get_scheme,
    load_brixia_annotations,
    load_cohen_severity,
    read_reader_scores,
    reading_totals,
    scheme_table,
    validate_readings,
)


def test_scheme_ranges_as_published():
    table = scheme_table().set_index(["scheme", "item"])
    # Brixia: 6 zones 0-3, total 0-18 (Borghesi & Maroldi 2020)
    assert SCHEMES["brixia"].items == ("A", "B", "C", "D", "E", "F")
    assert (table.loc["brixia"].query("kind == 'item'")[["min", "max"]] == [0, 3]).all().all()
    assert tuple(table.loc[("brixia", "total"), ["min", "max"]]) == (0, 18)
    # RALE: extent 0-4 x density 1-3 in four quadrants, total 0-48 (Warren et al. 2018)
    assert tuple(table.loc[("rale", "RUQ_extent"), ["min", "max"]]) == (0, 4)
    assert tuple(table.loc[("rale", "LLQ_density"), ["min", "max"]]) == (1, 3)
    assert tuple(table.loc[("rale", "total"), ["min", "max"]]) == (0, 48)
    # Cohen: per lung extent 0-4, opacity 0-3; totals 0-8 and 0-6
    assert tuple(table.loc[("cohen", "extent_total"), ["min", "max"]]) == (0, 8)
    assert tuple(table.loc[("cohen", "opacity_total"), ["min", "max"]]) == (0, 6)
    # CT per lobe 0-5 (total 0-25) and suspicion 1-5
    assert tuple(table.loc[("ct_lobe", "total"), ["min", "max"]]) == (0, 25)
    assert tuple(table.loc[("ct_suspicion", "suspicion"), ["min", "max"]]) == (1, 5)
    assert table["citation"].str.len().min() > 40
    # Brixia zone meaning: A-C right lung upper/middle/lower
    assert "right upper" in SCHEMES["brixia"].item("A").description
    assert "left lower" in SCHEMES["brixia"].item("F").description


def test_rale_total_is_sum_of_products():
    rale = get_scheme("RALE")
    scores = {"RUQ_extent": 4, "RUQ_density": 3, "RLQ_extent": 2, "RLQ_density": 1, "LUQ_extent": 0,
              "LLQ_extent": 1, "LLQ_density": 2}  # fmt: skip
    assert rale.compute_total("total", scores) == 4 * 3 + 2 * 1 + 0 + 1 * 2
    with pytest.raises(ReadingsError, match="unknown scoring scheme 'rales'.*brixia"):
        get_scheme("rales")


def _reading(subject="P1", reader="R1", scheme="brixia", scores=(1, 2, 3, 0, 1, 1), total=8, study="S1"):
    items = list(SCHEMES[scheme].items)
    rows = [dict(subject=subject, study=study, reader=reader, scheme=scheme, item=i, score=s)
            for i, s in zip(items, scores, strict=True)]  # fmt: skip
    if total is not None:
        rows.append(dict(subject=subject, study=study, reader=reader, scheme=scheme, item="total", score=total))
    return rows


def test_valid_readings_have_no_problems():
    table = pd.DataFrame(_reading() + _reading(reader="R2", scores=(0, 0, 0, 0, 0, 0), total=0))
    assert validate_readings(table).empty


def test_every_problem_is_reported_with_row_and_reader(tmp_path):
    rows = _reading(reader="R1", scores=(1, 2, 4, 0, 1, 1), total=9)  # C out of range; total 9 = sum, fine
    rows += _reading(reader="R2", scores=(1, 1, 1, 1, 1, 1), total=7)  # total mismatch
    rows += _reading(reader="R3")[:4]  # missing E, F (and no total)
    rows += _reading(reader="R4", scores=(1, 1, 1, 1, 1, 1), total=6)
    rows.append(dict(subject="P1", study="S1", reader="R4", scheme="brixia", item="A", score=2))  # duplicate
    rows.append(dict(subject="P1", study="S1", reader="R5", scheme="brixia", item="G", score=1))  # unknown item
    rows.append(dict(subject="P1", study="S1", reader="R5", scheme="bcs", item="A", score=1))  # unknown scheme
    rows += _reading(reader="R6", scores=(1, 1, 1.5, 1, 1, "x"), total=None)
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = read_reader_scores(path)
    assert len(table) == len(rows)  # nothing dropped
    problems = validate_readings(table)
    found = {(p.reader, p.problem, p.item, p.row) for p in problems.itertuples()}
    assert ("R1", "out_of_range", "C", 4) in found
    assert ("R2", "total_mismatch", "total", 15) in found
    assert any(r == "R3" and p == "missing_item" and i == "E, F" for r, p, i, _ in found)
    dups = problems[problems["problem"] == "duplicate"]
    assert sorted(dups["row"]) == [20, 27] and set(dups["reader"]) == {"R4"}
    assert "rows 20, 27" in dups["detail"].iloc[0]
    assert ("R5", "unknown_item", "G", 28) in found
    assert ("R5", "unknown_scheme", "A", 29) in found
    assert ("R6", "non_integer", "C", 32) in found
    assert ("R6", "non_numeric", "F", 35) in found
    # a total computed from the items is unaffected by the declared one
    totals = reading_totals(table, "brixia").set_index("reader")["score"]
    assert totals["R2"] == 6 and totals["R1"] == 9 and np.isnan(totals["R3"])
    assert problems["row"].is_monotonic_increasing


def test_rale_density_optional_when_extent_zero():
    base = dict(subject="P", study="", reader="R", scheme="rale")
    rows = [{**base, "item": "RUQ_extent", "score": 0}, {**base, "item": "RLQ_extent", "score": 2},
            {**base, "item": "RLQ_density", "score": 3}, {**base, "item": "LUQ_extent", "score": 1},
            {**base, "item": "LLQ_extent", "score": 0}, {**base, "item": "total", "score": 6}]  # fmt: skip
    problems = validate_readings(pd.DataFrame(rows))
    assert problems["problem"].tolist() == ["missing_item"] and problems["item"].iloc[0] == "LUQ_density"
    rows.insert(4, {**base, "item": "LUQ_density", "score": 2})
    problems = validate_readings(pd.DataFrame(rows))
    assert problems["problem"].tolist() == ["total_mismatch"] and "items give 8" in problems["detail"].iloc[0]


def test_legacy_ct_layout_is_read(tmp_path):
    path = tmp_path / "reader_scores.csv"
    pd.DataFrame(
        {
            "subjid": ["K001"] * 7,
            "reader": ["R1"] * 7,
            "item": ["RUL", "RML", "RLL", "LUL", "LLL", "suspicion", "X"],
            "score": [1, 0, 3, 6, 2, 5, 1],
        }  # fmt: skip
    ).to_csv(path, index=False)
    table = read_reader_scores(path)
    assert table["scheme"].tolist()[:6] == ["ct_lobe"] * 5 + ["ct_suspicion"]
    assert table["study"].isna().all() and table["subject"].eq("K001").all()
    problems = validate_readings(table)
    assert problems[["row", "problem"]].to_numpy().tolist() == [[5, "out_of_range"], [8, "unknown_scheme"]]


def test_bad_file_layout_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("patient,zone,value\nA,B,1\n")
    with pytest.raises(ReadingsError) as info:
        read_reader_scores(path)
    assert "x.csv" in str(info.value) and "subject" in str(info.value) and "\n" not in str(info.value)


def test_brixia_public_annotations():
    path = shared_path("data", "cxr", "brixia_cohen", "public-annotations.csv")
    table = load_brixia_annotations(path)
    assert len(table) == 192 * 2 * 7 and table["subject"].nunique() == 192
    assert set(table["reader"]) == {"senior", "junior"}
    assert validate_readings(table).empty  # every zone 0-3, every global = sum of zones
    raw = pd.read_csv(path, encoding="utf-8-sig")
    totals = reading_totals(table, "brixia").pivot(index="subject", columns="reader", values="score")
    np.testing.assert_array_equal(totals.loc[raw["filename"], "senior"], raw["S-Global"])
    np.testing.assert_array_equal(totals.loc[raw["filename"], "junior"], raw["J-Global"])


def test_cohen_severity_parsed_with_ranges(tmp_path):
    path = shared_path("data", "cxr", "brixia_cohen", "covid-severity-scores.csv")
    table = load_cohen_severity(path)
    assert len(table) == 94 and table["filename"].is_unique
    assert table.attrs["ranges"] == {"extent_mean": (0, 8), "opacity_mean": (0, 6)}
    assert (table["problem"] == "").all()
    assert table["extent_mean"].between(0, 8).all() and table["opacity_mean"].between(0, 6).all()
    # means of three integer readers: multiples of 1/3 rounded to 0.1
    thirds = np.round(np.round(table["extent_mean"] * 3) / 3, 1)
    np.testing.assert_allclose(thirds, table["extent_mean"], atol=1e-9)
    bad = tmp_path / "bad.csv"
    bad.write_text("# doc\nfilename,geographic_mean,opacity_mean\na.png,9.0,2\nb.png,x,7\n")
    broken = load_cohen_severity(bad)
    assert broken["problem"].tolist() == [
        "extent_mean 9 outside 0-8",
        "extent_mean 'x' is not a number; opacity_mean 7 outside 0-6",
    ]


@pytest.mark.parametrize("module", [schemes_module, scores_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_demo_readings_in_both_layouts(demo_repository):
    ct = read_reader_scores(demo_repository / "readings" / "reader_scores.csv")
    assert set(ct["scheme"]) == {"ct_lobe", "ct_suspicion"} and validate_readings(ct).empty
    cxr = read_reader_scores(demo_repository / "readings" / "radiograph_scores.csv")
    assert set(cxr["scheme"]) == {"brixia"} and set(cxr["reader"]) == {"S1", "J1", "J2"}
    assert validate_readings(cxr).empty
