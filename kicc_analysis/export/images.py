"""Reading the source images and masks of a case (reusing the package's loaders) into exportable SimpleITK images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kicc_analysis.export.cases import ExportError


def as_int16(image: sitk.Image) -> sitk.Image:
    """A CT in HU (:func:`kicc_analysis.imaging.load_ct`: LPS) as int16: HU rounded to the nearest integer, clipped
    to the int16 range, same geometry.

    NIfTI writers store the geometry (origin, spacing, direction) as the RAS qform/sform that NIfTI defines, and
    SimpleITK / nibabel readers recover the same physical grid.
    """
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


def ct_label(
    ct: sitk.Image, task: str, mask_source: str, mask_dir: Path | None, series_uid: str
) -> tuple[sitk.Image, str]:
    """The label image of a CT case on the CT grid (uint8) and a one-line description of where it came from.

    ``ct`` is the CT as :func:`kicc_analysis.imaging.load_ct` returns it (HU, float): labels are computed on the
    same values as the cohort's quantification (:func:`kicc_analysis.quantification.batch.quantify_series`), not on
    the int16 copy that is exported.

    Lungs come from ``mask_source`` ``classical``: :func:`kicc_analysis.segmentation.segment_lungs`;
    ``external``: :func:`kicc_analysis.segmentation.load_lung_mask` of the file or folder for the series in
    ``mask_dir``. Tasks: ``lungs`` 1 right, 2 left lung; ``lobes`` 1 RUL ... 5 LLL (external masks only);
    ``opacity`` 1 lung without opacity, 2 ground-glass opacity, 3 consolidation: the opacity labels of the
    quantification (:func:`kicc_analysis.quantification.segment_opacities`, default HU bins, vessels removed)
    inside those lungs, so that label counts x voxel volume are the quantification's ``ggo_ml`` and
    ``consolidation_ml`` of the same lung mask.

    Returns
    -------
    (SimpleITK.Image, str)
        Labels (uint8, geometry of ``ct``) and the label source, e.g.
        ``segment_opacities quant-1.4 (bins default, vessels removed) in classical lungs (segment_lungs seg-...)``.
    """
    from kicc_analysis.segmentation import ALGORITHM_VERSION as SEGMENTATION_VERSION
    from kicc_analysis.segmentation import load_lung_mask, segment_lungs

    if mask_source == "classical":
        if task == "lobes":
            raise ExportError(
                f"export: task '{task}' needs external masks (--mask-dir); classical masks are lungs only"
            )
        labels = segment_lungs(ct).labels
        lungs_from = f"classical lungs (segment_lungs {SEGMENTATION_VERSION})"
    elif mask_source == "external":
        path = external_mask_path(mask_dir, series_uid) if mask_dir is not None else None
        if path is None:
            raise ExportError(
                f"export: no external mask for a {task} case in {mask_dir} (expected <series UID>.nii.gz)"
            )
        mask = load_lung_mask(path, ct)
        labels = mask.lobes if task == "lobes" else mask.labels
        if labels is None:
            raise ExportError(f"export: mask {path.name} has no lobes (task 'lobes' needs lobe labels)")
        lungs_from = f"external {'lobes' if task == 'lobes' else 'lungs'} (load_lung_mask, {mask.qa['convention']})"
    else:
        raise ExportError(f"export: mask source must be 'classical' or 'external', found '{mask_source}'")
    source = lungs_from
    if task == "opacity":
        from kicc_analysis.quantification import ALGORITHM_VERSION as QUANTIFICATION_VERSION
        from kicc_analysis.quantification import segment_opacities

        lung = sitk.GetArrayFromImage(labels) > 0
        opacity = sitk.GetArrayFromImage(segment_opacities(ct, labels)).astype(np.uint8)  # 1 GGO, 2 consolidation
        labels = sitk.GetImageFromArray(np.where(lung, opacity + 1, 0).astype(np.uint8))
        source = f"segment_opacities {QUANTIFICATION_VERSION} (bins default, vessels removed) in {lungs_from}"
    labels = sitk.Cast(labels, sitk.sitkUInt8)
    labels.CopyInformation(ct)
    return labels, source


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
