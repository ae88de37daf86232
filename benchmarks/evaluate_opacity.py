"""Evaluate lung + opacity segmentation on real COVID-19 slices with radiologist masks (MedSeg/SIRM, Inf-Net train).

Data: ``../shared/data/covid_slices/medseg_train`` (50 JPG display images, ``GT/*.png`` 0 bg, 1 GGO, 2
consolidation). The display window is unknown, so it is calibrated: a grid of (level, width) is scored on the
even-numbered half of the slices (sorted by name) and the best window is reported on the odd half (held out) and on
all 50 (same-data calibration, optimistic). Images are rotated 90 degrees clockwise so that anterior is up (the
crops are stored lying on their side). Pixel spacing is unknown; it is set so that the crop is 320 mm wide.

Usage::

    .venv/bin/python benchmarks/evaluate_opacity.py [--data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from PIL import Image

from kicc_analysis.imaging import display_to_hu
from kicc_analysis.quantification import segment_opacities
from kicc_analysis.segmentation import segment_lungs

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "covid_slices" / "medseg_train"
LEVELS = (-600.0, -500.0, -400.0, -300.0, -200.0)
WIDTHS = (1200.0, 1500.0, 1800.0)
VESSEL_MM = (0.0, 3.0)
ASSUMED_WIDTH_MM = 320.0


def load_cases(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, grey display image, GT labels) for every image with a mask, rotated anterior-up."""
    cases = []
    for img_path in sorted((data / "Imgs").glob("*.jpg"), key=lambda p: int(p.stem)):
        gt_path = data / "GT" / f"{img_path.stem}.png"
        if not gt_path.exists():
            continue
        grey = np.asarray(Image.open(img_path).convert("L"))
        gt = np.asarray(Image.open(gt_path))
        cases.append((img_path.stem, np.rot90(grey, k=-1), np.rot90(gt, k=-1)))
    return cases


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else np.nan


def run_case(grey: np.ndarray, gt: np.ndarray, level: float, width: float, vessel_mm: float = 0.0) -> dict[str, float]:
    """Segment one display slice at window (level, width) and score it against the radiologist mask."""
    hu = display_to_hu(grey, level, width)
    image = sitk.GetImageFromArray(hu)
    spacing = ASSUMED_WIDTH_MM / grey.shape[1]
    image.SetSpacing((spacing, spacing))
    lungs = segment_lungs(image).labels
    opac = sitk.GetArrayFromImage(segment_opacities(image, lungs, vessel_width_mm=vessel_mm))
    lesion, lesion_gt = opac > 0, gt > 0
    return {
        "lesion_dice": dice(lesion, lesion_gt),
        "ggo_dice": dice(opac == 1, gt == 1),
        "consolidation_dice": dice(opac == 2, gt == 2),
        "lesion_area_pct": 100.0 * lesion.mean(),
        "lesion_area_gt_pct": 100.0 * lesion_gt.mean(),
        "area_error_pct_points": 100.0 * (lesion.mean() - lesion_gt.mean()),
    }


def evaluate(cases, level: float, width: float, vessel_mm: float = 0.0) -> pd.DataFrame:
    rows = [{"case": name, **run_case(grey, gt, level, width, vessel_mm)} for name, grey, gt in cases]
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> dict[str, float]:
    return {
        "n": int(len(frame)),
        "lesion_dice_mean": float(frame.lesion_dice.mean()),
        "lesion_dice_median": float(frame.lesion_dice.median()),
        "ggo_dice_mean": float(frame.ggo_dice.mean()),
        "consolidation_dice_mean": float(frame.consolidation_dice.mean()),
        "abs_area_error_mean_pct_points": float(frame.area_error_pct_points.abs().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="calibrate on a smaller grid")
    args = parser.parse_args(argv)
    if not (args.data / "Imgs").is_dir():
        print(f"data folder not found: {args.data}", file=sys.stderr)
        return 2
    cases = load_cases(args.data)
    calib = cases[0::2]
    held_out = cases[1::2]
    levels, widths, vessels = (LEVELS[2:4], WIDTHS[1:2], VESSEL_MM) if args.quick else (LEVELS, WIDTHS, VESSEL_MM)
    start = time.perf_counter()
    grid = []
    for level, width, vessel_mm in itertools.product(levels, widths, vessels):
        score = summarise(evaluate(calib, level, width, vessel_mm))
        grid.append({"level": level, "width": width, "vessel_mm": vessel_mm, **score})
        print(
            f"level {level:6.0f} width {width:6.0f} vessel {vessel_mm:3.0f} mm: "
            f"calibration lesion Dice {score['lesion_dice_mean']:.3f}"
        )
    grid_frame = pd.DataFrame(grid)
    best = grid_frame.sort_values("lesion_dice_mean", ascending=False).iloc[0]
    level, width, vessel_mm = float(best.level), float(best.width), float(best.vessel_mm)
    held = evaluate(held_out, level, width, vessel_mm)
    every = evaluate(cases, level, width, vessel_mm)
    result = {
        "window": {"level": level, "width": width, "vessel_width_mm": vessel_mm},
        "calibration_half": summarise(evaluate(calib, level, width, vessel_mm)),
        "held_out_half": summarise(held),
        "all_50": summarise(every),
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
