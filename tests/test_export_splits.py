"""Patient-level splits: grouping, stratification, reproducibility, leakage check (kicc_analysis.export.splits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.export.splits import (
    SplitError,
    check_no_leakage,
    kfold_splits,
    leave_one_site_out,
    patient_splits,
    split_report,
)


def _leaky_cohort(n_patients: int = 60, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients with 1-8 studies each (follow-ups), 4 sites, 25 % deaths: random per-study splitting leaks."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame(
        {
            "subjid": [f"KICC-S{1 + i % 4:02d}-{i:04d}" for i in range(n_patients)],
            "kicc_site": [f"S{1 + i % 4:02d}" for i in range(n_patients)],
            "outco_outcome": np.where(rng.random(n_patients) < 0.25, 2, 1),
            "demog_age": rng.integers(20, 90, n_patients),
        }
    )
    rows = []
    for subjid in patients["subjid"]:
        for k in range(int(rng.integers(1, 9))):
            rows.append(
                {"subjid": subjid, "study_uid": f"1.2.3.{subjid[-4:]}.{k}", "series_uid": f"1.2.4.{subjid[-4:]}.{k}"}
            )
    return patients, pd.DataFrame(rows)


def test_naive_study_level_split_leaks_and_patient_split_does_not():
    patients, studies = _leaky_cohort()
    naive = studies.assign(split=np.random.default_rng(0).choice(["train", "validation", "test"], len(studies)))
    with pytest.raises(SplitError, match="subjid"):
        check_no_leakage(naive)
    assignment = patient_splits(patients, seed=7)
    items = studies.merge(assignment, on="subjid")
    check_no_leakage(items)
    assert items.groupby("subjid")["split"].nunique().max() == 1
    assert len(items) == len(studies)  # every study kept


def test_study_uid_in_two_splits_is_caught_even_under_different_patients():
    items = pd.DataFrame({"subjid": ["A", "B"], "study_uid": ["1.2.3", "1.2.3"], "split": ["train", "test"]})
    with pytest.raises(SplitError, match="study_uid"):
        check_no_leakage(items)


def test_split_is_reproducible_from_the_seed_and_follows_fractions():
    patients, _ = _leaky_cohort(200)
    first = patient_splits(patients, seed=11)
    pd.testing.assert_frame_equal(first, patient_splits(patients, seed=11))
    assert not first["split"].equals(patient_splits(patients, seed=12)["split"])
    shares = first["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["validation"] == pytest.approx(0.1, abs=0.03)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)


def test_every_split_holds_every_site_and_both_outcomes():
    patients, _ = _leaky_cohort(200)
    table = patients.merge(patient_splits(patients, seed=5), on="subjid")
    for _, part in table.groupby("split"):
        assert set(part["kicc_site"]) == set(patients["kicc_site"])
        assert set(part["outco_outcome"]) == {1, 2}
    rates = table.groupby("split")["outco_outcome"].apply(lambda s: (s == 2).mean())
    assert rates.max() - rates.min() < 0.06


def test_kfold_is_grouped_and_at_least_as_balanced_as_scikit_learn():
    sklearn_model_selection = pytest.importorskip("sklearn.model_selection")
    patients, studies = _leaky_cohort(120)
    ours = kfold_splits(patients, k=5, seed=2)
    assert ours["subjid"].is_unique and set(ours["fold"]) == set(range(5))
    # peer: scikit-learn StratifiedGroupKFold on the study table, groups = patients, classes = site x outcome
    table = studies.merge(patients, on="subjid")
    strata = table["kicc_site"] + "|" + table["outco_outcome"].astype(str)
    peer = sklearn_model_selection.StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=2)
    peer_fold = pd.Series(-1, index=table.index)
    for fold, (_, test_index) in enumerate(peer.split(table, strata, groups=table["subjid"])):
        peer_fold.iloc[test_index] = fold
    assert table.assign(fold=peer_fold).groupby("subjid")["fold"].nunique().max() == 1
    ours_rates = patients.merge(ours, on="subjid").groupby("fold")["outco_outcome"].apply(lambda s: (s == 2).mean())
    peer_patients = table.assign(fold=peer_fold).drop_duplicates("subjid")
    peer_rates = peer_patients.groupby("fold")["outco_outcome"].apply(lambda s: (s == 2).mean())
    assert ours_rates.max() - ours_rates.min() <= peer_rates.max() - peer_rates.min() + 0.02


def test_leave_one_site_out_and_report():
    patients, studies = _leaky_cohort(40)
    loso = leave_one_site_out(patients)
    expected = patients.set_index("subjid")["kicc_site"]
    assert (loso.set_index("subjid")["fold"].reindex(expected.index) == expected).all()
    assignment = patient_splits(patients, seed=1)
    report = split_report(patients, assignment, studies)
    assert report["split"].tolist() == ["train", "validation", "test"]
    assert report["patients"].sum() == 40
    assert report["studies"].sum() == studies["study_uid"].nunique()
    expected_death = (patients.merge(assignment).query("split == 'test'")["outco_outcome"] == 2).mean()
    assert report.set_index("split").loc["test", "death_rate"] == pytest.approx(expected_death)


def test_bad_inputs_are_one_line_errors():
    patients, _ = _leaky_cohort(10)
    with pytest.raises(SplitError, match="fractions"):
        patient_splits(patients, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(SplitError, match="unique"):
        patient_splits(pd.concat([patients, patients.head(1)]))
    with pytest.raises(SplitError, match="'hospital'"):
        patient_splits(patients, site="hospital")
