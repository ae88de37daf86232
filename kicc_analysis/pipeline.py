"""Cohort-level pipelines that combine the data layer with an analysis module.

This module sits above both (like :mod:`kicc_analysis.study`), so that the cohort
never imports an analysis and analyses never import the repository scanner.

Example
-------
>>> from kicc_analysis.pipeline import quantify_cohort
>>> run = quantify_cohort("demo_repository")                 # doctest: +SKIP
>>> run.cohort[["subjid", "ct_opacity_pct", "ct_severity_total"]]   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kicc_analysis.cohort import CohortBuild, build_cohort, cache_dir, ct_series_jobs


@dataclass
class QuantificationRun:
    """Per-series results, failures, and the cohort with per-patient CT columns joined."""

    build: CohortBuild
    jobs: pd.DataFrame
    results: pd.DataFrame
    failures: pd.DataFrame
    cohort: pd.DataFrame

    def describe(self) -> str:
        done = self.results["series_uid"].nunique() if not self.results.empty else 0
        lines = [f"{len(self.jobs)} CT series to quantify; {done} quantified; {len(self.failures)} failed"]
        if not self.failures.empty:
            reason = "reason" if "reason" in self.failures.columns else self.failures.columns[-1]
            lines += [
                f"  {uid[-12:]}: {why}"
                for uid, why in zip(self.failures["series_uid"], self.failures[reason], strict=False)
            ]
        return "\n".join(lines)


def quantify_cohort(
    repository: str | Path,
    *,
    cache: str | Path | None = None,
    workers: int = 2,
    show_progress: bool | None = None,
    build: CohortBuild | None = None,
    masks: str | Path | None = None,
    compare_masks: bool = True,
    series_cache_bytes: int | None = None,
    scheduler: Any = None,
) -> QuantificationRun:
    """Segment and quantify every selected CT series of the cohort (cached per series).

    Parameters
    ----------
    repository : path
        Repository folder.
    cache : path, optional
        Cache folder for per-series results (default ``<cache_dir>/quantification``).
    workers : int
        Parallel processes.
    build : CohortBuild, optional
        An already built cohort (avoids building it twice in a notebook).
    masks : path, optional
        Folder of lung / lobe masks from other tools (TotalSegmentator, lungmask, DICOM SEG...), one per series,
        found by SeriesInstanceUID or by the series' folder relative to the repository
        (:func:`kicc_analysis.segmentation.external.find_series_mask`); series without one use the classical
        segmentation. The results record the mask per series (``mask_source``).
    compare_masks : bool
        For series with a mask, also run the classical segmentation and report the comparison (``qa_mask_dice``,
        ``mask_disagreement``); False is faster.
    series_cache_bytes : int, optional
        For a cohort built from a DICOMweb scan (``build_cohort(..., scan=scan_dicomweb(url))``): bound of the local
        cache of series fetched on demand (bytes; default
        :data:`kicc_analysis.repository.dicomweb.DEFAULT_CACHE_BYTES`).
    scheduler : str, ``distributed.Client`` or cluster object, optional
        Quantify on this ``dask.distributed`` cluster (``tcp://host:8786``), one task per series; default
        ``$KICC_DASK_SCHEDULER``, else the local pool (see
        :func:`~kicc_analysis.quantification.batch.quantify_series_table`).
    """
    from kicc_analysis.quantification.batch import join_to_cohort, quantify_series_table

    build = build or build_cohort(repository, workers=workers, show_progress=show_progress)
    jobs = ct_series_jobs(build, series_cache_bytes=series_cache_bytes)
    if masks is not None:
        jobs["mask"] = series_masks(jobs, masks, build.repository)
    cache = Path(cache) if cache else cache_dir(build.repository) / "quantification"
    outcome = quantify_series_table(
        jobs,
        cache_dir=cache,
        workers=workers,
        show_progress=show_progress,
        compare_masks=compare_masks,
        scheduler=scheduler,
    )
    results, failures = (
        outcome if isinstance(outcome, tuple) else (outcome, outcome.attrs.get("failures", pd.DataFrame()))
    )
    cohort = join_to_cohort(build.table, results)
    cohort.attrs.update(build.table.attrs)
    return QuantificationRun(build=build, jobs=jobs, results=results, failures=failures, cohort=cohort)


def series_masks(jobs: pd.DataFrame, masks: str | Path, repository: str | Path) -> list[str | None]:
    """The mask file or folder of each job's series in ``masks`` (None where there is none), see
    :func:`kicc_analysis.segmentation.external.find_series_mask`; the series path is the folder holding the
    series' files, relative to ``repository``."""
    import os

    from kicc_analysis.errors import CohortError
    from kicc_analysis.segmentation.external import find_series_mask

    if not Path(masks).is_dir():
        raise CohortError(f"masks folder {masks} not found; expected a folder of per-series mask files")
    root = Path(repository).resolve()
    out: list[str | None] = []
    for uid, source in zip(jobs["series_uid"], jobs["source"], strict=True):
        files = [source] if isinstance(source, str | os.PathLike) else list(source)
        relative = None
        if files:
            folder = Path(os.path.commonpath([str(Path(f).resolve().parent) for f in files]))
            relative = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else None
        found = find_series_mask(masks, str(uid), relative)
        out.append(str(found) if found is not None else None)
    return out
