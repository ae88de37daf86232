"""Benchmark: load + lung segmentation + quantification of a 512 x 512 x 300 DICOM CT series, and peak memory.

The series is the real COPDGene chest CT of ``../shared/data/ct/cip_copdgene_ct64`` (64 x 64 x 79, 4 mm)
upsampled (linear) to 512 x 512 x 300 (0.52 x 0.52 x 1.05 mm) and written as 300 DICOM files (int16, explicit VR
little endian) into a temporary folder. Each timed run is a fresh process (so peak RSS is the run's own):

* ``kicc``: ``load_ct`` + ``segment_lungs`` + ``quantify``;
* ``baseline``: ``load_ct`` + a plain threshold (< -400 HU) + outside-air removal + the two largest 3-D
  connected components (SimpleITK) + ``quantify`` -- what a classical threshold tool does.

It also writes ``docs/ct_benchmark_masks.png``: the same coronal/axial slices of ct-64 with the CIP reference, the
baseline and the kicc masks, and prints their Dice against CIP.

Usage::

    .venv/bin/python benchmarks/ct_benchmark.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
CT64 = ROOT.parent / "shared" / "data" / "ct" / "cip_copdgene_ct64"
SIZE = (512, 512, 300)


def make_series(folder: Path) -> None:
    """Upsample ct-64 to SIZE and write it as a DICOM series (SimpleITK writer, one file per slice)."""
    source = sitk.ReadImage(str(CT64 / "ct-64.nrrd"))
    extent = [sz * sp for sz, sp in zip(source.GetSize(), source.GetSpacing(), strict=True)]
    spacing = [e / n for e, n in zip(extent, SIZE, strict=True)]
    reference = sitk.Image(SIZE, sitk.sitkInt16)
    reference.SetSpacing(spacing)
    reference.SetOrigin(source.GetOrigin())
    image = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)
    write_dicom_series(image, folder, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str, study_uid: str) -> None:
    """Write a 3-D HU image as an axial CT DICOM series (SimpleITK writer, one ``IMnnnn.dcm`` file per slice)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetSize()[2]):
        sl = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (
            ("0008|0060", "CT"),
            ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
            ("0008|0018", f"{series_uid}.{k + 1}"),
            ("0020|000e", series_uid),
            ("0020|000d", study_uid),
            ("0020|0013", str(k + 1)),
            ("0020|0032", "\\".join(f"{v:.4f}" for v in position)),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0018|0050", f"{image.GetSpacing()[2]:.4f}"),
            ("0028|1052", "0"),
            ("0028|1053", "1"),
        ):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{k + 1:04d}.dcm"))
        writer.Execute(sl)


def baseline_segment(image: sitk.Image) -> sitk.Image:
    """Plain threshold + connected components (the classical baseline)."""
    air = sitk.BinaryThreshold(image, -10000, -400, 1, 0)
    array = sitk.GetArrayFromImage(air).astype(bool)
    # outside air: per slice, air connected to the image border
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True
    lab, _ = ndimage.label(array, structure=structure)
    border = np.unique(
        np.concatenate([lab[:, 0].ravel(), lab[:, -1].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])
    )
    inside = array & ~np.isin(lab, border[border > 0])
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    two = sitk.GetArrayFromImage(components)
    labels = np.zeros(two.shape, np.uint8)
    for value in (1, 2):
        part = two == value
        if part.any():
            labels[part] = 1 if np.nonzero(part)[2].mean() < two.shape[2] / 2 else 2
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(image)
    return out


def child(method: str, folder: str) -> None:
    """One timed run in this process; prints JSON with seconds and peak RSS (MiB)."""
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.quantification import quantify
    from kicc_analysis.segmentation import segment_lungs

    start = time.perf_counter()
    image = load_ct(folder)
    loaded = time.perf_counter()
    labels = segment_lungs(image).labels if method == "kicc" else baseline_segment(image)
    segmented = time.perf_counter()
    table = quantify(image, labels)
    done = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "method": method,
                "load_s": loaded - start,
                "segment_s": segmented - loaded,
                "quantify_s": done - segmented,
                "total_s": done - start,
                "peak_mib": peak_mib,
                "lung_ml": float(table.set_index("region").loc["both", "volume_ml"]),
            }
        )
    )


def figure(out: Path) -> dict[str, float]:
    """Masks on ct-64 (native 4 mm): CIP vs baseline vs kicc; returns Dice against CIP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kicc_analysis.imaging import load_ct
    from kicc_analysis.segmentation import segment_lungs

    image = load_ct(CT64 / "ct-64.nrrd")
    hu = sitk.GetArrayFromImage(image)
    region = sitk.GetArrayFromImage(sitk.ReadImage(str(CT64 / "lm-64.nrrd"))) & 255
    cip = (region >= 1) & (region <= 14)
    base = sitk.GetArrayFromImage(baseline_segment(image)) > 0
    ours = sitk.GetArrayFromImage(segment_lungs(image).labels) > 0

    def dice(a: np.ndarray, b: np.ndarray) -> float:
        return float(2 * (a & b).sum() / (a.sum() + b.sum()))

    scores = {"baseline_dice_vs_cip": dice(base, cip), "kicc_dice_vs_cip": dice(ours, cip)}
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for col, (name, mask) in enumerate((("CIP reference", cip), ("threshold + CC baseline", base), ("kicc", ours))):
        for row, (view, mview) in enumerate(((hu[40], mask[40]), (hu[:, 30, :][::-1], mask[:, 30, :][::-1]))):
            ax = axes[row, col]
            ax.imshow(view, cmap="gray", vmin=-1000, vmax=200)
            ax.contour(mview, [0.5], colors="yellow", linewidths=1)
            ax.set_axis_off()
        title = (
            name
            if col == 0
            else f"{name}\nDice vs CIP {scores['baseline_dice_vs_cip' if col == 1 else 'kicc_dice_vs_cip']:.3f}"
        )
        axes[0, col].set_title(title)
    fig.suptitle("ct-64 (COPDGene, 4 mm): axial slice 40 and coronal row 30")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write the series here and keep it")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if not CT64.is_dir():
        print(f"shared data not found: {CT64}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "series"
        start = time.perf_counter()
        make_series(folder)
        print(f"wrote {SIZE} series in {time.perf_counter() - start:.1f} s to {folder}")
        runs: dict[str, list[dict]] = {"kicc": [], "baseline": []}
        for _ in range(args.repeats):
            for method in runs:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", method, str(folder)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[method].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = {}
    for method, rows in runs.items():
        summary[method] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("load_s", "segment_s", "quantify_s", "total_s", "peak_mib", "lung_ml")
        }
    summary["ratio_total_kicc_over_baseline"] = summary["kicc"]["total_s"] / summary["baseline"]["total_s"]
    summary.update(figure(ROOT / "docs" / "ct_benchmark_masks.png"))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
