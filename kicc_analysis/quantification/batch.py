"""Cohort batch runs: quantify every CT series in parallel, cached, with failures recorded (never fatal).

Public API
----------
``quantify_series_table(jobs, cache_dir, workers=2, show_progress=None)``
    ``jobs``: DataFrame with ``subjid, series_uid, timepoint ("baseline"/"follow-up"), img_day, source`` (a folder
    or a list of the series' files). Returns a tidy table, one row per series x region (the job columns, the
    :func:`~kicc_analysis.quantification.quantify` columns and ``qa_*`` columns). ``result.attrs["failures"]``
    is a DataFrame ``subjid, series_uid, timepoint, error`` of the series that failed. With ``scheduler=`` (or
    ``$KICC_DASK_SCHEDULER``) the uncached series run on a ``dask.distributed`` cluster, one task per series
    (:mod:`kicc_analysis.quantification.cluster`); this process then writes the cache and the failure records.
``join_to_cohort(cohort, results)``
    Adds per-patient CT columns to the cohort table (left join on ``subjid``; no cohort row is dropped).

The cohort-level run (jobs built from the repository scan, cache folder, join) is
:func:`kicc_analysis.pipeline.quantify_cohort` and the CLI ``kicc quantify``: this module takes plain
tables so that it never depends on the repository scanner.

Cache: one Parquet file per series in ``cache_dir``, named by :func:`job_cache_key`: a key
(:func:`kicc_analysis._cache.cache_key`) of the series' files as they are on disk (path, size, mtime_ns, ctime_ns
and a hash of the first 4 KiB of every file), the HU-bin preset, the core/periphery option, :data:`CACHE_VERSION`
(algorithm version of segmentation, version of the voxel-wise quantification outputs ``opacity.VOXELWISE_VERSION``
and of the table layout) and every extra job column (e.g. a mask file: keyed on its content hash). A re-run loads
cached series instead of recomputing them only when none of these changed; failures are not cached (they are
retried).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._cache import cache_key, file_content_hash, files_fingerprint, source_files
from ..errors import AnalysisError, KiccError
from ..progress import progress_bar
from ..segmentation import ALGORITHM_VERSION as SEGMENTATION_VERSION
from .cluster import cluster_task, resolve_scheduler, run_on_cluster
from .opacity import VOXELWISE_VERSION as QUANTIFICATION_VERSION

# per-series table layout: table-2 adds core/periphery rows, table-3 qa_halo_dropped_ml, table-4 mask_source,
# qa_mask_dice, qa_mask_volume_difference_ml and (with a lobe mask) lobe rows with lobe_score / lobe_score_total,
# table-5 qa_low_confidence
TABLE_VERSION = "table-5"
CACHE_VERSION = f"{SEGMENTATION_VERSION}+{QUANTIFICATION_VERSION}+{TABLE_VERSION}"
JOB_COLUMNS = ("subjid", "series_uid", "timepoint", "img_day", "source")
TIMEPOINTS = ("baseline", "follow-up")
QA_COLUMNS = (
    "qa_flags",
    "qa_total_ml",
    "qa_lr_ratio",
    "qa_dense_recovered_fraction",
    "qa_halo_dropped_ml",
    "qa_leak_fraction",
    "qa_low_confidence",
)
COHORT_METRICS = {
    "ct_opacity_pct": "opacity_pct",
    "ct_ggo_pct": "ggo_pct",
    "ct_consolidation_pct": "consolidation_pct",
    "ct_severity_total": "severity_total",
    "ct_lung_volume_ml": "volume_ml",
}
OPTIONAL_METRICS = {  # issue 15: joined when the results hold them (lobe masks; the mask used per series)
    "ct_lobe_score_total": "lobe_score_total",
    "ct_mask_source": "mask_source",
    "ct_low_confidence": "qa_low_confidence",  # issue 16: the numbers come from a mask that is likely wrong
}
REGION_METRICS = {  # cohort column -> (region, quantify column); peripheral predominance of the opacities
    "ct_periphery_opacity_pct": ("both_periphery", "opacity_pct"),
    "ct_core_opacity_pct": ("both_core", "opacity_pct"),
}


def quantify_series(source: Any, bins: str = "default", mask: Any = None, compare: bool = True) -> pd.DataFrame:
    """Load, segment and quantify one series; returns the :func:`quantify` table plus ``qa_*`` columns.

    With ``mask`` (a file or folder :func:`~kicc_analysis.segmentation.load_lung_mask` reads) the lungs and lobes
    come from it: one row per lobe is added, and (``compare=True``) the classical mask is computed too and compared
    (``qa_mask_dice``, ``qa_mask_volume_difference_ml`` = external - classical; ``mask_disagreement`` in
    ``qa_flags`` when they disagree, see :func:`~kicc_analysis.segmentation.compare.disagreement_flags`).
    ``mask_source`` is ``classical`` or ``<convention>:<mask file name>``.
    """
    from ..imaging import get_load_report, load_ct
    from ..segmentation import compare_lung_masks, load_lung_mask, segment_lungs
    from ..segmentation.compare import disagreement_flags
    from .opacity import quantify

    image = load_ct(source)
    classical = segment_lungs(image) if mask is None or compare else None
    seg = classical if mask is None else load_lung_mask(mask, image)
    table = quantify(image, seg.labels, bins=bins, core_periphery=True, lobe_labels=getattr(seg, "lobes", None))
    report = get_load_report(image)
    flags = list(seg.qa["flags"])
    table["mask_source"] = "classical" if mask is None else f"{seg.qa['convention']}:{seg.qa['mask_source']}"
    table["qa_mask_dice"] = table["qa_mask_volume_difference_ml"] = np.nan
    if mask is not None and classical is not None:  # issue 15: both masks exist -> report their agreement
        comparison = compare_lung_masks(seg, classical, image)
        both = comparison.set_index("region").loc["both"]
        table["qa_mask_dice"] = both["dice"]
        table["qa_mask_volume_difference_ml"] = both["volume_difference_ml"]
        flags += disagreement_flags(comparison)
    table["qa_flags"] = ";".join(flags)
    table["qa_total_ml"] = seg.qa["total_ml"]
    table["qa_lr_ratio"] = seg.qa["lr_ratio"]
    table["qa_dense_recovered_fraction"] = seg.qa["dense_recovered_fraction"]
    table["qa_halo_dropped_ml"] = seg.qa["halo_dropped_ml"]
    table["qa_leak_fraction"] = seg.qa["leak_fraction"]
    # issue 16: numbers from a mask that is likely wrong are marked in every table that carries them
    table["qa_low_confidence"] = bool(seg.qa.get("low_confidence", False))
    table["load_warnings"] = "; ".join(report.warnings) if report else ""
    table["algorithm_version"] = CACHE_VERSION
    return table


def _job_mask(job: dict[str, Any]) -> Any:
    """The job's ``mask`` (issue 15), None when absent or empty."""
    mask = job.get("mask")
    return None if mask is None or (isinstance(mask, float) and np.isnan(mask)) or mask == "" else mask


