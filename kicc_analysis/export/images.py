"""Reading the source images and masks of a case (reusing the package's loaders) into exportable SimpleITK images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kicc_analysis.export.cases import ExportError


def ct_image(source: list[str]) -> sitk.Image:
    """The CT of a series in HU, LPS (:func:`kicc_analysis.imaging.load_ct`), as int16 (HU rounded).

    Geometry (origin, spacing, direction) is the loader's; NIfTI writers store it as the RAS qform/sform that
    NIfTI defines, and SimpleITK / nibabel readers recover the same physical grid.
    """
    from kicc_analysis.imaging import load_ct

    image = load_ct(source)
    hu = np.clip(np.rint(sitk.GetArrayFromImage(image)), -32768, 32767).astype(np.int16)
    out = sitk.GetImageFromArray(hu)
    out.CopyInformation(image)
    return out


def external_mask_path(mask_dir: Path, series_uid: str) -> Path | None:
    """``<mask_dir>/<series_uid>.nii.gz`` or ``<mask_dir>/<series_uid>/`` (a TotalSegmentator folder), if present."""
    for candidate in (mask_dir / f"{series_uid}.nii.gz", mask_dir / series_uid):
        if candidate.exists():
            return candidate
    return None


def ct_label(ct: sitk.Image, task: str, mask_source: str, mask_dir: Path | None, series_uid: str) -> sitk.Image:
    """The label image of a CT case on the CT grid (uint8).

    ``mask_source`` ``classical``: :func:`kicc_analysis.segmentation.segment_lungs` (lungs only);
    ``external``: :func:`kicc_analysis.segmentation.load_lung_mask` of the file or folder for the series in
    ``mask_dir`` (``lungs``: 1 right, 2 left; ``lobes``: 1 RUL ... 5 LLL).
    """
    from kicc_analysis.segmentation import load_lung_mask, segment_lungs

    if mask_source == "classical":
        if task != "lungs":
            raise ExportError(
                f"export: task '{task}' needs external masks (--mask-dir); classical masks are lungs only"
            )
        labels = segment_lungs(ct).labels
    elif mask_source == "external":
        path = external_mask_path(mask_dir, series_uid) if mask_dir is not None else None
        if path is None:
            raise ExportError(
                f"export: no external mask for a {task} case in {mask_dir} (expected <series UID>.nii.gz)"
            )
        mask = load_lung_mask(path, ct)
        labels = mask.labels if task == "lungs" else mask.lobes
        if labels is None:
            raise ExportError(f"export: mask {path.name} has no lobes (task 'lobes' needs lobe labels)")
    else:
        raise ExportError(f"export: mask source must be 'classical' or 'external', found '{mask_source}'")
    labels = sitk.Cast(labels, sitk.sitkUInt8)
    labels.CopyInformation(ct)
    return labels


def radiograph_image(source: list[str]) -> sitk.Image:
    """A radiograph as a 16-bit image: display values 0-1 (:func:`kicc_analysis.radiography.load_radiograph`,
    1 = white) times 65535, rounded; pixel spacing (mm) set when the file states it (else 1 mm)."""
    from kicc_analysis.radiography import load_radiograph

    radiograph = load_radiograph(source[0])
    pixels = np.rint(np.clip(radiograph.pixels, 0.0, 1.0) * 65535.0).astype(np.uint16)
    image = sitk.GetImageFromArray(pixels)
    if radiograph.spacing_mm is not None:
        row, column = radiograph.spacing_mm
        image.SetSpacing((float(column), float(row)))
    return image
