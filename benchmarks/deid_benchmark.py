"""Files per second: kicc audit (headers, OCR off) and kicc deidentify vs dicognito and pydicom/deid, same files.

Input: every ``.dcm`` under ``../shared/data/ct`` (real CT from five public sources), copied ``--copies`` times
into a temporary flat tree (each copy its own folder). Each tool runs ``--repeats`` times; medians are printed
as a Markdown table for docs/benchmarks.md. The OCR pass is timed on its own per radiograph
(``../shared/data/cxr/dicom``) when tesseract is installed.

dicognito and deid are not project dependencies: ``.venv/bin/pip install dicognito deid`` before running.

Usage: ``.venv/bin/python benchmarks/deid_benchmark.py [--copies 3] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KICC_SHARED_DIR", ROOT.parent / "shared"))


def _tree(folder: Path, copies: int) -> list[Path]:
    sources = sorted((SHARED / "data" / "ct").rglob("*.dcm"))
    files = []
    for c in range(copies):
        for k, src in enumerate(sources):
            dst = folder / f"copy{c}" / f"{k:05d}.dcm"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            files.append(dst)
    return files


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from kicc_analysis.deid.audit import audit_repository
    from kicc_analysis.deid.deidentify import deidentify_repository
    from kicc_analysis.deid.keys import new_key_file

    work = Path(tempfile.mkdtemp(prefix="deid_bench_"))
    tree = work / "in"
    files = _tree(tree, args.copies)
    key = new_key_file(work / "key")
    for f in files:  # warm the OS cache
        f.read_bytes()
    n = len(files)
    rows = []

    def fresh(name: str) -> Path:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        return out

    rows.append(
        (
            "kicc audit, headers (workers=1)",
            _time(lambda: audit_repository(tree, workers=1, ocr=False, show=False), args.repeats),
        )
    )
    rows.append(
        (
            "kicc audit, headers (workers=2)",
            _time(lambda: audit_repository(tree, workers=2, ocr=False, show=False), args.repeats),
        )
    )
    try:
        from deid.dicom import get_identifiers

        rows.append(("deid get_identifiers", _time(lambda: get_identifiers([str(f) for f in files]), args.repeats)))
    except ImportError:
        print("deid not installed: skipped")
    rows.append(
        (
            "kicc deidentify",
            _time(lambda: deidentify_repository(tree, fresh("kicc_out"), key, "S01", show=False), args.repeats),
        )
    )
    try:
        from dicognito.anonymizer import Anonymizer

        def dicognito_run() -> None:
            out = fresh("dicognito_out")
            out.mkdir()
            anonymizer = Anonymizer(seed="bench")
            for k, f in enumerate(files):
                ds = pydicom.dcmread(f)
                anonymizer.anonymize(ds)
                ds.save_as(out / f"{k}.dcm")

        rows.append(("dicognito anonymize + save", _time(dicognito_run, args.repeats)))
    except ImportError:
        print("dicognito not installed: skipped")
    try:
        from deid.dicom import replace_identifiers

        def deid_run() -> None:
            out = fresh("deid_out")
            out.mkdir()
            replace_identifiers(dicom_files=[str(f) for f in files], save=True, output_folder=str(out), overwrite=True)

        rows.append(("deid replace_identifiers (default recipe) + save", _time(deid_run, args.repeats)))
    except ImportError:
        pass
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, pydicom "
        f"{pydicom.__version__}; {n} files ({sum(f.stat().st_size for f in files) / 2**20:.0f} MiB), "
        f"median of {args.repeats}; load {os.getloadavg()[0]:.2f}"
    )
    print("| run | median s | files/s |\n|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {n / seconds:,.0f} |")
    from kicc_analysis.deid import ocr

    cxr = sorted((SHARED / "data" / "cxr" / "dicom").glob("*.dcm"))
    if ocr.tesseract_available() and cxr:
        per = []
        for f in cxr:
            try:
                pixels = pydicom.dcmread(f).pixel_array
            except Exception:
                continue
            t = time.perf_counter()
            ocr.burned_in_findings(pixels, set())
            per.append(time.perf_counter() - t)
        print(
            f"OCR pass alone: {len(per)} radiographs, median {statistics.median(per):.2f} s per radiograph "
            f"(min {min(per):.2f}, max {max(per):.2f})"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
