"""Cohort batch runs: quantify every CT series in parallel, cached, with failures recorded (never fatal).

Public API
----------
``quantify_series_table(jobs, cache_dir, workers=2, show_progress=None)``
    ``jobs``: DataFrame with ``subjid, series_uid, timepoint ("baseline"/"follow-up"), img_day, source`` (a folder
    or a list of the series' files). Returns a tidy table, one row per series x region (the job columns, the
    :func:`~kicc_analysis.quantification.quantify` columns and ``qa_*`` columns). ``result.attrs["failures"]``
    is a DataFrame ``subjid, series_uid, timepoint, error`` of the series that failed.
``join_to_cohort(cohort, results)``
    Adds per-patient CT columns to the cohort table (left join on ``subjid``; no cohort row is dropped).
``jobs_from_repository(repository)``
    Builds ``jobs`` from a demo/real repository: the scanner's selected CT series per study joined to
    ``clinical/imaging_studies.csv`` (``subjid, img_study_uid, img_day, img_timepoint``).
``main(argv)``
    CLI ``kicc quantify --repository R [--cache DIR] [--workers N] [--output FILE]``.

Cache: one Parquet file per series in ``cache_dir``, named from the SeriesInstanceUID and
:data:`CACHE_VERSION` (algorithm versions of segmentation and quantification). A re-run loads cached series
instead of recomputing them; failures are not cached (they are retried).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, KiccError
from ..progress import progress_bar
from ..segmentation import ALGORITHM_VERSION as SEGMENTATION_VERSION

QUANTIFICATION_VERSION = "quant-1.0"
CACHE_VERSION = f"{SEGMENTATION_VERSION}+{QUANTIFICATION_VERSION}"
JOB_COLUMNS = ("subjid", "series_uid", "timepoint", "img_day", "source")
TIMEPOINTS = ("baseline", "follow-up")
QA_COLUMNS = ("qa_flags", "qa_total_ml", "qa_lr_ratio", "qa_dense_recovered_fraction", "qa_leak_fraction")
COHORT_METRICS = {
    "ct_opacity_pct": "opacity_pct",
    "ct_ggo_pct": "ggo_pct",
    "ct_consolidation_pct": "consolidation_pct",
    "ct_severity_total": "severity_total",
    "ct_lung_volume_ml": "volume_ml",
}


def quantify_series(source: Any, bins: str = "default") -> pd.DataFrame:
    """Load, segment and quantify one series; returns the :func:`quantify` table plus ``qa_*`` columns."""
    from ..imaging import get_load_report, load_ct
    from ..segmentation import segment_lungs
    from .opacity import quantify

    image = load_ct(source)
    seg = segment_lungs(image)
    table = quantify(image, seg.labels, bins=bins)
    report = get_load_report(image)
    table["qa_flags"] = ";".join(seg.qa["flags"])
    table["qa_total_ml"] = seg.qa["total_ml"]
    table["qa_lr_ratio"] = seg.qa["lr_ratio"]
    table["qa_dense_recovered_fraction"] = seg.qa["dense_recovered_fraction"]
    table["qa_leak_fraction"] = seg.qa["leak_fraction"]
    table["load_warnings"] = "; ".join(report.warnings) if report else ""
    table["algorithm_version"] = CACHE_VERSION
    return table


def _cache_path(cache_dir: Path, series_uid: str) -> Path:
    digest = hashlib.sha1(f"{series_uid}|{CACHE_VERSION}".encode()).hexdigest()[:16]
    return cache_dir / f"series_{digest}.parquet"


def _run_job(job: dict[str, Any], cache_dir: str | None, bins: str) -> tuple[dict[str, Any], pd.DataFrame | None, str]:
    """Worker: returns (job, table or None, error message)."""
    try:
        table = quantify_series(job["source"], bins=bins)
    except (KiccError, OSError, RuntimeError, ValueError, MemoryError) as exc:
        return job, None, f"{type(exc).__name__}: {exc}"
    if cache_dir is not None:
        table.to_parquet(_cache_path(Path(cache_dir), str(job["series_uid"])), index=False)
    return job, table, ""


def _validate_jobs(jobs: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(jobs, pd.DataFrame):
        raise AnalysisError(f"jobs must be a DataFrame with columns {JOB_COLUMNS}, got {type(jobs).__name__}")
    missing = [c for c in JOB_COLUMNS if c not in jobs.columns]
    if missing:
        raise AnalysisError(f"jobs table is missing column(s) {missing}; expected {list(JOB_COLUMNS)}")
    bad_tp = sorted(set(jobs["timepoint"].dropna()) - set(TIMEPOINTS))
    if bad_tp:
        raise AnalysisError(f"jobs.timepoint must be one of {TIMEPOINTS}; found {bad_tp}")
    dup = jobs["series_uid"].duplicated()
    if dup.any():
        raise AnalysisError(f"jobs lists {int(dup.sum())} series twice, e.g. row {int(np.flatnonzero(dup)[0])}")
    return jobs.reset_index(drop=True)


def quantify_series_table(
    jobs: pd.DataFrame,
    cache_dir: str | os.PathLike[str] | None,
    workers: int = 2,
    show_progress: bool | None = None,
    *,
    bins: str = "default",
) -> pd.DataFrame:
    """Quantify every series of ``jobs`` (parallel, cached); failures are recorded, never raised.

    Parameters
    ----------
    jobs : DataFrame
        Columns ``subjid, series_uid, timepoint ("baseline"/"follow-up"), img_day, source``.
    cache_dir : path or None
        Folder for the per-series Parquet cache (created); None disables caching.
    workers : int
        Processes (1 = run in this process).
    show_progress : bool, optional
        Progress bar (default: on unless ``KICC_NO_PROGRESS`` is set).
    bins : str
        HU bin preset.

    Returns
    -------
    DataFrame
        One row per series x region: ``subjid, series_uid, timepoint, img_day``, the quantify columns, ``qa_*``
        and ``cached`` (True when loaded from the cache). ``attrs["failures"]``: ``subjid, series_uid,
        timepoint, error``.
    """
    jobs = _validate_jobs(jobs)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    tables: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    todo: list[dict[str, Any]] = []
    for job in jobs.to_dict("records"):
        path = _cache_path(cache, str(job["series_uid"])) if cache is not None else None
        if path is not None and path.exists():
            tables.append(_with_job(pd.read_parquet(path), job, cached=True))
        else:
            todo.append(job)

    def collect(result: tuple[dict[str, Any], pd.DataFrame | None, str]) -> None:
        job, table, error = result
        if table is None:
            failures.append({k: job[k] for k in ("subjid", "series_uid", "timepoint")} | {"error": error})
        else:
            tables.append(_with_job(table, job, cached=False))

    cache_arg = str(cache) if cache is not None else None
    if workers <= 1 or len(todo) <= 1:
        for job in progress_bar(todo, show=show_progress, desc="CT series", unit="series"):
            collect(_run_job(job, cache_arg, bins))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_job, job, cache_arg, bins) for job in todo]
            for future in progress_bar(
                as_completed(futures), show=show_progress, total=len(futures), desc="CT series", unit="series"
            ):
                collect(future.result())
    result = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*JOB_COLUMNS[:4], "region"])
    if tables:
        order = {uid: i for i, uid in enumerate(jobs["series_uid"])}
        result = result.sort_values(["series_uid"], key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    result.attrs["failures"] = pd.DataFrame(failures, columns=["subjid", "series_uid", "timepoint", "error"])
    return result


def _with_job(table: pd.DataFrame, job: dict[str, Any], cached: bool) -> pd.DataFrame:
    table = table.copy()
    for i, key in enumerate(("subjid", "series_uid", "timepoint", "img_day")):
        table.insert(i, key, job[key])
    table["cached"] = cached
    return table


def join_to_cohort(cohort: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Add per-patient CT columns to ``cohort`` (left join on ``subjid``).

    For each patient the baseline series is the earliest ``img_day`` with timepoint "baseline" and the
    follow-up the latest with "follow-up" (region ``both``). Columns: ``ct_opacity_pct, ct_ggo_pct,
    ct_consolidation_pct, ct_severity_total, ct_lung_volume_ml`` (baseline), the same with suffix ``_followup``,
    and ``<name>_change`` = follow-up minus baseline (NaN when either is missing), plus ``ct_qa_flags``.
    """
    if "subjid" not in cohort.columns:
        raise AnalysisError("cohort table has no 'subjid' column")
    needed = {"subjid", "timepoint", "img_day", "region", *COHORT_METRICS.values()}
    missing = sorted(needed - set(results.columns))
    if missing and len(results):
        raise AnalysisError(f"results table is missing column(s) {missing}")
    out = cohort.copy()
    both = results[results["region"] == "both"] if len(results) else results
    for timepoint, suffix, pick_last in (("baseline", "", False), ("follow-up", "_followup", True)):
        sub = both[both["timepoint"] == timepoint].sort_values("img_day", kind="stable")
        sub = sub.groupby("subjid", sort=False).tail(1) if pick_last else sub.groupby("subjid", sort=False).head(1)
        cols = {src: f"{dst}{suffix}" for dst, src in COHORT_METRICS.items()}
        if "qa_flags" in sub.columns:
            cols["qa_flags"] = f"ct_qa_flags{suffix}"
        part = sub.set_index("subjid")[list(cols)].rename(columns=cols)
        out = out.join(part, on="subjid")
    for name in COHORT_METRICS:
        out[f"{name}_change"] = out[f"{name}_followup"] - out[name]
    return out


