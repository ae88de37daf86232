"""Specificity of the lung mask for opacity quantification: what our mask adds that is not lung.

A weight-free lung mask has to take in consolidated lung, which is as dense as the heart, the chest wall and the
hilar vessels; every rule that does so can also take in those. This script measures the cost where the truth is
known, side by side with a reference mask on the SAME image, so the difference is due to the mask only:

* ``cip_copdgene_ct64`` (real COPDGene chest CT, 4 mm voxels, no pneumonia): our mask vs the Chest Imaging
  Platform whole-lung mask -- Dice, voxels outside CIP, and the GGO / consolidation volumes ``quantify`` reports on
  each mask (a healthy lung should show almost no consolidation);
* ``cip_copdgene_crop`` (two real full-resolution slices, 0.59 mm; the 2-D path) likewise;
* the demo phantom without lesions (seeds 0 / 1 / 3): our mask vs the phantom's true lung mask;
* the demo phantom with its COVID-19 lesions (seeds 0 / 1 / 3): consolidation voxels inside our mask (recall),
  voxels labelled consolidation on our mask that lie outside the true lung, and the consolidation volume error.

Usage::

    .venv/bin/python benchmarks/ct_specificity.py        # about 20 s; prints a Markdown table
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kicc_analysis.demo.phantom import chest_phantom
from kicc_analysis.imaging import load_ct
from kicc_analysis.quantification import quantify, segment_opacities
from kicc_analysis.segmentation import ALGORITHM_VERSION, segment_lungs

SHARED_CT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


def _mask_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _compare(name: str, image: sitk.Image, reference: np.ndarray) -> dict[str, object]:
    """Our mask vs a reference lung mask on one image: Dice, extra voxels, GGO / consolidation (mL) on each."""
    ours = segment_lungs(image).labels
    ours_array = sitk.GetArrayFromImage(ours) > 0
    row: dict[str, object] = {"case": name, "dice": _dice(ours_array, reference)}
    row["voxels_outside_reference"] = int((ours_array & ~reference).sum())
    for tag, mask in (("ours", ours), ("reference", _mask_image(reference, image))):
        both = quantify(image, mask).set_index("region").loc["both"]
        row[f"ggo_ml_{tag}"] = float(both.ggo_ml)
        row[f"consolidation_ml_{tag}"] = float(both.consolidation_ml)
    return row


def _phantom_image(hu: np.ndarray, spacing_mm: tuple[float, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(tuple(float(s) for s in spacing_mm[::-1]))
    return image


def healthy_rows() -> list[dict[str, object]]:
    """Real CT and lesion-free phantoms: our mask vs the reference lung mask."""
    rows = []
    ct64 = SHARED_CT / "cip_copdgene_ct64"
    if ct64.is_dir():
        whole = sitk.GetArrayFromImage(sitk.ReadImage(str(ct64 / "wholeLung-64.nrrd"))) > 0
        rows.append(_compare("ct64 (real, 4 mm) vs CIP", load_ct(ct64 / "ct-64.nrrd"), whole))
    crop = SHARED_CT / "cip_copdgene_crop"
    if crop.is_dir():
        labelmap = sitk.GetArrayFromImage(sitk.ReadImage(str(crop / "crop_ct_partialLungLabelMap.nrrd")))[60:62]
        region = labelmap & 255  # CIP encoding: type << 8 | region; 9-14 = lung thirds
        reference = (region >= 9) & (region <= 14)
        rows.append(
            _compare("crop (real, 0.59 mm, 2 slices) vs CIP", load_ct(crop / "crop_ct_2slices.nrrd"), reference)
        )
    for seed in (0, 1, 3):
        phantom = chest_phantom(lesions=None, seed=seed)
        image = _phantom_image(phantom.hu, phantom.spacing_mm)
        rows.append(_compare(f"lesion-free phantom seed {seed} vs truth", image, phantom.lung_labels > 0))
    return rows


def covid_rows() -> list[dict[str, object]]:
    """COVID-19 phantoms: consolidation recall of our mask and consolidation counted outside the true lung."""
    rows = []
    for seed in (0, 1, 3):
        phantom = chest_phantom(lesions="random", seed=seed)
        image = _phantom_image(phantom.hu, phantom.spacing_mm)
        labels = segment_lungs(image).labels
        lung = sitk.GetArrayFromImage(labels) > 0
        consolidation = phantom.lesion_labels == 2
        labelled = sitk.GetArrayFromImage(segment_opacities(image, labels)) == 2
        both = quantify(image, labels).set_index("region").loc["both"]
        rows.append(
            {
                "seed": seed,
                "consolidation_inside_mask": float((consolidation & lung).sum() / consolidation.sum()),
                "consolidation_voxels_outside_true_lung": int((labelled & (phantom.lung_labels == 0)).sum()),
                "true_consolidation_voxels": int(consolidation.sum()),
                "consolidation_volume_error_pct": 100.0
                * (both.consolidation_ml / phantom.volumes_ml["consolidation"] - 1),
                "lung_dice": _dice(lung, phantom.lung_labels > 0),
            }
        )
    return rows


def main() -> int:
    start = time.perf_counter()
    print(f"segmentation {ALGORITHM_VERSION}\n")
    print("| case | Dice | voxels outside reference | GGO mL ours / reference | consolidation mL ours / reference |")
    print("|---|---|---|---|---|")
    for row in healthy_rows():
        print(
            f"| {row['case']} | {row['dice']:.4f} | {row['voxels_outside_reference']} | "
            f"{row['ggo_ml_ours']:.1f} / {row['ggo_ml_reference']:.1f} | "
            f"{row['consolidation_ml_ours']:.1f} / {row['consolidation_ml_reference']:.1f} |"
        )
    print(
        "\n| COVID phantom seed | consolidation inside mask | consolidation voxels outside true lung | "
        "consolidation volume error | lung Dice |"
    )
    print("|---|---|---|---|---|")
    for row in covid_rows():
        print(
            f"| {row['seed']} | {row['consolidation_inside_mask']:.3f} | "
            f"{row['consolidation_voxels_outside_true_lung']} of {row['true_consolidation_voxels']} | "
            f"{row['consolidation_volume_error_pct']:+.1f} % | {row['lung_dice']:.4f} |"
        )
    print(f"\n{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
