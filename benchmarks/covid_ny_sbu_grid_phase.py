"""Grid-phase probe of the 2-D axial lung mask on the six outlined covid_ny_sbu slices (true HU, hand outlines).

Each slice is shifted by a few pixels (padded with -1024 HU; the reference outline and its uncertain pixels shifted the
same way) and segmented again: a mask that depends on where the working grid (input block-averaged by an integer
factor to ~2.5 mm) falls on the anatomy scores differently on shifts of one or two pixels. Per slice: Dice (uncertain
pixels left out) on each of the 9 shifts, their mean, minimum and spread; overall mean and worst case; median CPU time
per segmentation (ms, ``time.process_time``).

    python benchmarks/covid_ny_sbu_grid_phase.py [--data ../shared/data/ct/covid_ny_sbu] [--phase-votes 1|4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import LungParameters, segment_lungs

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct" / "covid_ny_sbu"
SHIFTS = [(0, 0), (0, 1), (1, 0), (1, 2), (0, -2), (2, 2), (-10, 0), (0, 12), (0, -25)]  # (dy, dx) input pixels


def shift(array: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``array`` moved by (dy, dx) pixels, the uncovered border filled with ``fill``."""
    out = np.full_like(array, fill)
    height, width = array.shape
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = array[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--phase-votes", type=int, default=LungParameters().phase_votes)
    args = parser.parse_args(argv)
    folder = args.data / "reference_outlines"
    if not folder.is_dir():
        print(f"data folder not found: {folder}", file=sys.stderr)
        return 2
    params = LungParameters(phase_votes=args.phase_votes)
    every, times = [], []
    for ref_path in sorted(p for p in folder.glob("*.npy") if not p.stem.endswith("_uncertain")):
        patient, stem = ref_path.stem.split("_", 1)
        image = load_ct(args.data / patient / "axial" / f"{stem}.dcm")
        reference = np.load(ref_path) > 0
        keep = np.load(ref_path.with_name(f"{ref_path.stem}_uncertain.npy")) == 0
        hu = sitk.GetArrayFromImage(image).reshape(reference.shape).astype(np.float32)
        scores = []
        for dy, dx in SHIFTS:
            shifted = sitk.GetImageFromArray(shift(hu, dy, dx, -1024.0))
            shifted.SetSpacing(image.GetSpacing()[:2])
            start = time.process_time()
            labels = segment_lungs(shifted, parameters=params).labels
            times.append(time.process_time() - start)
            mask = sitk.GetArrayFromImage(labels) > 0
            kept = shift(keep, dy, dx, False)
            scores.append(dice(mask & kept, shift(reference, dy, dx, False) & kept))
        every += scores
        print(
            f"{ref_path.stem:22s} {' '.join(f'{s:.3f}' for s in scores)}  mean {np.mean(scores):.3f} "
            f"min {min(scores):.3f} spread {max(scores) - min(scores):.3f}",
            flush=True,
        )
    print(
        f"phase_votes {args.phase_votes}: mean {np.mean(every):.4f}, worst {min(every):.3f}; "
        f"CPU per slice median {1000 * np.median(times):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