def _param_value(value: Any) -> Any:
    """A job parameter as it enters the cache key: an existing file by its content hash, a folder by its files'
    identities, anything else as is."""
    if isinstance(value, str | os.PathLike) and str(value):
        p = Path(value)
        try:
            if p.is_file():
                return ("file", file_content_hash(p))
            if p.is_dir():
                return ("folder", files_fingerprint(source_files(p)))
        except OSError as exc:
            return ("unreadable", os.fspath(p), exc.errno)
    return value


def job_cache_key(job: dict[str, Any], **params: Any) -> str:
    """Cache key of one quantification job (hex): content of its source files and every result parameter.

    Parameters
    ----------
    job : dict
        A row of the jobs table. ``source`` is keyed on its files' identities
        (:func:`kicc_analysis._cache.files_fingerprint`), or on its ``cache_identity()`` when it has one (a series
        on a DICOMweb server, :class:`kicc_analysis.repository.dicomweb.DicomwebSeries`: keyed on the server's
        metadata, fetched only when it must be computed); every column beyond :data:`JOB_COLUMNS` (a mask source,
        a mask file, ...) is a parameter too (files by content hash); ``subjid``, ``timepoint`` and ``img_day``
        are not (they do not change the numbers).
    **params
        Options of the run that change the result (``bins``, ``core_periphery``...).
    """
    extra = {f"job.{k}": _param_value(v) for k, v in job.items() if k not in JOB_COLUMNS}
    source = job["source"]
    identity = getattr(source, "cache_identity", None)  # a remote series (DICOMweb) is keyed without fetching it
    return cache_key(
        identity() if callable(identity) else files_fingerprint(source_files(source)),
        series_uid=str(job["series_uid"]),
        algorithm=CACHE_VERSION,
        **extra,
        **params,
    )


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"series_{key[:24]}.parquet"


def _run_job(
    job: dict[str, Any], cache_dir: str | None, bins: str, key: str | None = None, compare_masks: bool = True
) -> tuple[dict[str, Any], pd.DataFrame | None, str]:
    """Worker: returns (job, table or None, error message)."""
    try:
        table = quantify_series(job["source"], bins=bins, mask=_job_mask(job), compare=compare_masks)
    except (KiccError, OSError, RuntimeError, ValueError, MemoryError) as exc:
        return job, None, f"{type(exc).__name__}: {exc}"
    if cache_dir is not None and key is not None:
        _write_cache(table, _cache_path(Path(cache_dir), key))
    return job, table, ""


