"""Benchmark: export throughput (CT series per minute) vs a plain SimpleITK read-and-write loop of the same series.

On a demo repository (``kicc demo``, default 8 patients, seed 19; generated into a temporary folder unless
``--repository`` is given), in one process, median of ``--repeats`` rounds; in each round the three timings run in
an order that alternates between rounds (export first in even rounds, plain loop first in odd ones):

* ``cohort build``: :func:`kicc_analysis.cohort.build_cohort` (header scan with its index, clinical table, readings;
  no snapshot written): the fixed cost that precedes any export, timed on its own;
* ``kicc export``: :func:`kicc_analysis.export.export_dataset` given that built cohort (``build=``), task ``lobes``
  (``--task``), nnU-Net, external masks = the demo's lobe truth: ``load_ct`` (HU checks, LPS), ``load_lung_mask``
  onto the CT grid, deterministic ``.nii.gz`` images and labels, split, datasheet (reader agreement), manifest with
  SHA-256 (task ``opacity`` adds the classical lung segmentation and the opacity labels);
* ``plain SimpleITK``: for the same series, ``ImageSeriesReader`` of the files GDCM lists for the series UID (sorted
  by slice position), ``WriteImage`` of the CT as ``.nii.gz`` and ``ReadImage`` + ``WriteImage`` of the lobe file;
  nothing else (no checks, no splits, no manifest).

The like-with-like ratio is ``kicc export`` (without the build) / ``plain SimpleITK``, per series; the build is
reported next to it.

Usage::

    .venv/bin/python benchmarks/export_benchmark.py [--repeats 5] [--repository DIR] [--task lobes|opacity]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk


def run_export(repository: Path, out: Path, build, task: str) -> int:
    from kicc_analysis.export import export_dataset

    result = export_dataset(
        repository,
        out,
        export_format="nnunet",
        task=task,
        mask_source="external",
        mask_dir=repository / "ground_truth" / "lobes",
        show_progress=False,
        build=build,
    )
    return len(result.cases)


def run_plain(jobs: list[tuple[str, str, Path]], out: Path) -> int:
    out.mkdir(parents=True)
    for i, (folder, series_uid, mask) in enumerate(jobs):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_uid))  # sorted by position
        sitk.WriteImage(reader.Execute(), str(out / f"case{i:04d}_0000.nii.gz"), useCompression=True)
        sitk.WriteImage(sitk.ReadImage(str(mask)), str(out / f"case{i:04d}.nii.gz"), useCompression=True)
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repository", type=Path)
    parser.add_argument("--task", choices=["lobes", "opacity"], default="lobes")
    args = parser.parse_args()
    from kicc_analysis.cohort import build_cohort, ct_series_jobs

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        repository = args.repository
        if repository is None:
            from kicc_analysis.demo import generate_demo

            repository = folder / "repository"
            generate_demo(repository, n_patients=8, seed=19, show_progress=False)
        build = build_cohort(repository, write_snapshot=False, show_progress=False)  # warms the scan index
        lobes = repository / "ground_truth" / "lobes"
        jobs = [
            (str(Path(row.source[0]).parent), row.series_uid, lobes / f"{row.series_uid}.nii.gz")
            for row in ct_series_jobs(build).itertuples()
            if (lobes / f"{row.series_uid}.nii.gz").exists()
        ]
        timings: dict[str, list[float]] = {"cohort build": [], "kicc export": [], "plain SimpleITK": []}
        counts = {"cohort build": len(jobs), "plain SimpleITK": len(jobs)}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            build = build_cohort(repository, write_snapshot=False, show_progress=False)
            timings["cohort build"].append(time.perf_counter() - start)
            order = ["kicc export", "plain SimpleITK"] if repeat % 2 == 0 else ["plain SimpleITK", "kicc export"]
            for name in order:
                out = folder / f"{name.replace(' ', '_')}_{repeat}"
                start = time.perf_counter()
                if name == "kicc export":
                    counts[name] = run_export(repository, out, build, args.task)
                else:
                    run_plain(jobs, out)
                timings[name].append(time.perf_counter() - start)
                shutil.rmtree(out)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}, SimpleITK {sitk.Version.VersionString()}"
        )
        print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; repeats {args.repeats}; load {load:.1f}")
        print(f"repository: {repository} ({len(jobs)} CT series with a lobe mask); task {args.task}")
        for name, values in timings.items():
            median = statistics.median(values)
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(
                f"{name:16s} series {counts[name]:3d}  median {median:7.2f} s  "
                f"{60.0 * counts[name] / median:7.1f} series/min  (runs: {runs})"
            )
        per_series = {name: statistics.median(v) / counts[name] for name, v in timings.items()}
        print(
            f"ratio export / plain (time per series): {per_series['kicc export'] / per_series['plain SimpleITK']:.2f}"
        )
        print(
            "ratio (build + export) / plain: "
            f"{(per_series['kicc export'] + per_series['cohort build']) / per_series['plain SimpleITK']:.2f}"
        )
        ratios = [e / p for e, p in zip(timings["kicc export"], timings["plain SimpleITK"], strict=True)]
        print(f"per-round ratios export / plain: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
