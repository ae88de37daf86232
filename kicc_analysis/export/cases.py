"""The cases of an export task: which image (and label) of which patient, with targets; no identifiers.

A case is one series (CT tasks) or one radiograph study (radiograph tasks). Cases carry the pseudonym ``subjid``,
an export ``case_id`` (``KICC_<nnnn>``, numbered in sorted pseudonym / day order), the timepoint and the day from
admission; study and series UIDs stay in memory for the leakage check and are never written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.errors import KiccError

ID = "subjid"
CT_TASKS = ("lungs", "lobes", "opacity")
CXR_TASKS = ("cxr-severity", "outcome")
TASKS = CT_TASKS + CXR_TASKS
LUNG_LABELS = {"background": 0, "right_lung": 1, "left_lung": 2}
LOBE_LABELS = {"background": 0, "RUL": 1, "RML": 2, "RLL": 3, "LUL": 4, "LLL": 5}
#: task ``opacity``: lung without opacity, ground-glass opacity, consolidation (from the quantification)
OPACITY_LABELS = {"background": 0, "lung": 1, "ggo": 2, "consolidation": 3}
#: label names -> values of each segmentation task
TASK_LABELS = {"lungs": LUNG_LABELS, "lobes": LOBE_LABELS, "opacity": OPACITY_LABELS}
#: clinical columns copied to every case's targets (when present in the cohort)
CLINICAL_TARGETS = (
    "kicc_site",
    "demog_age",
    "demog_sex",
    "inter_suppleo2",
    "crito_icu",
    "inter_invent",
    "outco_outcome",
)


class ExportError(KiccError):
    """An export cannot be made as asked (unknown task or format, missing mask, no cases)."""


def ct_cases(build, task: str) -> pd.DataFrame:
    """CT series of the cohort (selected series of each study): ``subjid, study_uid, series_uid, timepoint, img_day, source``."""
    from kicc_analysis.cohort import ct_series_jobs

    jobs = ct_series_jobs(build)
    if task in CT_TASKS:
        return jobs
    raise ExportError(f"export: task '{task}' is not a CT task (expected one of {', '.join(CT_TASKS)})")


def cxr_cases(build, task: str) -> pd.DataFrame:
    """Radiograph studies: ``subjid, study_uid, series_uid, timepoint, img_day, source, brixia``.

    ``brixia`` is the Brixia total (0-18) averaged over readers (:mod:`kicc_analysis.readings`), NaN when unread.
    Task ``outcome`` keeps the first radiograph of each patient (baseline).
    """
    from kicc_analysis.readings.scores import read_reader_scores, reading_totals
    from kicc_analysis.repository import series_files

    inventory = build.inventory
    series = build.scan.series
    radiograph_series = (
        series[series["modality"].isin(["CR", "DX"])]
        .sort_values(["study_uid", "series_number", "series_uid"], na_position="last")
        .drop_duplicates("study_uid")
        .set_index("study_uid")["series_uid"]
    )
    cxr = inventory[inventory["modality"].isin(["CR", "DX"]) & inventory[ID].isin(build.table[ID])].copy()
    cxr["selected_series_uid"] = cxr["study_uid"].map(radiograph_series)
    cxr = cxr[cxr["selected_series_uid"].notna()]
    cxr["img_day"] = pd.to_numeric(cxr["img_day"], errors="coerce")
    cxr = cxr.sort_values([ID, "img_day", "study_uid"], na_position="last")
    cxr["timepoint"] = np.where(~cxr[ID].duplicated(), "baseline", "follow-up")
    if task == "outcome":
        cxr = cxr[cxr["timepoint"] == "baseline"]
    elif task != "cxr-severity":
        raise ExportError(f"export: task '{task}' is not a radiograph task (expected one of {', '.join(CXR_TASKS)})")
    scores = Path(build.repository) / "readings" / "radiograph_scores.csv"
    brixia = pd.Series(dtype=float)
    if scores.is_file():
        brixia = reading_totals(read_reader_scores(scores), "brixia").groupby("study")["score"].mean()
    cases = pd.DataFrame(
        {
            ID: cxr[ID].to_numpy(),
            "study_uid": cxr["study_uid"].to_numpy(),
            "series_uid": cxr["selected_series_uid"].to_numpy(),
            "timepoint": cxr["timepoint"].to_numpy(),
            "img_day": cxr["img_day"].to_numpy(),
        }
    )
    cases["source"] = [[str(p) for p in series_files(build.scan, uid)][:1] for uid in cases["series_uid"]]
    cases["brixia"] = cases["study_uid"].map(brixia).astype(float)
    return cases.reset_index(drop=True)


def add_scanner(cases: pd.DataFrame, build) -> pd.DataFrame:
    """Add ``scanner`` (the series' manufacturer, for the split report; not exported per case)."""
    series = build.scan.series.drop_duplicates("series_uid").set_index("series_uid")
    manufacturer = series["manufacturer"] if "manufacturer" in series else pd.Series(dtype="string")
    return cases.assign(scanner=cases["series_uid"].map(manufacturer).astype("string").fillna("unknown"))


def number_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """Add ``case_id`` (``KICC_0001`` ...) in the order of pseudonym, day, study; deterministic."""
    cases = cases.sort_values([ID, "img_day", "study_uid", "series_uid"], na_position="last").reset_index(drop=True)
    cases["case_id"] = [f"KICC_{i + 1:04d}" for i in range(len(cases))]
    return cases


def clinical_targets(cohort: pd.DataFrame) -> pd.DataFrame:
    """Per-patient clinical columns for the targets (``death`` = outcome 2; 99 'Unknown' -> missing)."""
    columns = [c for c in CLINICAL_TARGETS if c in cohort.columns]
    table = cohort[[ID, *columns]].copy()
    for column in ("inter_suppleo2", "crito_icu", "inter_invent"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").replace(99, np.nan)
    if "outco_outcome" in table:
        outcome = pd.to_numeric(table["outco_outcome"], errors="coerce")
        table["death"] = (outcome == 2).astype(float).where(outcome.notna())
    return table
