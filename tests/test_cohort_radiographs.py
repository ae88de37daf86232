"""The cohort table's radiograph timeline (n_radiographs, baseline_cxr_day, baseline/worst Brixia total)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kicc_analysis.cohort import build_cohort


def test_radiograph_timeline_on_the_demo(demo_repository, tmp_path):
    build = build_cohort(demo_repository, index_dir=tmp_path / "index", write_snapshot=False, show_progress=False)
    table = build.table.set_index("subjid")
    studies = pd.read_csv(demo_repository / "clinical" / "imaging_studies.csv")
    cxr = studies[studies["img_modality"] != "CT"]
    scores = pd.read_csv(demo_repository / "readings" / "radiograph_scores.csv")
    totals = scores[scores["item"] == "total"].groupby("study")["score"].mean()
    for subjid, row in table.iterrows():
        mine = cxr[cxr["subjid"] == subjid].sort_values(["img_day", "img_study_uid"])
        assert row["n_radiographs"] == len(mine)
        if mine.empty:
            assert np.isnan(row["baseline_cxr_day"]) and np.isnan(row["worst_cxr_brixia"])
            continue
        assert row["baseline_cxr_day"] == mine["img_day"].min()
        study_totals = mine["img_study_uid"].map(totals)
        assert row["baseline_cxr_brixia"] == study_totals.iloc[0]
        assert row["worst_cxr_brixia"] == study_totals.max()
    assert table["baseline_cxr_brixia"].notna().sum() == (table["n_radiographs"] > 0).sum() > 0