def _write_cache(table: pd.DataFrame, path: Path) -> None:
    """Write one series' table to the cache atomically (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    table.to_parquet(partial, index=False)
    os.replace(partial, path)


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
    compare_masks: bool = True,
    scheduler: Any = None,
    retries: int = 2,
) -> pd.DataFrame:
    """Quantify every series of ``jobs`` (parallel, cached); failures are recorded, never raised.

    Parameters
    ----------
    jobs : DataFrame
        Columns ``subjid, series_uid, timepoint ("baseline"/"follow-up"), img_day, source``; optional ``mask``:
        a lung / lobe mask per series (path read by :func:`~kicc_analysis.segmentation.load_lung_mask`; empty =
        classical segmentation). The cache key holds the mask's content.
    cache_dir : path or None
        Folder for the per-series Parquet cache (created); None disables caching.
    workers : int
        Processes (1 = run in this process).
    show_progress : bool, optional
        Progress bar (default: on unless ``KICC_NO_PROGRESS`` is set).
    bins : str
        HU bin preset.
    compare_masks : bool
        For series with a ``mask``: also run the classical segmentation and report the comparison
        (:func:`quantify_series`); False skips it (faster).
    scheduler : str, ``distributed.Client`` or cluster object, optional
        Run the uncached series on this ``dask.distributed`` cluster, one task per series
        (:mod:`kicc_analysis.quantification.cluster`): an address ``tcp://host:8786``, a client or a cluster
        object. Default: ``$KICC_DASK_SCHEDULER`` when set, else the local pool of ``workers`` processes;
        ``"local"`` forces the local pool. On a cluster the workers write nothing: this process writes the cache
        and the failure records. ``workers`` is then unused.
    retries : int
        On a cluster: resubmissions of a task that raised (a worker that dies is rescheduled by Dask itself).

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
    todo: list[tuple[dict[str, Any], str | None]] = []
    for job in jobs.to_dict("records"):
        masked = {"compare_masks": compare_masks} if _job_mask(job) is not None else {}
        key = job_cache_key(job, bins=bins, core_periphery=True, **masked) if cache is not None else None
        path = _cache_path(cache, key) if cache is not None and key is not None else None
        if path is not None and path.exists():
            tables.append(_with_job(pd.read_parquet(path), job, cached=True))
        else:
            todo.append((job, key))

    def collect(result: tuple[dict[str, Any], pd.DataFrame | None, str]) -> None:
        job, table, error = result
        if table is None:
            failures.append({k: job[k] for k in ("subjid", "series_uid", "timepoint")} | {"error": error})
        else:
            tables.append(_with_job(table, job, cached=False))

    cache_arg = str(cache) if cache is not None else None
    cluster_scheduler = resolve_scheduler(scheduler) if todo else None
    if cluster_scheduler is not None:
        # the cache key names the task; without a cache it is computed the same way
        keyed = [(job, key or job_cache_key(job, bins=bins, core_periphery=True)) for job, key in todo]
        key_of = {job["series_uid"]: key for job, key in keyed}
        task = cluster_task(_run_job, bins=bins, compare_masks=compare_masks)
        for job, table, error in run_on_cluster(
            task, keyed, cluster_scheduler, show_progress=show_progress, retries=retries
        ):
            if table is not None and (table["algorithm_version"] != CACHE_VERSION).any():
                found = table["algorithm_version"].iloc[0]
                table, error = None, f"ClusterError: worker computed algorithm {found}, this client {CACHE_VERSION}"
            if table is not None and cache is not None:
                _write_cache(table, _cache_path(cache, key_of[job["series_uid"]]))
            collect((job, table, error))
    elif workers <= 1 or len(todo) <= 1:
        for job, key in progress_bar(todo, show=show_progress, desc="CT series", unit="series"):
            collect(_run_job(job, cache_arg, bins, key, compare_masks))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_job, job, cache_arg, bins, key, compare_masks) for job, key in todo]
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
    and ``<name>_change`` = follow-up minus baseline (NaN when either is missing), plus ``ct_qa_flags``;
    ``ct_periphery_opacity_pct`` / ``ct_core_opacity_pct`` (regions ``both_periphery`` / ``both_core``) at baseline
    and follow-up when the results hold those regions; ``ct_lobe_score_total`` (0-25, lobar CT severity score; with
    ``_followup`` / ``_change``) and ``ct_mask_source`` when the results hold them (series quantified with a lobe
    mask); ``ct_low_confidence`` (``_followup``): the series' lung mask is likely wrong (``qa_low_confidence``), so
    its numbers are marked wherever they are used.
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
        cols |= {src: f"{dst}{suffix}" for dst, src in OPTIONAL_METRICS.items() if src in sub.columns}
        if "qa_flags" in sub.columns:
            cols["qa_flags"] = f"ct_qa_flags{suffix}"
        part = sub.set_index("subjid")[list(cols)].rename(columns=cols)
        out = out.join(part, on="subjid")
        # core / periphery of the SAME series that was picked above
        series = sub.set_index("subjid")["series_uid"] if "series_uid" in sub.columns else None
        for name, (region, column) in REGION_METRICS.items():
            rows = results[results["region"] == region] if series is not None and len(results) else results[:0]
            if len(rows):
                values = series.map(rows.set_index("series_uid")[column]).rename(f"{name}{suffix}")
                out = out.join(values, on="subjid")
    for name in [*COHORT_METRICS, "ct_lobe_score_total"]:
        if f"{name}_followup" in out.columns:
            out[f"{name}_change"] = out[f"{name}_followup"] - out[name]
    return out
