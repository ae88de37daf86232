"""Benchmark: export throughput (CT series per minute) vs a plain SimpleITK read-and-write loop of the same series.

On a demo repository (``kicc demo``, default 8 patients, seed 19; generated into a temporary folder unless
``--repository`` is given), in one process, median of ``--repeats`` runs each:

* ``kicc export``: :func:`kicc_analysis.export.export_dataset` (nnU-Net, task ``lobes``, external masks = the demo's
  lobe truth): cohort build (header scan), ``load_ct`` (HU checks, LPS), ``load_lung_mask`` onto the CT grid,
  deterministic ``.nii.gz`` images and labels, split, datasheet, manifest with SHA-256;
* ``plain SimpleITK``: for the same series, ``ImageSeriesReader`` of the files GDCM lists for the series UID (sorted
  by slice position), ``WriteImage`` of the CT as
  ``.nii.gz`` and ``ReadImage`` + ``WriteImage`` of the lobe file; nothing else (no checks, no splits, no manifest).

Usage::

    .venv/bin/python benchmarks/export_benchmark.py [--repeats 3] [--repository DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk


def run_export(repository: Path, out: Path) -> int:
    from kicc_analysis.export import export_dataset

    result = export_dataset(
        repository,
        out,
        export_format="nnunet",
        task="lobes",
        mask_source="external",
        mask_dir=repository / "ground_truth" / "lobes",
        show_progress=False,
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repository", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        repository = args.repository
        if repository is None:
            from kicc_analysis.demo import generate_demo

            repository = folder / "repository"
            generate_demo(repository, n_patients=8, seed=19, show_progress=False)
        from kicc_analysis.cohort import build_cohort, ct_series_jobs

        build = build_cohort(repository, write_snapshot=False, show_progress=False)
        lobes = repository / "ground_truth" / "lobes"
        jobs = [
            (str(Path(row.source[0]).parent), row.series_uid, lobes / f"{row.series_uid}.nii.gz")
            for row in ct_series_jobs(build).itertuples()
            if (lobes / f"{row.series_uid}.nii.gz").exists()
        ]
        timings: dict[str, list[float]] = {"kicc export": [], "plain SimpleITK": []}
        counts = {}
        for repeat in range(args.repeats):
            for name, run in (("kicc export", run_export), ("plain SimpleITK", None)):
                out = folder / f"{name.replace(' ', '_')}_{repeat}"
                start = time.perf_counter()
                counts[name] = run_export(repository, out) if run else run_plain(jobs, out)
                timings[name].append(time.perf_counter() - start)
                shutil.rmtree(out)
        print(
            f"machine: {platform.node()} {platform.processor() or platform.machine()}, python {platform.python_version()}"
        )
        print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; repeats {args.repeats}")
        rows = []
        for name, values in timings.items():
            median = statistics.median(values)
            rows.append((name, counts[name], median, 60.0 * counts[name] / median))
            print(
                f"{name:16s} series {counts[name]:3d}  median {median:7.2f} s  {60.0 * counts[name] / median:7.1f} series/min"
            )
        print(f"ratio (export / plain, time per series): {(rows[0][2] / rows[0][1]) / (rows[1][2] / rows[1][1]):.2f}")


if __name__ == "__main__":
    main()
