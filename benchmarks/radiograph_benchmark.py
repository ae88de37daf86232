"""Radiograph loading: kicc_analysis.radiography.load_radiograph vs plain pydicom.

Usage::

    .venv/bin/python benchmarks/radiograph_benchmark.py               # 3000 x 3000, 9 repeats
    .venv/bin/python benchmarks/radiograph_benchmark.py --size 1000 --repeats 3   # quick check

A 16-bit (12 bits stored) MONOCHROME1 CR chest-like radiograph with RescaleSlope/Intercept, two windows and
ImagerPixelSpacing + source distances is generated once (uncompressed, explicit VR little endian) in
``--work-dir`` (default ``/tmp/kicc_radiograph_benchmark``). Both sides read the same file from the warm OS cache:

* ``pydicom``  ``ds = dcmread(f); apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)``
  (no inversion, no scaling to 0-1: the peer does strictly less work)
* ``kicc``     ``load_radiograph(f)`` (the same read, the full chain, MONOCHROME1 inversion, 0-1 float32,
  spacing/view/notes)

The modes alternate within each repeat; medians, the ratio and the largest difference of the display values
(kicc vs the peer scaled to 0-1 and inverted) are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid


def write_radiograph(path: Path, size: int, seed: int = 0) -> None:
    """A chest-like 12-bit CR image: smooth lung fields, mediastinum, ribs, noise (values 0-4095)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 2600 - 900 * np.exp(-(((x - 0.3) / 0.13) ** 2 + ((y - 0.5) / 0.3) ** 2))
    body -= 900 * np.exp(-(((x - 0.7) / 0.13) ** 2 + ((y - 0.5) / 0.3) ** 2))
    body += 250 * (np.sin(y * 60) > 0.7)
    image = np.clip(body + rng.normal(0, 40, body.shape), 0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "CR", "PA", "CHEST"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"
    ds.WindowCenter, ds.WindowWidth = [2048, 1900], [4096, 1800]
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = 1800, 1650
    ds.PixelData = image.tobytes()
    ds.save_as(path, enforce_file_format=True)


def run_pydicom(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)


def run_kicc(path: Path) -> np.ndarray:
    from kicc_analysis.radiography import load_radiograph

    return load_radiograph(path).pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/kicc_radiograph_benchmark"))
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    path = args.work_dir / f"cr_{args.size}.dcm"
    if not path.is_file():
        write_radiograph(path, args.size)
    for func in (run_pydicom, run_kicc):  # warm-up: OS cache, imports, plugin discovery
        func(path)
    times: dict[str, list[float]] = {"pydicom": [], "kicc": []}
    for _ in range(args.repeats):
        for name, func in (("pydicom", run_pydicom), ("kicc", run_kicc)):
            start = time.perf_counter()
            func(path)
            times[name].append(time.perf_counter() - start)
    peer = run_pydicom(path).astype(np.float64)
    peer = 1.0 - peer / 4095.0  # the peer's window output range is 0..2**BitsStored-1; MONOCHROME1 inverted
    diff = float(np.max(np.abs(run_kicc(path).astype(np.float64) - peer)))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0]
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, pydicom {pydicom.__version__}, numpy {np.__version__}, load {load:.2f}"
    )
    print(f"{args.size} x {args.size} x 16-bit ({path.stat().st_size / 2**20:.1f} MiB), {args.repeats} repeats\n")
    print("| run | median s | min s | max s | vs pydicom |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (
        ("pydicom", "pydicom `dcmread` + `apply_modality_lut` + `apply_voi_lut`"),
        ("kicc", "`load_radiograph` (chain + inversion + 0-1 float32 + metadata)"),
    ):
        print(
            f"| {label} | {med[name]:.3f} | {min(times[name]):.3f} | {max(times[name]):.3f} | "
            f"{med['pydicom'] / med[name]:.2f}x |"
        )
    print(f"\nlargest |kicc - peer| display difference: {diff:.2e}")


if __name__ == "__main__":
    main()
