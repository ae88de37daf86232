"""build_cohort at scale: a synthetic index of 1,000,000 instances / 100,000 series / 20,000 patients (issue 21).

No files or pixels: :mod:`kicc_analysis.repository.synthetic_index` generates the flat index a scan would have
written, turns it into instance/series/study tables with the scanner's own code and saves them in the scanner's
table-cache format (once, timed as ``tables_s``: the work of the first build after the repository changed). Then,
in a fresh process per repeat (so peak memory is per run), it times what ``build_cohort`` does on an unchanged
repository: load the cached tables and build the cohort from them and a 20,000-row clinical table
(``load_s + build_cohort_s``), with the process's peak resident memory. Not included: walking/statting the
1,000,000 files (filesystem-bound; see benchmarks/scan_benchmark.py).

``--first-build`` times instead the first build after the repository changed, in a fresh process per repeat: read
the flat index back from Parquet (as the scanner reads its index), turn it into the instance/series/study tables
(``read_index_s``, ``tables_s``) and build the cohort (``build_cohort_s``), with that process's peak memory.

Usage::

    python benchmarks/cohort_scale_benchmark.py [--patients 20000 --series 100000 --instances 1000000 --repeats 3]
    python benchmarks/cohort_scale_benchmark.py --first-build --work-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _peak_rss_gb() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss`` it is not inherited across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _child(folder: str, patients: int) -> dict:
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.repository.synthetic_index import load_scan_tables

    t0 = time.perf_counter()
    scan = load_scan_tables(os.path.join(folder, "tables"))
    t1 = time.perf_counter()
    os.environ["KICC_CACHE"] = tempfile.mkdtemp(dir=folder)
    build = build_cohort(os.path.join(folder, "repo"), scan=scan, show_progress=False)
    t2 = time.perf_counter()
    assert len(build.table) == patients
    return {
        "load_s": t1 - t0,
        "build_cohort_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_rss_gb": _peak_rss_gb(),
        "with_baseline": int(build.table["baseline_ct_series_uid"].notna().sum()),
    }


def _child_first(folder: str, patients: int) -> dict:
    """The first build after a change: the flat index (read back from Parquet as the scanner reads its index) ->
    instance/series/study tables -> cohort, in one fresh process."""
    import pyarrow.parquet as pq

    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.repository.synthetic_index import synthetic_scan

    c0, t0 = time.process_time(), time.perf_counter()
    index = pq.read_table(os.path.join(folder, "index.parquet")).to_pandas()
    t1 = time.perf_counter()
    scan = synthetic_scan(index)
    del index
    t2 = time.perf_counter()
    os.environ["KICC_CACHE"] = tempfile.mkdtemp(dir=folder)
    build = build_cohort(os.path.join(folder, "repo"), scan=scan, show_progress=False)
    t3 = time.perf_counter()
    assert len(build.table) == patients
    return {
        "cpu_s": time.process_time() - c0,
        "read_index_s": t1 - t0,
        "tables_s": t2 - t1,
        "build_cohort_s": t3 - t2,
        "total_s": t3 - t0,
        "peak_rss_gb": _peak_rss_gb(),
        "cohort_version": build.cohort_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", help="keep the generated tables here and reuse them on the next run")
    parser.add_argument(
        "--first-build",
        action="store_true",
        help="time the first build after a change (index -> tables -> cohort) instead of the cached path",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = _child_first if args.first_build else _child
        print(json.dumps(child(args.child, args.patients)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.work_dir or scratch
        if os.path.isfile(os.path.join(folder, "index.parquet")):
            print(f"reusing the tables in {folder}", flush=True)
        else:
            _generate(folder, args.patients, args.series, args.instances)
        runs = []
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--child", folder, "--patients", str(args.patients)]
            cmd += ["--first-build"] if args.first_build else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    keys = ("cpu_s", "read_index_s", "tables_s") if args.first_build else ("load_s",)
    keys += ("build_cohort_s", "total_s", "peak_rss_gb")
    medians = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in keys}
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; median of {len(runs)}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in medians.items())
    )


def _generate(folder: str, patients: int, n_series: int, instances: int) -> None:
    from kicc_analysis.repository.synthetic_index import (
        save_scan_tables,
        synthetic_index,
        synthetic_scan,
        write_synthetic_clinical,
    )

    t0 = time.perf_counter()
    index = synthetic_index(patients, n_series, instances)
    t1 = time.perf_counter()
    scan = synthetic_scan(index)
    t2 = time.perf_counter()
    save_scan_tables(scan, os.path.join(folder, "tables"))
    index.to_parquet(os.path.join(folder, "index.parquet"), index=False)
    write_synthetic_clinical(os.path.join(folder, "repo"), patients)
    print(
        f"generated {len(index)} instances / {len(scan.series)} series in {t1 - t0:.1f} s; "
        f"tables_s {t2 - t1:.1f} (index -> instance/series/study tables), peak RSS {_peak_rss_gb():.2f} GB",
        flush=True,
    )


if __name__ == "__main__":
    main()
