"""Snapshot hashes of the classical lung mask, opacity labels and quantification on real and phantom inputs.

Run before and after a behaviour-preserving refactor and compare: every line must be identical.

    python benchmarks/segmentation_hashes.py > before.txt   # on the old code
    python benchmarks/segmentation_hashes.py > after.txt    # on the new code
    diff before.txt after.txt

Inputs (``../shared/data``, skipped with a note when absent): COPDGene ct-64 and its 2-slice crop (CIP), the
lungmask LIDC slice, the TotalSegmentator example CT (small version), every axial slice of ``covid_ny_sbu``, the
first ``--medseg`` MedSeg teaching slices (display images at their estimated window) and two demo phantoms (3-D
volume, single slice). Per input: SHA-256 (first 16 hex digits) of the lung labels, the dense-recovered mask, the QA
dict (JSON, sorted keys; keys listed in ``NEW_QA_KEYS`` -- QA facts added by the refactor -- and ``--ignore-qa`` keys
left out), the opacity
labels (``segment_opacities``; MedSeg: ``segment_opacity_regions``) and the ``quantify`` table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kicc_analysis.imaging import display_to_hu, estimate_display_window, load_ct
from kicc_analysis.quantification import quantify, segment_opacities, segment_opacity_regions
from kicc_analysis.segmentation import segment_lungs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEW_QA_KEYS = ("rule_added_ml", "parameters", "low_confidence", "low_confidence_reasons")


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _array_hash(image: sitk.Image) -> str:
    array = sitk.GetArrayViewFromImage(image)
    return _h(str(array.dtype).encode() + str(array.shape).encode() + np.ascontiguousarray(array).tobytes())


def _qa_hash(qa: dict, ignore: tuple[str, ...] = ()) -> str:
    kept = {k: v for k, v in qa.items() if k not in NEW_QA_KEYS and k not in ignore}
    return _h(json.dumps(kept, sort_keys=True, default=str).encode())


def _inputs(medseg: int, only: str = ""):
    """(name, HU image, lesion method) per input present (names starting with ``only``)."""
    for name, image, method in _all_inputs(medseg):
        if name.startswith(only):
            yield name, image, method


def _all_inputs(medseg: int):
    ct64 = SHARED / "ct" / "cip_copdgene_ct64" / "ct-64.nrrd"
    if ct64.exists():
        yield "ct64", load_ct(ct64), "opacities"
    crop = SHARED / "ct" / "cip_copdgene_crop" / "crop_ct_2slices.nrrd"
    if crop.exists():
        yield "crop", load_ct(crop), "opacities"
    lidc = SHARED / "ct" / "lungmask_lidc_slice" / "0.dcm"
    if lidc.exists():
        yield "lidc", load_ct(lidc), "opacities"
    total = SHARED / "ct" / "totalseg_example_ct" / "example_ct_sm.nii.gz"
    if total.exists():
        yield "totalseg_sm", load_ct(total), "opacities"
    sbu = SHARED / "ct" / "covid_ny_sbu"
    for path in sorted(sbu.glob("*/axial/*.dcm")):
        yield f"sbu/{path.parent.parent.name}/{path.stem}", load_ct(path), "opacities"
    med = SHARED / "covid_slices" / "medseg_train" / "Imgs"
    if med.exists():
        from PIL import Image

        for path in sorted(med.glob("*.jpg"), key=lambda p: int(p.stem))[:medseg]:
            grey = np.rot90(np.asarray(Image.open(path).convert("L")), k=-1)
            level, width = estimate_display_window(grey)
            image = sitk.GetImageFromArray(display_to_hu(grey, level, width))
            spacing = 320.0 / grey.shape[1]
            image.SetSpacing((spacing, spacing))
            yield f"medseg/{path.stem}", image, "regions"
    from kicc_analysis.demo.phantom import chest_phantom

    ph = chest_phantom(lesions="random", seed=3)
    image = sitk.GetImageFromArray(ph.hu)
    image.SetSpacing(tuple(float(s) for s in ph.spacing_mm[::-1]))
    yield "phantom3d", image, "opacities"
    yield "phantom2d", image[:, :, 30], "opacities"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medseg", type=int, default=12, help="number of MedSeg slices (default 12)")
    parser.add_argument("--only", default="", help="only inputs whose name starts with this (e.g. phantom, sbu/)")
    parser.add_argument(
        "--ignore-qa",
        action="append",
        default=[],
        help="leave this QA key out of the QA hash too (e.g. algorithm_version, to compare across a version bump)",
    )
    args = parser.parse_args(argv)
    for name, image, method in _inputs(args.medseg, args.only):
        seg = segment_lungs(image)
        parts = [name, "labels", _array_hash(seg.labels), "dense", _array_hash(seg.dense_recovered)]
        parts += ["qa", _qa_hash(seg.qa, tuple(args.ignore_qa))]
        try:
            if method == "regions":
                opac = segment_opacity_regions(image, seg.labels)
            else:
                opac = segment_opacities(image, seg.labels)
            parts += ["opacity", _array_hash(opac)]
            table = quantify(image, seg.labels, opacity_labels=opac)
            parts += ["quant", _h(table.to_csv(float_format="%.10g").encode())]
        except Exception as exc:  # noqa: BLE001 -- a crash is part of the snapshot (same crash before and after)
            parts += ["error", f"{type(exc).__name__}: {str(exc)[:80]}"]
        print(" ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
