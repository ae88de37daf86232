"""Classical lung mask vs the hand-drawn reference outlines of covid_ny_sbu (6 axial COVID-19 slices, true HU).

Scores per slice, uncertain pixels left out (``*_uncertain.npy``, as the outlines' README asks): lung Dice (any
label), area of the mask outside the reference lung as % of the reference lung area, left/right correct (each
reference lung: most of the mask pixels on it carry its label), the per-side Dice, the QA flags and
``low_confidence``. Measures that need no reference, on every axial slice (outlined or not): mask pixels outside
the body (``outside_body_px``: not in the patient's largest soft-tissue component, e.g. an arm apart from the
chest or the table), the left/right area ratio (smaller / larger), and the opacity (GGO + consolidation, % of the
mask, ``segment_opacities``) of the earlier and the later study of each patient. Then every single coronal and
sagittal slice: plane, right / left mL, flags, opacity, gas and airway removed (mL) and, on coronal / sagittal slices,
the share of the mask above -700 HU (``plane_abnormal_share``).

    python benchmarks/covid_ny_sbu_outlines.py [--data ../shared/data/ct/covid_ny_sbu] [--disable bronchograms_2d]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from kicc_analysis.imaging import load_ct
from kicc_analysis.quantification import segment_opacities
from kicc_analysis.segmentation import (
    BOUNDARY_RULE_NAMES,
    CAVITY_RULE_NAMES,
    LEFT,
    RIGHT,
    RULE_NAMES,
    SLICE_RULE_NAMES,
    LungParameters,
    segment_lungs,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct" / "covid_ny_sbu"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def score_slice(labels: np.ndarray, reference: np.ndarray, uncertain: np.ndarray) -> dict[str, float | bool]:
    """Scores of one slice (arrays 2-D, same shape; ``uncertain`` pixels left out)."""
    keep = uncertain == 0
    mask, ref = (labels > 0) & keep, (reference > 0) & keep
    ref_area = float(ref.sum())
    sides_ok = True
    for value in (RIGHT, LEFT):
        on_side = (reference == value) & keep & (labels > 0)
        if on_side.any():
            sides_ok &= bool((labels[on_side] == value).mean() > 0.5)
        else:
            sides_ok = False
    return {
        "dice": dice(mask, ref),
        "outside_pct": 100.0 * float((mask & ~ref).sum()) / ref_area if ref_area else float("nan"),
        "missed_pct": 100.0 * float((ref & ~mask).sum()) / ref_area if ref_area else float("nan"),
        "right_dice": dice((labels == RIGHT) & keep, (reference == RIGHT) & keep),
        "left_dice": dice((labels == LEFT) & keep, (reference == LEFT) & keep),
        "sides_ok": sides_ok,
    }


def evaluate(data: Path = DEFAULT_DATA, **segment_kwargs) -> pd.DataFrame:
    """One row per outlined slice: scores, QA flags, ``low_confidence`` and its reasons."""
    rows = []
    for ref_path in sorted((data / "reference_outlines").glob("*.npy")):
        if ref_path.stem.endswith("_uncertain"):
            continue
        patient, stem = ref_path.stem.split("_", 1)
        image = load_ct(data / patient / "axial" / f"{stem}.dcm")
        seg = segment_lungs(image, **segment_kwargs)
        labels = sitk.GetArrayFromImage(seg.labels).reshape(np.load(ref_path).shape)
        uncertain = np.load(ref_path.with_name(f"{ref_path.stem}_uncertain.npy"))
        row = {"slice": ref_path.stem, **score_slice(labels, np.load(ref_path), uncertain)}
        row["flags"] = ",".join(seg.qa["flags"])
        row["low_confidence"] = seg.qa.get("low_confidence")
        row["reasons"] = ",".join(seg.qa.get("low_confidence_reasons", []))
        rows.append(row)
    return pd.DataFrame(rows)


def reference_free(data: Path = DEFAULT_DATA, planes: tuple[str, ...] = ("axial",), **segment_kwargs) -> pd.DataFrame:
    """One row per slice of the given planes: no reference needed (see the module docstring)."""
    rows = []
    for path in sorted(p for plane in planes for p in data.glob(f"*/{plane}/*.dcm")):
        image = load_ct(path)
        seg = segment_lungs(image, **segment_kwargs)
        labels = sitk.GetArrayFromImage(seg.labels)
        opacity = sitk.GetArrayFromImage(segment_opacities(image, seg.labels))
        hu = np.squeeze(sitk.GetArrayFromImage(image))
        tissue, n = ndimage.label(hu > -400)
        body = np.zeros(hu.shape, dtype=bool)
        if n:
            body = ndimage.binary_fill_holes(tissue == 1 + int(np.argmax(np.bincount(tissue.ravel())[1:])))
        mask = np.squeeze(labels) > 0
        rows.append(
            {
                "slice": f"{path.parts[-3]}/{path.parent.name}/{path.stem}",
                "plane": seg.qa.get("plane", "axial"),
                "right_ml": round(seg.qa["right_ml"], 1),
                "left_ml": round(seg.qa["left_ml"], 1),
                "lr_ratio": round(seg.qa["lr_ratio"], 2),
                "outside_body_px": int((mask & ~body).sum()),
                "opacity_pct": round(100.0 * float((opacity > 0).sum()) / max(int(mask.sum()), 1), 1),
                "gas_ml": round(seg.qa["dropped_gas_ml"], 1),  # dropped as bowel / stomach gas
                "airway_ml": round(seg.qa["airway_ml"], 1),
                "abnormal": round(seg.qa.get("plane_abnormal_share", float("nan")), 2),  # planes: share > -700 HU
                "low_confidence": seg.qa["low_confidence"],
                "flags": ",".join(seg.qa["flags"]),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        choices=RULE_NAMES + SLICE_RULE_NAMES + BOUNDARY_RULE_NAMES + CAVITY_RULE_NAMES,
        help="switch a rule off",
    )
    args = parser.parse_args(argv)
    if not (args.data / "reference_outlines").is_dir():
        print(f"no reference outlines under {args.data}", file=sys.stderr)
        return 1
    frame = evaluate(args.data, parameters=LungParameters(disabled_rules=frozenset(args.disable)))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(3).to_string(index=False))
    print(
        f"mean Dice {frame.dice.mean():.3f}, min {frame.dice.min():.3f}; max outside {frame.outside_pct.max():.1f} %;"
        f" sides right on {int(frame.sides_ok.sum())}/{len(frame)}"
    )
    parameters = LungParameters(disabled_rules=frozenset(args.disable))
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print("\nno reference needed, axial slices:")
        print(reference_free(args.data, parameters=parameters).to_string(index=False))
        print("\nsingle coronal and sagittal slices:")
        print(reference_free(args.data, ("coronal", "sagittal"), parameters=parameters).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