def jobs_from_repository(repository: str | os.PathLike[str]) -> pd.DataFrame:
    """Jobs for every selected CT series of a repository with ``dicom/`` and ``clinical/imaging_studies.csv``."""
    from ..repository import scan_repository, series_files

    root = Path(repository)
    studies_csv = root / "clinical" / "imaging_studies.csv"
    if not studies_csv.exists():
        raise AnalysisError(f"expected {studies_csv} (subjid, img_study_uid, img_day, img_timepoint)")
    scan = scan_repository(root / "dicom")
    studies = pd.read_csv(studies_csv, dtype={"img_study_uid": str, "subjid": str})
    chosen = scan.selection.dropna(subset=["series_uid"])
    merged = chosen.merge(studies, left_on="study_uid", right_on="img_study_uid", how="inner")
    timepoint = merged["img_timepoint"].map({1: "baseline", 2: "follow-up"}).fillna("follow-up")
    return pd.DataFrame(
        {
            "subjid": merged["subjid"],
            "series_uid": merged["series_uid"],
            "timepoint": timepoint,
            "img_day": merged["img_day"],
            "source": [[str(p) for p in series_files(scan, uid)] for uid in merged["series_uid"]],
        }
    )


def default_cache_dir(repository: str | os.PathLike[str]) -> Path:
    """``<repository cache>/ct`` (see :func:`kicc_analysis.cohort.cache_dir`)."""
    from ..cohort import cache_dir

    return cache_dir(repository) / "ct"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``kicc quantify --repository R [--cache DIR] [--workers N] [--output FILE]``."""
    parser = argparse.ArgumentParser(prog="kicc quantify", description="Quantify lung opacities of every CT series.")
    parser.add_argument("--repository", required=True, help="repository folder (dicom/ + clinical/)")
    parser.add_argument("--cache", default=None, help="cache folder (default: the repository's cache folder + /ct)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default=None, help="CSV/Parquet output (default: <cache>/ct_quantification.csv)")
    args = parser.parse_args(argv)
    cache = Path(args.cache) if args.cache else default_cache_dir(args.repository)
    try:
        jobs = jobs_from_repository(args.repository)
    except KiccError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = quantify_series_table(jobs, cache, workers=args.workers)
    output = Path(args.output) if args.output else cache / "ct_quantification.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        results.to_parquet(output, index=False)
    else:
        results.to_csv(output, index=False)
    failures = results.attrs["failures"]
    n_series = results["series_uid"].nunique() if len(results) else 0
    print(f"quantified {n_series} series ({len(failures)} failed) -> {output}")
    for row in failures.itertuples():
        print(f"  failed: {row.subjid} series ...{str(row.series_uid)[-8:]}: {row.error}")
    return 0 if failures.empty else 1


if __name__ == "__main__":
    raise SystemExit(main())
