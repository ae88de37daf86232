"""Patient-level splits: stratified by site and outcome, grouped by patient, reproducible from a seed.

Every study and series of a patient lands in the split of that patient: the unit of assignment is the patient
(``subjid``), never the image. Strata are ``site x outcome`` (or ``site x severity bin``); inside each stratum the
patients are shuffled with ``numpy.random.default_rng(seed)`` and each in turn goes to the split furthest below its
share *within the stratum* by at least one whole patient (ties, including every patient of a small stratum: the split
furthest below its share within the patient's outcome level, then site, then overall), so every split receives its
share of every stratum large enough to share and the leftovers of small strata still balance the outcome (k-fold: the
fold with the fewest patients of the stratum, then of the outcome level, the site, overall). This is the
same idea as scikit-learn's ``StratifiedGroupKFold`` (a development-only dependency here), implemented in a few lines
so that the export needs no run-time scikit-learn; because patients are the rows, grouping is exact by construction.

:func:`check_no_leakage` proves the result: no patient, study or series UID appears in two splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kicc_analysis.errors import KiccError

ID = "subjid"
SPLITS = ("train", "validation", "test")


class SplitError(KiccError):
    """A split cannot be made or a split leaks (a patient, study or series in two splits)."""


def _strata(patients: pd.DataFrame, site: str | None, stratify: str | None) -> pd.Series:
    parts = []
    for column in (site, stratify):
        if column is None:
            continue
        if column not in patients.columns:
            raise SplitError(f"split: stratification column '{column}' not in the cohort table")
        parts.append(patients[column].astype("string").fillna("NA"))
    if not parts:
        return pd.Series("all", index=patients.index)
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


def _margins(patients: pd.DataFrame, site: str | None, stratify: str | None) -> list[pd.Series]:
    """The single stratification columns as labelled strings (``stratify`` first, then ``site``)."""
    return [
        column + "=" + patients[column].astype("string").fillna("NA")
        for column in (stratify, site)
        if column is not None
    ]


def patient_splits(
    cohort: pd.DataFrame,
    *,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 19,
    site: str | None = "kicc_site",
    stratify: str | None = "outco_outcome",
) -> pd.DataFrame:
    """Assign each patient to ``train``, ``validation`` or ``test``.

    Parameters
    ----------
    cohort : DataFrame
        One row per patient with ``subjid`` (the cohort table; duplicated pseudonyms raise).
    fractions : tuple of 3 floats
        Target shares of patients for train, validation, test (sum 1; a zero share gives an empty split).
    seed : int
        Seed of the shuffle; the same seed and cohort give the same assignment.
    site, stratify : str or None
        Columns whose combination forms the strata (None to ignore one).

    Returns
    -------
    DataFrame
        ``subjid, split, stratum``, sorted by ``subjid``.

    Examples
    --------
    >>> table = pd.DataFrame({"subjid": [f"KICC-S01-{i:04d}" for i in range(10)], "kicc_site": "S01",
    ...                       "outco_outcome": [1, 2] * 5})
    >>> patient_splits(table, fractions=(0.6, 0.0, 0.4), seed=1)["split"].value_counts().to_dict()
    {'train': 6, 'test': 4}
    """
    if ID not in cohort.columns:
        raise SplitError(f"split: cohort table has no '{ID}' column")
    if cohort[ID].isna().any() or cohort[ID].duplicated().any():
        raise SplitError(f"split: '{ID}' must be unique and present (one row per patient)")
    shares = np.asarray(fractions, dtype=float)
    if shares.shape != (3,) or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise SplitError(f"split: fractions must be 3 non-negative numbers summing to 1, found {fractions}")
    patients = cohort.sort_values(ID).reset_index(drop=True)
    strata = _strata(patients, site, stratify)
    rng = np.random.default_rng(seed)
    assigned = pd.Series("", index=patients.index, dtype=object)
    counts = np.zeros(3)  # patients per split over all strata (tie-break)
    margins = _margins(patients, site, stratify)
    margin_counts = {key: np.zeros(3) for values in margins for key in values.unique()}

    def deficit(tally: np.ndarray) -> np.ndarray:
        return np.round(np.where(shares > 0, shares * (tally.sum() + 1) - tally, -np.inf), 9)

    for key in sorted(strata.unique()):
        members = patients.index[strata == key].to_numpy()
        members = members[rng.permutation(len(members))]
        local = np.zeros(3)
        for index in members:
            keys = [values[index] for values in margins]
            # the split furthest below its share within the stratum; ties: within its outcome, its site, overall
            # within the stratum only whole owed patients count (floor), so singleton strata fall to the margins
            owed = np.where(shares > 0, np.floor(shares * (local.sum() + 1) - local + 1e-9), -np.inf)
            gaps = [owed, *(deficit(margin_counts[m]) for m in keys), deficit(counts)]
            choice = max(range(3), key=lambda j: (*(gap[j] for gap in gaps), -j))
            assigned[index] = SPLITS[choice]
            local[choice] += 1
            counts[choice] += 1
            for m in keys:
                margin_counts[m][choice] += 1
    return pd.DataFrame({ID: patients[ID].to_numpy(), "split": assigned.to_numpy(), "stratum": strata.to_numpy()})


def kfold_splits(
    cohort: pd.DataFrame,
    *,
    k: int = 5,
    seed: int = 19,
    site: str | None = "kicc_site",
    stratify: str | None = "outco_outcome",
) -> pd.DataFrame:
    """Patient-level stratified k-fold lists: ``subjid, fold`` (0 .. k-1), each patient in exactly one fold.

    Examples
    --------
    >>> table = pd.DataFrame({"subjid": [f"P{i:02d}" for i in range(9)], "kicc_site": "S01", "outco_outcome": 1})
    >>> kfold_splits(table, k=3, seed=0)["fold"].value_counts().sort_index().tolist()
    [3, 3, 3]
    """
    if k < 2:
        raise SplitError(f"split: k must be at least 2, found {k}")
    patients = cohort.sort_values(ID).reset_index(drop=True)
    strata = _strata(patients, site, stratify)
    rng = np.random.default_rng(seed)
    fold = np.full(len(patients), -1)
    counts = np.zeros(k)
    margins = _margins(patients, site, stratify)
    margin_counts = {key: np.zeros(k) for values in margins for key in values.unique()}
    for key in sorted(strata.unique()):
        members = patients.index[strata == key].to_numpy()
        members = members[rng.permutation(len(members))]
        local = np.zeros(k)
        for index in members:
            keys = [values[index] for values in margins]  # outcome level first, then site
            # fewest of this stratum, then of its outcome, then of its site, then overall, then lowest fold number
            choice = min(range(k), key=lambda j: (local[j], *(margin_counts[m][j] for m in keys), counts[j], j))
            fold[index] = choice
            local[choice] += 1
            counts[choice] += 1
            for m in keys:
                margin_counts[m][choice] += 1
    return pd.DataFrame({ID: patients[ID].to_numpy(), "fold": fold, "stratum": strata.to_numpy()})


def leave_one_site_out(cohort: pd.DataFrame, *, site: str = "kicc_site") -> pd.DataFrame:
    """One fold per site: ``subjid, fold`` where fold is the held-out site of that patient."""
    if site not in cohort.columns:
        raise SplitError(f"split: site column '{site}' not in the cohort table")
    out = cohort[[ID, site]].rename(columns={site: "fold"}).sort_values(ID).reset_index(drop=True)
    out["fold"] = out["fold"].astype("string").fillna("NA")
    return out


def check_no_leakage(items: pd.DataFrame, *, group: str = "split") -> None:
    """Raise :class:`SplitError` when a patient, study or series UID lies in two groups.

    Parameters
    ----------
    items : DataFrame
        One row per exported item with ``group`` and any of ``subjid``, ``study_uid``, ``series_uid``.

    Examples
    --------
    >>> check_no_leakage(pd.DataFrame({"subjid": ["A", "A"], "split": ["train", "test"]}))
    Traceback (most recent call last):
    ...
    kicc_analysis.export.splits.SplitError: split leak: 1 subjid value(s) in more than one split (first: A)
    """
    for column in (ID, "study_uid", "series_uid"):
        if column not in items.columns:
            continue
        spread = items.dropna(subset=[column]).groupby(column)[group].nunique()
        leaking = spread[spread > 1]
        if len(leaking):
            raise SplitError(
                f"split leak: {len(leaking)} {column} value(s) in more than one {group} (first: {leaking.index[0]})"
            )


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def split_report(cohort: pd.DataFrame, assignment: pd.DataFrame, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """Balance per split: patients, studies, outcome rates, sites, scanners.

    Parameters
    ----------
    cohort : DataFrame
        The cohort table (``subjid``; optional ``kicc_site``, ``outco_outcome``, ``crito_icu``, ``inter_invent``,
        ``inter_suppleo2``, ``demog_age``).
    assignment : DataFrame
        ``subjid, split`` from :func:`patient_splits`.
    items : DataFrame, optional
        Exported items (``subjid``, ``study_uid``, optional ``scanner``) to count studies and scanners.
    """
    table = cohort.merge(assignment[[ID, "split"]], on=ID, how="inner")
    rows = []
    for name, part in table.groupby("split", sort=False):
        row = {"split": name, "patients": len(part)}
        if "kicc_site" in part.columns:
            row["sites"] = int(part["kicc_site"].nunique())
        if "demog_age" in part.columns:
            ages = _numbers(part["demog_age"])
            ages = ages[~np.isnan(ages)]
            row["age_median_years"] = float(np.median(ages)) if len(ages) else np.nan
        if "outco_outcome" in part.columns:
            outcome = _numbers(part["outco_outcome"])
            row["death_rate"] = (
                float(np.mean(outcome[~np.isnan(outcome)] == 2)) if (~np.isnan(outcome)).any() else np.nan
            )
        for column, label in (
            ("crito_icu", "icu_rate"),
            ("inter_invent", "ventilation_rate"),
            ("inter_suppleo2", "oxygen_rate"),
        ):
            if column in part.columns:
                values = _numbers(part[column])
                values = values[~np.isnan(values) & (values != 99)]
                row[label] = float(values.mean()) if len(values) else np.nan
        if items is not None and len(items):
            mine = items[items[ID].isin(part[ID])]
            row["studies"] = int(mine["study_uid"].nunique()) if "study_uid" in mine else 0
            if "scanner" in mine.columns:
                row["scanners"] = int(mine["scanner"].nunique())
        rows.append(row)
    order = {name: i for i, name in enumerate(SPLITS)}
    return pd.DataFrame(rows).sort_values("split", key=lambda s: s.map(order).fillna(9)).reset_index(drop=True)
