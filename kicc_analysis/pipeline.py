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
    """
    from kicc_analysis.quantification.batch import join_to_cohort, quantify_series_table

    build = build or build_cohort(repository, workers=workers, show_progress=show_progress)
    jobs = ct_series_jobs(build)
    cache = Path(cache) if cache else cache_dir(build.repository) / "quantification"
    outcome = quantify_series_table(jobs, cache_dir=cache, workers=workers, show_progress=show_progress)
    results, failures = (
        outcome if isinstance(outcome, tuple) else (outcome, outcome.attrs.get("failures", pd.DataFrame()))
    )
    cohort = join_to_cohort(build.table, results)
    cohort.attrs.update(build.table.attrs)
    return QuantificationRun(build=build, jobs=jobs, results=results, failures=failures, cohort=cohort)
