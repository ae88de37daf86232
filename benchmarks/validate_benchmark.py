"""Clinical-table validation speed and peak memory: ``kicc validate`` vs a plain ``pandas.read_csv``.

Usage::

    .venv/bin/python benchmarks/validate_benchmark.py                  # 200,000 rows, 3 repeats
    .venv/bin/python benchmarks/validate_benchmark.py --rows 20000 --repeats 1   # quick check

The table is the demo cohort's clinical model (``kicc_analysis.demo.clinical.simulate_clinical``: every
per-patient dictionary variable, 17 sites) at ``--rows`` patients, with realistic problems put in
vectorised: ~5 % of laboratory cells empty, 0.1 % of CRP cells ``"<0.5"``, 0.1 % of ages ``"199"``,
0.05 % of sexes ``"Male"``. It is written once as ``clinical_<rows>.csv`` under ``--work-dir``
(default ``/tmp/kicc_validate_benchmark``) and reused. Each measurement runs in a fresh Python process
(imports not timed, so peak RSS is that run's own):

* ``pandas``    ``pandas.read_csv(path)`` (default dtypes) -- the floor: reading the file at all
* ``pandas str``  ``pandas.read_csv(path, dtype=str, keep_default_na=False)`` -- reading it as text
* ``kicc``      ``validate_clinical(path)`` -- encoding/delimiter detection, reading as text, every check

Peak memory is the child's ``VmHWM`` (``ru_maxrss`` would carry the parent's high-water mark across exec).
``--kicc-root /work/main`` also runs another checkout's ``validate_clinical`` (row ``kicc_before``, interleaved
with the others, ``--before-repeats`` times).

Prints a Markdown table (medians of ``--repeats`` runs) and writes ``validate_results.json`` in the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

MODES = ("pandas", "pandas_str", "kicc")

_CHILD = r"""
import os, sys, time
mode, path = sys.argv[1], sys.argv[2]
if os.environ.get("KICC_BENCH_ROOT"):  # another checkout: put it first and bypass the editable-install finder
    sys.path.insert(0, os.environ["KICC_BENCH_ROOT"])
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
import pandas as pd
from kicc_analysis.dictionary import validate_clinical, load_dictionary
load_dictionary()
import kicc_analysis
print(kicc_analysis.__file__, file=sys.stderr)
start = time.perf_counter()
if mode == "pandas":
    n = len(pd.read_csv(path))
elif mode == "pandas_str":
    n = len(pd.read_csv(path, dtype=str, keep_default_na=False))
else:
    n = len(validate_clinical(path))
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries the forking parent's ru_maxrss across exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(seconds, n, int(hwm) / 1024)
"""


def write_table(path: Path, rows: int, seed: int = 11) -> None:
    """Write the benchmark table (see the module docstring)."""
    from kicc_analysis.demo.clinical import LAB_COLUMNS, simulate_clinical

    rng = np.random.default_rng(seed)
    table = simulate_clinical(rows, rng).clinical.astype(object)
    for column in LAB_COLUMNS:
        table.loc[rng.random(rows) < 0.05, column] = ""
    table.loc[rng.random(rows) < 0.001, "labs_crp_mgl"] = "<0.5"
    table.loc[rng.random(rows) < 0.001, "demog_age"] = "199"
    table.loc[rng.random(rows) < 0.0005, "demog_sex"] = "Male"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n")


def run(mode: str, path: Path, kicc_root: str | None = None) -> dict:
    env = dict(os.environ, KICC_BENCH_ROOT=kicc_root) if kicc_root else None
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path)], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    return {"seconds": float(out[0]), "n": int(out[1]), "peak_rss_mib": float(out[2])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", default="/tmp/kicc_validate_benchmark")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--kicc-root", help="also run validate_clinical from this checkout (e.g. /work/main) as 'kicc_before'"
    )
    parser.add_argument("--before-repeats", type=int, default=1, help="repeats of the (slow) 'kicc_before' run")
    args = parser.parse_args()
    path = Path(args.work_dir) / f"clinical_{args.rows}.csv"
    if not path.is_file():
        write_table(path, args.rows)
    results: dict[str, list[dict]] = {m: [] for m in args.modes}
    if args.kicc_root:
        results["kicc_before"] = []
    for repeat in range(args.repeats):
        for mode in args.modes:  # interleaved, so load changes hit every mode alike
            results[mode].append(run(mode, path))
        if args.kicc_root and repeat < args.before_repeats:
            results["kicc_before"].append(run("kicc", path, args.kicc_root))
    floor = statistics.median(r["seconds"] for r in results.get("pandas") or results[args.modes[0]])
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}; {path} ({path.stat().st_size / 2**20:.1f} MiB, "
        f"{args.rows:,} rows); medians of {args.repeats} (kicc_before: {args.before_repeats if args.kicc_root else 0})"
    )
    print("\n| run | median s | vs pandas.read_csv | peak RSS MiB | rows / report rows |\n|---|---:|---:|---:|---:|")
    for mode, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["peak_rss_mib"] for r in runs)
        print(f"| {mode} | {seconds:.2f} | {seconds / floor:.2f}x | {rss:.0f} | {runs[0]['n']:,} |")
    (Path(args.work_dir) / "validate_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
