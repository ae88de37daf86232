"""Files per second: kicc audit (headers, OCR off) and kicc deidentify vs dicognito and pydicom/deid, same files.

Input: every ``.dcm`` under ``../shared/data/ct`` (real CT from five public sources), copied ``--copies`` times
into a temporary tree (each copy its own folder, and from the second copy on its own study, series, instance
and frame-of-reference UIDs, so no instance repeats). kicc's per-process caches are emptied before each of
its runs. Every tool runs ``--repeats`` times, the tools alternated
(each repeat starts one tool later), so a change of machine load falls on all of them alike; the medians of
wall time and of CPU time (this process and its worker processes) are printed as a Markdown table for
docs/benchmarks.md, with the ratios kicc / peer. The peers run in one process (as their libraries do); kicc
runs with 1 and with 2 worker processes. The OCR pass is timed on its own, per radiograph
(``../shared/data/cxr/dicom``) and per CT slice (one slice of each series under ``../shared/data/ct``), when
tesseract is installed.

Peers, same files, same process:

* audit: ``deid.dicom.get_identifiers`` (header extraction, the nearest deid has to an audit) and dicognito's
  ``--what-if`` pass (read and anonymise in memory, nothing written: the nearest dicognito has);
* de-identification: dicognito ``Anonymizer.anonymize`` + ``save_as``; deid ``replace_identifiers`` (default
  recipe) + save.

dicognito and deid are not project dependencies: ``.venv/bin/pip install dicognito deid`` before running.

Usage: ``.venv/bin/python benchmarks/deid_benchmark.py [--copies 3] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KICC_SHARED_DIR", ROOT.parent / "shared"))


def _tree(folder: Path, copies: int) -> list[Path]:
    """Copy 0 is the files as they are; every other copy gets its own UIDs (study, series, instance, frame of
    reference) and instance numbers, so no two files of the tree hold the same instance."""
    from pydicom.uid import generate_uid

    sources = sorted((SHARED / "data" / "ct").rglob("*.dcm"))
    files = []
    for c in range(copies):
        for k, src in enumerate(sources):
            dst = folder / f"copy{c}" / f"{k:05d}.dcm"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if c == 0:
                shutil.copyfile(src, dst)
            else:
                ds = pydicom.dcmread(src)
                for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
                    if keyword in ds:
                        setattr(ds, keyword, generate_uid(entropy_srcs=[str(ds[keyword].value), str(c)]))
                if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.InstanceNumber = int(ds.get("InstanceNumber", 0) or 0) + 1000 * c
                ds.save_as(dst)
            files.append(dst)
    return files


def _cold() -> None:
    """Empty kicc's per-process caches (value texts, keyed hashes, UID map), so every kicc run starts as a fresh
    process would and no run profits from an earlier one."""
    from kicc_analysis.deid import annex_e, audit, deidentify

    audit._TEXTS.clear()
    for cached in (audit._first_kind, audit._hash, audit._mask, deidentify._uid_for, annex_e.action):
        cached.cache_clear()


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the worker pools)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _alternated(tools: dict[str, Callable[[], None]], repeats: int) -> dict[str, tuple[float, float]]:
    """(median wall s, median CPU s) of each tool; the order rotates by one tool each repeat."""
    names = list(tools)
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name.startswith("kicc"):
                _cold()
            c, t = _cpu(), time.perf_counter()
            tools[name]()
            times[name].append((time.perf_counter() - t, _cpu() - c))
    return {n: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts)) for n, ts in times.items()}


def _ocr_timings() -> list[str]:
    from kicc_analysis.deid import ocr

    if not ocr.tesseract_available():
        return ["OCR not timed: tesseract not installed"]
    lines = []
    cxr = sorted((SHARED / "data" / "cxr" / "dicom").glob("*.dcm"))
    series: dict[str, Path] = {}
    for path in sorted((SHARED / "data" / "ct").rglob("*.dcm")):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID", path.parent))
        series.setdefault(uid, path)
    for label, paths in (("radiograph", cxr), ("CT slice (one per series)", list(series.values()))):
        per = []
        for f in paths:
            try:
                pixels = pydicom.dcmread(f).pixel_array
            except Exception:  # noqa: BLE001 - an undecodable file is not timed
                continue
            if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
                pixels = pixels[0]
            t = time.perf_counter()
            ocr.burned_in_findings(pixels, set())
            per.append(time.perf_counter() - t)
        if per:
            lines.append(
                f"OCR pass alone (eng+kor, two polarities), {label}: {len(per)} images, median "
                f"{statistics.median(per):.2f} s per image (min {min(per):.2f}, max {max(per):.2f})"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-ocr-timing", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import logging

    from kicc_analysis.deid.audit import audit_repository
    from kicc_analysis.deid.deidentify import deidentify_repository
    from kicc_analysis.deid.keys import new_key_file

    logging.getLogger("deid").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="deid_bench_"))
    tree = work / "in"
    files = _tree(tree, args.copies)
    key = new_key_file(work / "key")
    for f in files:  # warm the OS cache
        f.read_bytes()
    n = len(files)

    def fresh(name: str) -> Path:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        return out

    audit: dict[str, Callable[[], None]] = {
        "kicc audit, 1 process": lambda: audit_repository(tree, workers=1, ocr=False, show=False),
        "kicc audit, 2 processes": lambda: audit_repository(tree, workers=2, ocr=False, show=False),
    }
    deidentify: dict[str, Callable[[], None]] = {
        "kicc deidentify, 1 process": lambda: deidentify_repository(
            tree, fresh("kicc_out"), key, "S01", workers=1, ocr=False, show=False
        ),
        "kicc deidentify, 2 processes": lambda: deidentify_repository(
            tree, fresh("kicc_out"), key, "S01", workers=2, ocr=False, show=False
        ),
    }
    try:
        from deid.dicom import get_identifiers, replace_identifiers

        audit["deid get_identifiers"] = lambda: get_identifiers([str(f) for f in files])

        def deid_run() -> None:
            out = fresh("deid_out")
            out.mkdir()
            replace_identifiers(dicom_files=[str(f) for f in files], save=True, output_folder=str(out), overwrite=True)

        deidentify["deid replace_identifiers + save"] = deid_run
    except ImportError:
        print("deid not installed: skipped")
    try:
        from dicognito.anonymizer import Anonymizer

        def dicognito_run(save: bool) -> None:
            out = fresh("dicognito_out")
            out.mkdir()
            anonymizer = Anonymizer(seed="bench")
            for k, f in enumerate(files):
                ds = pydicom.dcmread(f)
                anonymizer.anonymize(ds)
                if save:
                    ds.save_as(out / f"{k}.dcm")

        audit["dicognito --what-if (anonymize in memory)"] = lambda: dicognito_run(False)
        deidentify["dicognito anonymize + save_as"] = lambda: dicognito_run(True)
    except ImportError:
        print("dicognito not installed: skipped")

    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {**_alternated(audit, args.repeats), **_alternated(deidentify, args.repeats)}
    load_after = os.getloadavg()
    print(
        f"{started}; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, pydicom "
        f"{pydicom.__version__}; {n} files ({sum(f.stat().st_size for f in files) / 2**20:.0f} MiB), "
        f"median of {args.repeats} alternated runs; 1-min load {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print("| run | median wall s | files/s (wall) | files per CPU-s |\n|---|---:|---:|---:|")
    for name, (wall, cpu) in results.items():
        print(f"| {name} | {wall:.2f} | {n / wall:,.0f} | {n / cpu:,.0f} |")
    print("\nRatios kicc / peer (files/s, wall; CPU in brackets):")
    for group, ours in ((audit, "kicc audit"), (deidentify, "kicc deidentify")):
        for peer in (name for name in group if not name.startswith("kicc")):
            for processes in ("1 process", "2 processes"):
                mine = f"{ours}, {processes}"
                wall = results[peer][0] / results[mine][0]
                cpu = results[peer][1] / results[mine][1]
                print(f"- {mine} vs {peer}: {wall:.2f}x ({cpu:.2f}x)")
    if not args.no_ocr_timing:
        for line in _ocr_timings():
            print(line)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
