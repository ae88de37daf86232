"""Header-scan throughput and peak memory: kicc_analysis.repository vs plain pydicom loops.

Usage::

    .venv/bin/python benchmarks/scan_benchmark.py                 # 20,000 files, 3 repeats
    .venv/bin/python benchmarks/scan_benchmark.py --n-files 2000 --repeats 1   # quick check

The tree (``write_scanner_like_tree``: GE/Siemens/Philips-like CT headers with hundreds of private
tags, CSA-like blocks, nested and undefined-length sequences, plus CR/DX) is written once under
``--work-dir`` (default ``/tmp/kicc_scan_benchmark``) and reused. Every measurement runs in a fresh
Python process (so peak RSS is that run's own) after one warm-up read of every file (warm OS cache):

* ``kicc first``   ``scan_repository(root, index_dir=<empty>, workers=2)``: walk + headers + tables + index
* ``kicc rescan``  the same call again on the unchanged tree (index reused, 0 files read)
* ``kicc 1 proc``  ``workers=1`` first scan
* ``pydicom 1 proc``  ``for f in files: pydicom.dcmread(f, stop_before_pixels=True)``
* ``pydicom 2 proc``  the same loop in a 2-process pool (chunks of 256 files)

Prints a Markdown table (medians) and writes ``scan_results.json`` in the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT_MARKER = "tree.json"
MODES = ("pydicom_1proc", "pydicom_2proc", "kicc_1proc", "kicc_first", "kicc_rescan")


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.extend(os.path.join(dirpath, f) for f in filenames if f != ROOT_MARKER)
    return out


def _pydicom_chunk(paths: list[str]) -> list[str | None]:
    import pydicom

    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            out.append(ds.get("SeriesInstanceUID"))
        except Exception:  # noqa: BLE001 - peers skip unreadable files too
            out.append(None)
    return out


def _peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _child(mode: str, root: Path, index_dir: Path) -> None:
    """Run one measurement in this (fresh) process and print a JSON line."""
    os.environ["KICC_NO_PROGRESS"] = "1"
    # imports are not part of the timed scan (a notebook has them loaded already)
    import pydicom  # noqa: F401

    from kicc_analysis.repository import scan_repository

    t0 = time.perf_counter()
    if mode.startswith("kicc"):
        workers = 1 if mode == "kicc_1proc" else 2
        scan = scan_repository(root, index_dir=index_dir, workers=workers, show_progress=False)
        n = scan.n_files
        extra = {"n_read": scan.n_read, "n_reused": scan.n_reused, "n_instances": len(scan.instances)}
    else:
        files = _files(root)
        n = len(files)
        if mode == "pydicom_1proc":
            res = _pydicom_chunk(files)
        else:
            import multiprocessing as mp

            chunks = [files[i : i + 256] for i in range(0, n, 256)]
            with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("fork")) as pool:
                res = [x for part in pool.map(_pydicom_chunk, chunks) for x in part]
        extra = {"n_read": n, "n_instances": sum(r is not None for r in res)}
    elapsed = time.perf_counter() - t0
    own, children = _peak_mib()
    print(json.dumps({"mode": mode, "n": n, "seconds": elapsed, "peak_mib": own, "peak_child_mib": children, **extra}))


def _run(mode: str, root: Path, index_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--root", str(root), "--index-dir", str(index_dir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ensure_tree(work: Path, n_files: int, seed: int) -> Path:
    root = work / "tree"
    marker = root / ROOT_MARKER
    want = {"n_files": n_files, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return root
    if root.exists():
        shutil.rmtree(root)
    from kicc_analysis.repository.synthetic import write_scanner_like_tree

    t0 = time.perf_counter()
    paths = write_scanner_like_tree(root, n_files, seed=seed)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files ({size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s", flush=True)
    marker.write_text(json.dumps(want))
    return root


def _warm(root: Path) -> None:
    for f in _files(root):
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-files", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/kicc_scan_benchmark"))
    ap.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated subset of " + ",".join(MODES) + " (e.g. kicc_first,kicc_rescan for the re-scan ratio)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.root, args.index_dir)
        return

    modes = [m for m in MODES if m in args.modes.split(",")]
    if "kicc_rescan" in modes and "kicc_first" not in modes:
        ap.error("kicc_rescan needs kicc_first (it re-scans the index that run writes)")
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    root = _ensure_tree(work, args.n_files, args.seed)
    _warm(root)
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        idx = work / f"index_{r}"
        shutil.rmtree(idx, ignore_errors=True)
        for mode in modes:
            index_dir = work / f"index1_{r}" if mode == "kicc_1proc" else idx
            if mode == "kicc_1proc":
                shutil.rmtree(index_dir, ignore_errors=True)
            res = _run(mode, root, index_dir)
            runs.setdefault(mode, []).append(res)
            print(
                f"repeat {r + 1}: {mode:14s} {res['n'] / res['seconds']:8.0f} files/s  ({res['seconds']:.3f} s)"
                f"  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            if mode == "kicc_1proc":
                shutil.rmtree(index_dir, ignore_errors=True)
        shutil.rmtree(idx, ignore_errors=True)

    summary = {}
    for mode, rs in runs.items():
        secs = statistics.median(x["seconds"] for x in rs)
        summary[mode] = {
            "n": rs[0]["n"],
            "median_seconds": secs,
            "files_per_s": rs[0]["n"] / secs,
            "peak_mib": max(x["peak_mib"] for x in rs),
            "peak_child_mib": max(x["peak_child_mib"] for x in rs),
            "n_read": rs[0]["n_read"],
            "runs_seconds": [x["seconds"] for x in rs],
        }
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_avg_1min": os.getloadavg()[0],
        "load_avg_1min_start": load_start,
        "n_files": args.n_files,
        "repeats": args.repeats,
    }
    (work / "scan_results.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=2))
    base1 = summary.get("pydicom_1proc", {}).get("files_per_s", float("nan"))
    base2 = summary.get("pydicom_2proc", {}).get("files_per_s", float("nan"))
    print(
        f"\n{meta['date']}, {meta['machine']}, 1-min load avg {load_start:.2f} at start, "
        f"{meta['load_avg_1min']:.2f} at end, {rs[0]['n']} files"
    )
    print(
        "| run | files read | median s | files/s | vs pydicom 1 proc | vs pydicom 2 proc | peak RSS main / worker (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in modes:
        s = summary[mode]
        print(
            f"| {mode} | {s['n_read']} | {s['median_seconds']:.3f} | {s['files_per_s']:.0f} | "
            f"{s['files_per_s'] / base1:.2f}x | {s['files_per_s'] / base2:.2f}x | "
            f"{s['peak_mib']:.0f} / {s['peak_child_mib']:.0f} |"
        )
    if "kicc_rescan" in summary:
        first, again = summary["kicc_first"], summary["kicc_rescan"]
        speedup = first["median_seconds"] / again["median_seconds"]
        per_repeat = [f / r for f, r in zip(first["runs_seconds"], again["runs_seconds"], strict=True)]
        print(
            f"\nre-scan of the unchanged tree: {speedup:.1f}x faster than the first scan (medians); "
            f"per repeat {min(per_repeat):.1f}-{max(per_repeat):.1f}x; "
            f"re-scan runs {', '.join(f'{x * 1e3:.0f}' for x in again['runs_seconds'])} ms"
        )


if __name__ == "__main__":
    main()
