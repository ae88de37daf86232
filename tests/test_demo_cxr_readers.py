"""Tests of kicc_analysis.demo.cxr_readers: zone truth from phantom labels, simulated Brixia readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from kicc_analysis.demo.cxr_readers import (
    BRIXIA_ZONES,
    CXR_READERS,
    _radiograph_cases,
    brixia_grade,
    simulate_brixia_readings,
    write_demo_cxr_readings,
    zone_burden,
)
from kicc_analysis.readings import read_reader_scores, validate_readings


def test_zone_burden_thirds_and_sides():
    lung = np.zeros((9, 4, 4), dtype=np.uint8)
    lung[:, :, :2] = 1  # right lung
    lung[:, :, 2:] = 2  # left lung
    lesion = np.zeros_like(lung)
    lesion[6:9, :, :1] = 1  # right upper third (z high = superior): half of its voxels, GGO
    lesion[0:3, :, 2:] = 2  # left lower third entirely consolidation
    burden = zone_burden(lung, lesion)
    assert burden["A"] == 0.5 and burden["B"] == 0.0 and burden["C"] == 0.0
    assert burden["F"] == 3.0 and burden["D"] == 0.0
    assert brixia_grade([burden[z] for z in BRIXIA_ZONES]).tolist() == [3, 0, 0, 0, 0, 3]


def test_readers_follow_burden_and_juniors_are_less_consistent():
    rng = np.random.default_rng(0)
    n = 400
    burden = rng.gamma(0.8, 0.12, size=(n, 6)) * (rng.random((n, 6)) > 0.3)
    cases = pd.DataFrame(burden, columns=list(BRIXIA_ZONES)).assign(subject=[f"P{i}" for i in range(n)], study="S")
    scores = simulate_brixia_readings(cases, np.random.default_rng(1))
    assert validate_readings(scores).empty
    truth = brixia_grade(burden).ravel()
    zones = scores[scores["item"] != "total"].pivot_table(index=["subject", "item"], columns="reader", values="score")
    zones = zones.loc[[(f"P{i}", z) for i in range(n) for z in BRIXIA_ZONES]]
    kappa = {r.name: cohen_kappa_score(truth, zones[r.name], weights="quadratic") for r in CXR_READERS}
    assert kappa["S1"] > kappa["J1"] + 0.05 and kappa["S1"] > kappa["J2"] + 0.05
    between = {
        "S1-J1": cohen_kappa_score(zones["S1"], zones["J1"], weights="quadratic"),
        "J1-J2": cohen_kappa_score(zones["J1"], zones["J2"], weights="quadratic"),
    }
    assert between["J1-J2"] < between["S1-J1"]
    totals = scores[scores["item"] == "total"].set_index(["subject", "reader"])["score"].unstack()
    rho = spearmanr(burden.sum(axis=1), totals.loc[cases["subject"], "S1"]).statistic
    assert rho > 0.8
    assert totals["J1"].mean() < totals["S1"].mean() < totals["J2"].mean()  # under- and over-caller


def test_demo_cases_from_plans(tmp_path):
    plan = {
        "seed": 5,
        "subjid": "KD-0001",
        "patient_seed": 123,
        "body_scale": 1.0,
        "studies": [
            {"modality": "CT", "day": 0, "opacity": 20.0, "cons": 0.3},
            {"modality": "DX", "day": 1, "opacity": 20.0, "cons": 0.3},
            {"modality": "DX", "day": 3, "opacity": 0.0, "cons": 0.0},
        ],
    }
    cases = _radiograph_cases([plan])
    assert len(cases) == 2 and cases["study"].is_unique
    assert cases.loc[0, list(BRIXIA_ZONES)].sum() > 0.5 and cases.loc[1, list(BRIXIA_ZONES)].sum() == 0
    path = write_demo_cxr_readings(tmp_path, [plan], seed=5)
    table = read_reader_scores(path)
    assert len(table) == 2 * 3 * 7 and validate_readings(table).empty
    assert (table[table["study"] == cases.loc[1, "study"]]["score"] == 0).all()
