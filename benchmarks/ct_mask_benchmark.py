"""Benchmark: quantification with an external lobe mask vs the classical segmentation, 512 x 512 x 300 CT series.

The series is the demo chest phantom (``kicc_analysis.demo.phantom.chest_phantom``, seed 0, 15 % opacity) generated
at 300 x 512 x 512 voxels of 1.0 x 0.68 x 0.68 mm and written as 300 DICOM files (int16) into a temporary folder,
with its lobes written as TotalSegmentator's ``total`` multi-label file (v2 class map, stored RAS as TotalSegmentator
writes it for a RAS input). Each timed run is a fresh process (so peak RSS is the run's own), in the same session:

* ``external``: ``load_ct`` + ``load_lung_mask`` (the TotalSegmentator file) + ``quantify(..., lobe_labels=...)``
  (lungs, six zones and five lobes);
* ``classical``: ``load_ct`` + ``segment_lungs`` + ``quantify`` (lungs and six zones).

Also reported: ``compare_lung_masks`` of the two masks (seconds and Dice) and the per-lobe opacity against the
phantom's truth.

Usage::

    .venv/bin/python benchmarks/ct_mask_benchmark.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (300, 512, 512)  # z, y, x
SPACING = (1.0, 0.68, 0.68)  # mm, z, y, x
TOTAL_V2 = {1: 12, 2: 13, 3: 14, 4: 10, 5: 11}  # RUL RML RLL LUL LLL -> TotalSegmentator "total" labels


def make_data(folder: Path) -> dict[str, float]:
    """Write the phantom as a DICOM series (``folder/dicom``) and its lobes as ``folder/seg.nii.gz``."""
    from kicc_analysis.demo.phantom import chest_phantom

    ph = chest_phantom(SHAPE, SPACING, lesions="random", seed=0, opacity_fraction=0.15)
    image = sitk.GetImageFromArray(ph.hu)
    image.SetSpacing(SPACING[::-1])
    image.SetOrigin((-174.0, -174.0, -300.0))
    from ct_benchmark import write_dicom_series  # same folder: the one CT series writer of the benchmarks

    write_dicom_series(image, folder / "dicom", "1.2.826.0.1.3680043.8.498.15", "1.2.826.0.1.3680043.8.498.16")
    lut = np.zeros(256, np.uint8)
    for code, label in TOTAL_V2.items():
        lut[code] = label
    seg = sitk.GetImageFromArray(lut[ph.lobe_labels])
    seg.CopyInformation(image)
    sitk.WriteImage(sitk.DICOMOrient(seg, "RAS"), str(folder / "seg.nii.gz"), useCompression=True)
    truth = {lobe: 100.0 * v for lobe, v in ph.lobe_involvement.items()}
    (folder / "truth.json").write_text(json.dumps(truth))
    return truth


def child(method: str, folder: str) -> None:
    """One timed run in this process; prints JSON with seconds and peak RSS (MiB)."""
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification import quantify
    from kicc_analysis.segmentation import load_lung_mask, segment_lungs

    start = time.perf_counter()
    image = load_ct(Path(folder) / "dicom")
    loaded = time.perf_counter()
    if method == "external":
        seg = load_lung_mask(Path(folder) / "seg.nii.gz", image)
    else:
        seg = segment_lungs(image)
    segmented = time.perf_counter()
    table = quantify(image, seg.labels, lobe_labels=getattr(seg, "lobes", None))
    done = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rows = table.set_index("region")
    lobes = {k: float(rows.loc[k, "opacity_pct"]) for k in ("RUL", "RML", "RLL", "LUL", "LLL") if k in rows.index}
    print(json.dumps({
        "method": method, "load_s": loaded - start, "mask_s": segmented - loaded, "quantify_s": done - segmented,
        "total_s": done - start, "peak_mib": peak_mib, "lung_ml": float(rows.loc["both", "volume_ml"]),
        "lobe_opacity_pct": lobes,
    }))  # fmt: skip


def compare(folder: Path) -> dict[str, float]:
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.segmentation import compare_lung_masks, load_lung_mask, segment_lungs

    image = load_ct(folder / "dicom")
    external = load_lung_mask(folder / "seg.nii.gz", image)
    classical = segment_lungs(image)
    start = time.perf_counter()
    table = compare_lung_masks(classical, external, image).set_index("region")
    seconds = time.perf_counter() - start
    both = table.loc["both"]
    return {"compare_s": seconds, "dice": float(both["dice"]),
            **{f"{p}_ml": float(both[f"{p}_ml"]) for p in ("outside_cage", "below_diaphragm", "dense_in_cage",
                                                          "other")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the data here (and reuse it when present)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    tmp = None
    if args.keep:
        folder = args.keep
    else:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
    if not (folder / "seg.nii.gz").exists():
        start = time.perf_counter()
        make_data(folder)
        print(f"data written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    truth = json.loads((folder / "truth.json").read_text())
    runs: dict[str, list[dict]] = {"external": [], "classical": []}
    for _ in range(args.repeats):
        for method in runs:  # interleaved, so both see the same machine load
            out = subprocess.run([sys.executable, __file__, "--child", method, str(folder)], capture_output=True,
                                 text=True, check=True)  # fmt: skip
            runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {}
    for method, results in runs.items():
        summary[method] = {k: statistics.median(r[k] for r in results)
                           for k in ("load_s", "mask_s", "quantify_s", "total_s", "peak_mib", "lung_ml")}  # fmt: skip
    summary["speed_ratio_total"] = summary["classical"]["total_s"] / summary["external"]["total_s"]
    lobes = runs["external"][0]["lobe_opacity_pct"]
    summary["lobe_opacity_error_max_points"] = max(abs(lobes[k] - truth[k]) for k in truth)
    summary["compare"] = compare(folder)
    summary["machine"] = f"{platform.node()} {platform.processor() or platform.machine()}, {platform.python_version()}"
    summary["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    summary["load_average_1_5_15"] = [round(v, 1) for v in os.getloadavg()]
    summary["repeats"] = args.repeats
    print(json.dumps(summary, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
