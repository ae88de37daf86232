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
#: CT segmentation tasks (images + label maps: nnU-Net or MONAI)
SEGMENTATION_TASKS = ("lungs", "lobes", "opacity")
#: outcome prediction from the patient's baseline: radiograph (``outcome``), CT (``outcome-ct``), clinical variables
#: only (``outcome-clinical``), or radiograph + CT quantification + clinical (``outcome-combined``)
OUTCOME_TASKS = ("outcome", "outcome-ct", "outcome-clinical", "outcome-combined")
#: tasks whose case image is a CT series / a radiograph / none (one row per patient)
CT_TASKS = (*SEGMENTATION_TASKS, "outcome-ct")
CXR_TASKS = ("cxr-severity", "outcome", "outcome-combined")
TABLE_TASKS = ("outcome-clinical",)
TASKS = (*SEGMENTATION_TASKS, "cxr-severity", *OUTCOME_TASKS)
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
#: baseline CT quantification features of ``outcome-ct`` / ``outcome-combined`` (region ``both`` of the baseline
#: series, :func:`kicc_analysis.quantification.batch.join_to_cohort`)
CT_FEATURES = ("ct_opacity_pct", "ct_ggo_pct", "ct_consolidation_pct", "ct_severity_total", "ct_lung_volume_ml")
#: prefixes of the admission clinical predictors of the outcome tasks (demographics, comorbidities, vital signs,
#: laboratory values) plus ``pres_onset_days``; never dates, never severity or intervention columns (they encode the
#: targets)
CLINICAL_FEATURE_PREFIXES = ("demog_", "comor_", "vital_", "labs_")


class ExportError(KiccError):
    """An export cannot be made as asked (unknown task or format, missing mask, no cases)."""


def ct_cases(build, task: str) -> pd.DataFrame:
    """CT series of the cohort (selected series of each study): ``subjid, study_uid, series_uid, timepoint, img_day, source``."""
    from kicc_analysis.cohort import ct_series_jobs

    jobs = ct_series_jobs(build)
    if task == "outcome-ct":  # the cohort's baseline CT (see build_cohort: flagged timepoint 1, else earliest day)
        return jobs[jobs["timepoint"] == "baseline"].drop_duplicates(ID).reset_index(drop=True)
    if task in CT_TASKS:
        return jobs
    raise ExportError(f"export: task '{task}' is not a CT task (expected one of {', '.join(CT_TASKS)})")


def cxr_cases(build, task: str) -> pd.DataFrame:
    """Radiograph studies: ``subjid, study_uid, series_uid, timepoint, img_day, source, brixia``.

    ``brixia`` is the Brixia total (0-18) averaged over readers (:mod:`kicc_analysis.readings`), NaN when unread.
    Tasks ``outcome`` and ``outcome-combined`` keep the first radiograph of each patient (baseline: earliest day
    from admission, ties by study UID).
    """
    from kicc_analysis.readings.scores import read_reader_scores, reading_totals

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
    if task in ("outcome", "outcome-combined"):
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
    cases["source"] = first_files(build.scan, cases["series_uid"])
    cases["brixia"] = cases["study_uid"].map(brixia).astype(float)
    return cases.reset_index(drop=True)


def first_files(scan, series_uids) -> list[list[str]]:
    """``[path]`` of the first file of each series, as :func:`kicc_analysis.repository.series_files` orders them."""
    from kicc_analysis.repository.scan import series_file_lists

    lists = series_file_lists(scan, series_uids)
    return [[str(lists[uid][0])] for uid in series_uids]


def patient_cases(build) -> pd.DataFrame:
    """One case per cohort patient, without image (task ``outcome-clinical``): ``subjid, study_uid, series_uid,
    timepoint, img_day, source`` with empty UIDs and source."""
    patients = build.table[ID].drop_duplicates().sort_values().to_numpy()
    return pd.DataFrame(
        {
            ID: patients,
            "study_uid": pd.Series([None] * len(patients), dtype=object),
            "series_uid": pd.Series([None] * len(patients), dtype=object),
            "timepoint": "baseline",
            "img_day": np.nan,
            "source": [[] for _ in patients],
        }
    )


