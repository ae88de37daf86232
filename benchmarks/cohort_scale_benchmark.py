"""build_cohort at scale: a synthetic index of 1,000,000 instances / 100,000 series / 20,000 patients (issue 21).

No files or pixels: :mod:`kicc_analysis.repository.synthetic_index` generates the flat index a scan would have written;
the benchmark times (1) the index -> instance/series/study tables step the scanner runs on every build
(``synthetic_scan``), (2) ``build_cohort`` from those tables plus a 20,000-row clinical table, and records the
process's peak resident memory. Each repeat runs in a fresh process so peak memory is per run.

Usage::

    python benchmarks/cohort_scale_benchmark.py [--patients 20000 --series 100000 --instances 1000000 --repeats 3]
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


def _one(patients: int, series: int, instances: int) -> dict:
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.repository.synthetic_index import synthetic_index, synthetic_scan, write_synthetic_clinical

    t0 = time.perf_counter()
    index = synthetic_index(patients, series, instances)
    t1 = time.perf_counter()
    scan = synthetic_scan(index)
    del index
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KICC_CACHE"] = os.path.join(tmp, "cache")
        write_synthetic_clinical(os.path.join(tmp, "repo"), patients)
        t3 = time.perf_counter()
        build = build_cohort(os.path.join(tmp, "repo"), scan=scan, show_progress=False)
        t4 = time.perf_counter()
    return {
        "generate_s": t1 - t0,
        "tables_s": t2 - t1,
        "build_cohort_s": t4 - t3,
        "index_to_cohort_s": (t2 - t1) + (t4 - t3),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "rows": len(build.table),
        "with_baseline": int(build.table["baseline_ct_series_uid"].notna().sum()),
        "instances": len(scan.instances),
        "series": len(scan.series),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.patients, args.series, args.instances)))
        return
    runs = []
    for _ in range(args.repeats):
        cmd = [sys.executable, __file__, "--child", "--patients", str(args.patients), "--series", str(args.series)]
        out = subprocess.run([*cmd, "--instances", str(args.instances)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    keys = ("tables_s", "build_cohort_s", "index_to_cohort_s", "peak_rss_gb")
    medians = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in keys}
    print(f"{os.cpu_count()} CPUs; median of {len(runs)}: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
