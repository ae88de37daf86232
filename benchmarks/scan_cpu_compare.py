"""CPU seconds of a first scan and of unchanged re-scans (this process + children, i.e. ``find``).

Usage (one fresh process per measurement; alternate two checkouts to compare them under the same load)::

    .venv/bin/python benchmarks/scan_cpu_compare.py TREE INDEX_DIR
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/scan_cpu_compare.py TREE INDEX_DIR

``TREE`` is e.g. the tree written by ``scan_benchmark.py`` (``/tmp/kicc_scan_benchmark/tree``); ``INDEX_DIR`` is
deleted before and after. Prints one JSON line: ``first``, ``rescan``, ``rescan2`` with ``cpu`` (user + system
seconds of this process and its children), ``wall`` (s) and ``n_read``. CPU time measures the work done and is far
less sensitive than wall time to a machine shared with other jobs (used for docs/benchmarks.md, 2026-12-06).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    os.environ["KICC_NO_PROGRESS"] = "1"
    import pydicom  # noqa: F401 - imports are not part of the measurement

    from kicc_analysis.repository import scan_repository

    root, index = sys.argv[1], sys.argv[2]
    shutil.rmtree(index, ignore_errors=True)
    out = {}
    for mode in ("first", "rescan", "rescan2"):
        c0, w0 = _cpu(), time.perf_counter()
        scan = scan_repository(root, index_dir=index, workers=1, show_progress=False)
        out[mode] = {"cpu": round(_cpu() - c0, 4), "wall": round(time.perf_counter() - w0, 4), "n_read": scan.n_read}
    shutil.rmtree(index, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
