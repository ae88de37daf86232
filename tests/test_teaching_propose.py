"""Case proposer on the demo cohort: the patient whose opacity changed most (known from the demo's ground truth)
comes first, with the reason; readers who disagree are proposed too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.teaching import PROPOSAL_COLUMNS, TeachingError, propose_cases


@pytest.fixture(scope="module")
def quantified(demo_repository):
    from kicc_analysis.pipeline import quantify_cohort

    return quantify_cohort(demo_repository, show_progress=False)


def _truth_change(repository) -> pd.Series:
    """Follow-up minus baseline opacity (% of lung) per patient from the demo's ground truth (lung-kernel series)."""
    truth = pd.read_csv(repository / "ground_truth" / "truth.csv")
    truth = truth[truth["series_role"] == "lung"].sort_values("img_day")
    by = truth.groupby("subjid")["opacity_pct"]
    change = by.last() - by.first()
    return change[by.size() >= 2]


def test_largest_change_ranks_first(quantified, demo_repository):
    truth = _truth_change(demo_repository)
    assert len(truth) >= 2  # the demo has patients with a follow-up CT
    known = truth.abs().idxmax()
    table = propose_cases(quantified.cohort, readings=demo_repository / "readings" / "reader_scores.csv")
    assert list(table.columns) == list(PROPOSAL_COLUMNS)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["score"].is_monotonic_decreasing
    first = table.iloc[0]
    assert first["subjid"] == known
    assert "opacity" in first["reason"] and "2 CT timepoints" in first["reason"]
    # the measured change has the ground truth's sign and is the quantification module's number
    assert np.sign(first["opacity_change_pct"]) == np.sign(truth[known])
    row = quantified.cohort.set_index("subjid").loc[known]
    assert first["opacity_change_pct"] == pytest.approx(row["ct_opacity_pct_change"], abs=0.01)
    # every patient with a follow-up CT is proposed
    assert set(truth.index) <= set(table["subjid"])


def test_discordant_readers_are_proposed_with_the_range(tmp_path):
    cohort = pd.DataFrame({"subjid": ["KICC-S01-0001", "KICC-S01-0002", "KICC-S01-0003"], "n_ct_studies": [1, 1, 1]})
    rows = []
    for subject, totals in (("KICC-S01-0001", (5, 5, 6)), ("KICC-S01-0002", (4, 12, 8)), ("KICC-S01-0003", (2, 2, 2))):
        for reader, total in zip(("R1", "R2", "R3"), totals, strict=True):
            scores = [min(5, max(0, total - 5 * i)) for i in range(5)]  # five lobes summing to the total
            rows += [{"subjid": subject, "reader": reader, "item": lobe, "score": s}
                     for lobe, s in zip(("RUL", "RML", "RLL", "LUL", "LLL"), scores, strict=True)]  # fmt: skip
    path = tmp_path / "reader_scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = propose_cases(cohort, readings=path)
    assert table["subjid"].tolist() == ["KICC-S01-0002"]  # range 8; 1 and 0 are below the threshold (3)
    assert table.loc[0, "reader_range"] == 8 and "differ by 8" in table.loc[0, "reason"]
    assert propose_cases(cohort, readings=path, min_reader_range=1)["subjid"].tolist() == [
        "KICC-S01-0002",
        "KICC-S01-0001",
    ]


def test_brixia_change_without_ct_quantification():
    cohort = pd.DataFrame(
        {"subjid": ["A-1", "A-2"], "n_ct_studies": [0, 0], "baseline_cxr_brixia": [2.0, 5.0],
         "worst_cxr_brixia": [11.0, 6.0]}
    )  # fmt: skip
    table = propose_cases(cohort)
    assert table["subjid"].tolist() == ["A-1"] and "Brixia +9.0" in table.loc[0, "reason"]


def test_proposer_needs_subjid():
    with pytest.raises(TeachingError, match="'subjid'"):
        propose_cases(pd.DataFrame({"id": [1]}))