def clinical_features(cohort: pd.DataFrame) -> pd.DataFrame:
    """The admission clinical predictors of each patient: ``subjid`` + the cohort's columns named
    :data:`CLINICAL_FEATURE_PREFIXES` ``*`` and ``pres_onset_days`` (cohort order); coded answers 99 'Unknown' of
    sex and comorbidities -> missing. Dates are never included."""
    columns = [
        c
        for c in cohort.columns
        if (c.startswith(CLINICAL_FEATURE_PREFIXES) or c == "pres_onset_days") and "date" not in c
    ]
    table = cohort[[ID, *columns]].copy()
    for column in columns:
        if column == "demog_sex" or column.startswith("comor_"):
            table[column] = pd.to_numeric(table[column], errors="coerce").replace(99, np.nan)
    return table


def ct_features(
    build, mask_source: str, mask_dir: Path | None, *, workers: int, show_progress
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quantification of each patient's baseline CT series: ``subjid`` + :data:`CT_FEATURES`, ``ct_low_confidence``
    (1 when the quantification marks the lung mask as likely wrong, 0 otherwise, missing without a CT) and
    ``ct_mask_source``.

    The cohort's batch quantification (:func:`kicc_analysis.quantification.batch.quantify_series_table`, cached in
    the same folder as :func:`kicc_analysis.pipeline.quantify_cohort`, so a quantified cohort is not recomputed),
    joined per patient by :func:`~kicc_analysis.quantification.batch.join_to_cohort`. ``mask_source``
    ``external``: the series' mask in ``mask_dir`` where there is one, else the classical segmentation (recorded in
    ``ct_mask_source`` as ``external:<convention>`` or ``classical``).

    Returns
    -------
    (DataFrame, DataFrame)
        The features (one row per cohort patient, NaN without a baseline CT) and the failures
        (``subjid, problem``).
    """
    from kicc_analysis.cohort import cache_dir
    from kicc_analysis.export.images import external_mask_path
    from kicc_analysis.quantification.batch import join_to_cohort, quantify_series_table

    jobs = ct_cases(build, "outcome-ct")
    if mask_source == "external" and mask_dir is not None:
        jobs["mask"] = [str(external_mask_path(Path(mask_dir), uid) or "") for uid in jobs["series_uid"]]
    results = quantify_series_table(
        jobs,
        cache_dir(build.repository) / "quantification",
        workers=workers,
        show_progress=show_progress,
        compare_masks=False,
    )
    joined = join_to_cohort(build.table[[ID]], results)
    features = joined[[ID, *[c for c in CT_FEATURES if c in joined]]].copy()
    for column in CT_FEATURES:
        if column not in features:
            features[column] = np.nan
    # QA flag of the quantification: the numbers come from a lung mask that is likely wrong (1), else 0
    low = joined["ct_low_confidence"] if "ct_low_confidence" in joined else pd.Series(np.nan, index=joined.index)
    features["ct_low_confidence"] = [float(bool(v)) if isinstance(v, (bool, np.bool_)) else np.nan for v in low]
    source = joined["ct_mask_source"] if "ct_mask_source" in joined else pd.Series(np.nan, index=joined.index)
    features["ct_mask_source"] = [  # "<convention>:<file name>" -> "external:<convention>" (file names are UIDs)
        (v if v == "classical" else f"external:{str(v).split(':', 1)[0]}") if isinstance(v, str) else "" for v in source
    ]
    failures = results.attrs["failures"]
    problems = pd.DataFrame(
        {ID: failures[ID], "problem": [f"baseline CT not quantified: {e[:200]}" for e in failures["error"]]}
    )
    return features, problems


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
