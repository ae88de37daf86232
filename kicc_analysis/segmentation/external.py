"""Lung and lobe masks made by other tools: :func:`load_lung_mask` reads them onto the CT grid, with QA.

Researchers run TotalSegmentator or lungmask on their own machines (often on a GPU), and reference masks come as DICOM
SEG. This module reads what those tools write -- it never runs a model and never downloads weights -- and returns the
result type of :func:`~kicc_analysis.segmentation.segment_lungs` (labels 1 right lung, 2 left lung) with one more
attribute, ``lobes`` (1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL), when the source has lobes.

Conventions (``convention=``; ``"auto"`` detects them, see :func:`load_lung_mask`):

=========================  ===========================================================================================
``totalsegmentator``       TotalSegmentator >= 2.0 multi-label file of the ``total`` task (``--ml``; also ``total_v3``
                           of 2.18): 10 lung_upper_lobe_left, 11 lung_lower_lobe_left, 12 lung_upper_lobe_right,
                           13 lung_middle_lobe_right, 14 lung_lower_lobe_right (``class_map["total"]`` and
                           ``class_map["total_v3"]`` of totalsegmentator/map_to_binary.py, wasserth/TotalSegmentator
                           2.18.0, commit 0e65a44); every other label (organs, bones) is ignored
``totalsegmentator_v1``    TotalSegmentator 1.x (``class_map["total_v1"]``): lobes 13 LUL, 14 LLL, 15 RUL, 16 RML,
                           17 RLL
``totalsegmentator_dir``   TotalSegmentator's default output folder, one file per structure:
                           ``lung_upper_lobe_left.nii.gz`` ... ``lung_lower_lobe_right.nii.gz`` (any version;
                           a subset from ``--roi_subset`` is accepted and reported as ``missing_lobes``)
``lungmask_r231``          lungmask U-net(R231), R231CovidWeb: 1 right lung, 2 left lung (README of JoHof/lungmask
                           0.2.20, commit 0653c70)
``lungmask_lobes``         lungmask LTRCLobes / LTRCLobes_R231: 1 LUL, 2 LLL, 3 RUL, 4 RML, 5 RLL (same README)
``dicom_seg``              a DICOM Segmentation object (read with highdicom); segments are recognised by their label
                           (``lung_upper_lobe_left``, ``Right lung``, ``RUL`` ...) or by SNOMED CT property type and
                           laterality modifier (lung 39607008, upper lobe 45653009, lower lobe 90572001, middle lobe
                           of right lung 72481006; right 24028007, left 7771000 -- TotalSegmentator's DICOM SEG codes)
``labelmap``               any NIfTI / NRRD / MHA label map with a user mapping ``{value: name}``, name one of
                           ``right``, ``left``, ``RUL``, ``RML``, ``RLL``, ``LUL``, ``LLL``
=========================  ===========================================================================================

Orientation and grid: SimpleITK reads the file's direction matrix (a NIfTI stored in RAS becomes LPS on reading), the
mask is re-oriented to the CT's axis order without interpolation, and put onto the CT grid exactly when it is the CT
grid or a sub-grid of it (DICOM SEG frames of some slices). On any other grid it is resampled by nearest neighbour
and ``qa["flags"]`` holds ``mask_resampled``. A mask that does not overlap the CT raises :class:`SegmentationError`.

:func:`write_lung_mask` writes a mask in each convention (used for the demo repository's lobe truth and the tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import SegmentationError
from .lungs import LEFT, RIGHT, LungSegmentation

__all__ = [
    "CONVENTIONS",
    "LOBES",
    "LOBE_SIDE",
    "ExternalLungMask",
    "find_series_mask",
    "load_lung_mask",
    "write_lung_mask",
]

#: Lobe names in the order of their codes in :attr:`ExternalLungMask.lobes` (1 RUL ... 5 LLL).
LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")
LOBE_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(LOBES)}
LOBE_SIDE: dict[str, int] = {"RUL": RIGHT, "RML": RIGHT, "RLL": RIGHT, "LUL": LEFT, "LLL": LEFT}
# internal code image: 1-5 lobes, 6 right lung without lobe, 7 left lung without lobe
_SIDE_CODE = {"right": 6, "left": 7}
_NAMES = (*LOBES, "right", "left")
_CODE_OF = {**LOBE_CODE, **_SIDE_CODE}

#: TotalSegmentator structure name -> lobe (file names of the per-structure folder, labels of its DICOM SEG).
TOTALSEG_LOBES: dict[str, str] = {
    "lung_upper_lobe_right": "RUL",
    "lung_middle_lobe_right": "RML",
    "lung_lower_lobe_right": "RLL",
    "lung_upper_lobe_left": "LUL",
    "lung_lower_lobe_left": "LLL",
}
#: label value -> name of every label-map convention (see the module docstring for the sources).
CONVENTIONS: dict[str, dict[int, str]] = {
    "totalsegmentator": {10: "LUL", 11: "LLL", 12: "RUL", 13: "RML", 14: "RLL"},
    "totalsegmentator_v1": {13: "LUL", 14: "LLL", 15: "RUL", 16: "RML", 17: "RLL"},
    "lungmask_r231": {1: "right", 2: "left"},
    "lungmask_lobes": {1: "LUL", 2: "LLL", 3: "RUL", 4: "RML", 5: "RLL"},
}
ALL_CONVENTIONS = ("auto", *CONVENTIONS, "totalsegmentator_dir", "dicom_seg", "labelmap")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
GRID_TOL_MM = 0.01  # origins closer than this (mm) are the same grid
SUBGRID_TOL = 0.01  # ... offsets within this fraction of a voxel of an integer count of voxels make a sub-grid
LUNG_HU_MAX = -300.0  # QA: a lung mask whose median HU is above this holds mostly soft tissue (wrong convention?)
IMBALANCE = 0.5  # QA: smaller / larger lung below this -> lr_imbalance (as segment_lungs)
OUTSIDE_MAX = 0.05  # QA: more than this share of the mask's lung volume outside the CT -> mask_partly_outside_ct
# SNOMED CT codes of TotalSegmentator's DICOM SEG (totalsegmentator/resources/totalsegmentator_snomed_mapping.csv)
SCT_LUNG, SCT_UPPER, SCT_LOWER, SCT_MIDDLE_RIGHT = "39607008", "45653009", "90572001", "72481006"
SCT_RIGHT, SCT_LEFT = "24028007", "7771000"
SCT_ANATOMICAL_STRUCTURE = "123037004"


@dataclass
class ExternalLungMask(LungSegmentation):
    """Result of :func:`load_lung_mask`: a :class:`LungSegmentation` plus the lobes.

    Attributes
    ----------
    labels : SimpleITK.Image
        uint8 on the CT grid: 0 background, 1 right lung, 2 left lung.
    qa : dict
        ``right_ml``, ``left_ml``, ``total_ml`` (mL), ``lr_ratio``, ``lobe_ml`` ({lobe: mL}), ``lobes`` (names
        present), ``median_hu`` (HU inside the mask), ``outside_ct_fraction`` (share of the mask's lung volume that
        lies outside the CT), ``convention``, ``mask_source`` (file or folder name), ``grid`` (``"same"``,
        ``"subgrid"`` or ``"resampled"``), ``notes`` and ``flags``: ``one_lung``, ``lr_imbalance``,
        ``sides_swapped`` (the right-lung label lies on the patient's left), ``mask_resampled``,
        ``mask_partly_outside_ct``, ``missing_lobes``, ``overlapping_structures``, ``not_lung_hu`` (median HU above
        -300: the convention is probably wrong). The keys of ``segment_lungs`` without meaning here
        (``dense_recovered_*`` 0, ``leak_fraction``, ``airway_ml``, ``halo_dropped_ml`` NaN) are present so that
        tables built from either result have the same columns.
    dense_recovered : SimpleITK.Image
        All zero (nothing is recovered).
    lobes : SimpleITK.Image or None
        uint8 on the CT grid: 0 none, 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL; None when the source has no lobes.
    """

    lobes: sitk.Image | None = None


# --------------------------------------------------------------------------------------------------- reading


def load_lung_mask(
    source: str | os.PathLike[str],
    ct: sitk.Image,
    convention: str = "auto",
    *,
    mapping: Mapping[int, str] | None = None,
) -> ExternalLungMask:
    """Read a lung or lobe mask written by another tool onto the grid of ``ct``.

    Parameters
    ----------
    source : path
        A label file (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``, ``.mhd``), a DICOM SEG file, or a folder: a
        TotalSegmentator per-structure output folder or a folder holding one DICOM SEG file.
    ct : SimpleITK.Image
        The CT (HU), e.g. from :func:`~kicc_analysis.imaging.load_ct`; the result is on its grid.
    convention : str
        One of ``auto``, ``totalsegmentator``, ``totalsegmentator_v1``, ``totalsegmentator_dir``,
        ``lungmask_r231``, ``lungmask_lobes``, ``dicom_seg``, ``labelmap`` (see the module docstring). ``auto``:
        a folder with ``lung_*_lobe_*.nii.gz`` files is ``totalsegmentator_dir``; a DICOM file (or a folder with one)
        is ``dicom_seg``; a label file with ``mapping`` is ``labelmap``; otherwise a label file whose values are all
        in {1, 2} is ``lungmask_r231``, all in {1, ..., 5} ``lungmask_lobes``, and any other is a TotalSegmentator
        ``total`` file, of version 2 or 1 as the CT says (the labels whose median HU is lung-like, below -300 HU;
        the choice is in ``qa["notes"]``).
    mapping : mapping, optional
        ``{label value: name}`` for ``labelmap`` (name ``right``, ``left`` or a lobe ``RUL`` ... ``LLL``).

    Returns
    -------
    ExternalLungMask
        ``labels`` (1 right, 2 left), ``qa``, ``dense_recovered`` (empty) and ``lobes`` (or None).

    Raises
    ------
    SegmentationError
        Unknown convention, unreadable source, no lung label in it, or a mask that does not overlap the CT.

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk, tempfile, os
    >>> ct = sitk.GetImageFromArray(np.full((4, 8, 8), -850, dtype=np.int16))
    >>> mask = np.zeros((4, 8, 8), np.uint8); mask[:, 2:6, 1:4] = 1; mask[:, 2:6, 5:8] = 2
    >>> path = os.path.join(tempfile.mkdtemp(), "lungmask.nii.gz")
    >>> m = sitk.GetImageFromArray(mask); m.CopyInformation(ct); sitk.WriteImage(m, path)
    >>> seg = load_lung_mask(path, ct)
    >>> seg.qa["convention"], seg.qa["right_ml"], seg.qa["left_ml"], seg.lobes is None
    ('lungmask_r231', 0.048, 0.048, True)
    """
    if not isinstance(ct, sitk.Image) or ct.GetDimension() != 3:
        raise SegmentationError(f"load_lung_mask: ct must be a 3-D SimpleITK image (from load_ct), got {ct!r:.60}")
    if convention not in ALL_CONVENTIONS:
        raise SegmentationError(f"unknown mask convention {convention!r}; expected one of {', '.join(ALL_CONVENTIONS)}")
    path = Path(source)
    if not path.exists():
        raise SegmentationError(f"{path}: mask file or folder not found")
    notes: list[str] = []
    flags: list[str] = []
    kind = _detect(path, mapping) if convention == "auto" else convention
    if kind == "totalsegmentator_dir":
        image, overlap, missing = _read_structure_folder(path)
        table: dict[int, str] | None = dict(enumerate(LOBES, start=1))
        if overlap:
            flags.append("overlapping_structures")
            notes.append(f"{overlap} voxel(s) claimed by two lobe files; the later lobe in RUL..LLL order kept")
    elif kind == "dicom_seg":
        image, table = _read_dicom_seg(_dicom_file(path))
    else:
        image = _read_label_file(path)
        table = _checked_mapping(mapping, path) if kind == "labelmap" else CONVENTIONS.get(kind)
    values, grid, grid_note = _onto_grid(image, ct)
    if grid_note:
        notes.append(grid_note)
    if grid == "resampled":
        flags.append("mask_resampled")
    if table is None:  # a label file read with convention="auto": judged on every 8th voxel on the CT grid
        seen = _counts(values[::2, ::2, ::2])
        if not seen[1:].any():  # nothing there: judged on the file
            seen = _counts(sitk.GetArrayViewFromImage(image))
        kind, table, note = _guess_convention(seen, values, ct)
        notes.append(note)
    top = int(values.max()) if values.size else 0
    lut = np.zeros(max(top, max(table)) + 1, dtype=np.uint8)
    for value, name in table.items():
        lut[value] = _CODE_OF[name]
    labels_arr, lobes_arr, counts = _decode(values, lut)
    del values
    code_counts = np.bincount(lut, weights=counts, minlength=8).astype(np.int64)
    source_voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    if grid == "same":
        source_ml = float(code_counts[1:].sum()) * source_voxel_ml
    else:  # the part outside the CT is gone from the grid: count the source itself
        source_counts = _counts(sitk.GetArrayViewFromImage(image))
        source_ml = float(source_counts[np.flatnonzero(lut[: len(source_counts)])].sum()) * source_voxel_ml
    if code_counts[1:].sum() == 0:
        source_counts = _counts(sitk.GetArrayViewFromImage(image))
        if not source_counts[np.flatnonzero(lut[: len(source_counts)])].any():
            found = np.flatnonzero(source_counts)[1:][:20].tolist()
            raise SegmentationError(
                f"{path}: no lung label of convention {kind} ({sorted(table)}) in the mask; label values found: {found}"
            )
    return _result(labels_arr, lobes_arr, code_counts, ct, kind, path, source_ml, grid, notes, flags)


# ------------------------------------------------------------------------------------------ chunked helpers

_CHUNK = 16  # slices per chunk: numpy casts uint8 indices to intp, so whole-volume fancy indexing and bincount
# allocate 8 bytes per voxel (0.6 GB for 512 x 512 x 300); per chunk they stay in cache and are ~8x faster


def _counts(values: np.ndarray, minlength: int = 0) -> np.ndarray:
    """``np.bincount(values.ravel())`` computed slab by slab."""
    total = np.zeros(max(minlength, int(values.max()) + 1 if values.size else 1), dtype=np.int64)
    for z in range(0, values.shape[0], _CHUNK):
        part = np.bincount(values[z : z + _CHUNK].ravel(), minlength=total.size)
        total += part
    return total


# ----------------------------------------------------------------------------------------------- conventions


def _detect(path: Path, mapping: Mapping[int, str] | None) -> str:
    """Convention of ``path`` for ``convention="auto"``; ``"label_auto"`` = a label file whose map is guessed later."""
    if path.is_dir():
        if any(path.glob("lung_*_lobe_*.nii*")):
            return "totalsegmentator_dir"
        if _dicom_seg_files(path):
            return "dicom_seg"
        raise SegmentationError(
            f"{path}: folder holds neither TotalSegmentator lobe files (lung_*_lobe_*.nii.gz) nor a DICOM SEG file"
        )
    if path.name.lower().endswith(VOLUME_SUFFIXES):
        return "labelmap" if mapping is not None else "label_auto"
    if _is_dicom_seg(path):
        return "dicom_seg"
    raise SegmentationError(
        f"{path}: not a label file ({', '.join(VOLUME_SUFFIXES)}) nor a DICOM SEG; pass convention= explicitly"
    )


def _guess_convention(counts: np.ndarray, values: np.ndarray, ct: sitk.Image) -> tuple[str, dict[int, str], str]:
    """Label map of a label file read with ``convention="auto"`` from its values (and, for TotalSegmentator, the CT)."""
    present = set(np.flatnonzero(counts).tolist()) - {0}
    if present <= {1, 2}:
        return "lungmask_r231", CONVENTIONS["lungmask_r231"], "auto: values within {1, 2} -> lungmask R231"
    if present <= {1, 2, 3, 4, 5}:
        return "lungmask_lobes", CONVENTIONS["lungmask_lobes"], "auto: values within 1-5 -> lungmask LTRCLobes"
    if max(present) > max(CONVENTIONS["totalsegmentator_v1"]) and max(present) > 104:  # v1 has 104 classes
        return "totalsegmentator", CONVENTIONS["totalsegmentator"], "auto: values above 104 -> TotalSegmentator >= 2"
    hu = sitk.GetArrayViewFromImage(ct)
    sample, hu_sample = values[::2, ::2, ::2], hu[::2, ::2, ::2]  # medians from every 8th voxel (speed)
    candidates = (sample >= 10) & (sample <= 17)  # the lobe labels of both class maps
    label_of, hu_of = sample[candidates], hu_sample[candidates]
    on_grid = [v for v in range(10, 18) if v < len(counts) and counts[v]]
    median, size = {}, {}
    for v in on_grid:
        inside = label_of == v
        size[v] = int(np.count_nonzero(inside))
        if size[v]:
            median[v] = float(np.median(hu_of[inside]))
    total = max(sum(size.values()), 1)
    verdict = {}
    for kind in ("totalsegmentator", "totalsegmentator_v1"):
        present = [v for v in CONVENTIONS[kind] if v in median]
        # every lobe label holding >= 1 % of the candidate voxels must have lung-like HU
        valid = bool(present) and all(median[v] < LUNG_HU_MAX for v in present if size[v] >= 0.01 * total)
        verdict[kind] = (valid, len(present))
    ranked = sorted(verdict, key=lambda k: (verdict[k][0], verdict[k][1], k == "totalsegmentator"), reverse=True)
    kind = ranked[0]
    shown = {v: round(m) for v, m in median.items()}
    if not verdict[kind][0]:
        return (
            "totalsegmentator",
            CONVENTIONS["totalsegmentator"],
            (
                f"auto: no TotalSegmentator class map whose lobe labels have lung-like HU (median HU per label {shown}); "
                "class map v2 assumed"
            ),
        )
    return (
        kind,
        CONVENTIONS[kind],
        (
            f"auto: TotalSegmentator class map {kind}: {verdict[kind][1]} of its 5 lobe labels present, all with "
            f"lung-like HU (median HU per label {shown})"
        ),
    )


def _checked_mapping(mapping: Mapping[int, str] | None, path: Path) -> dict[int, str]:
    if not mapping:
        raise SegmentationError(f"{path}: convention 'labelmap' needs mapping={{value: name}} (names {_NAMES})")
    out: dict[int, str] = {}
    for value, name in mapping.items():
        key = str(name).strip()
        key = key.upper() if key.upper() in LOBES else key.lower()
        if key not in _CODE_OF or not isinstance(value, int | np.integer) or not 0 < int(value) < 65536:
            raise SegmentationError(
                f"{path}: mapping entry {value!r}: {name!r}; expected an integer label 1-65535 and one of {_NAMES}"
            )
        out[int(value)] = key
    return out


# ---------------------------------------------------------------------------------------------------- readers


def _read_label_file(path: Path) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise SegmentationError(f"{path}: unreadable label file ({str(exc).strip().splitlines()[-1]})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise SegmentationError(
            f"{path}: expected a 3-D scalar label image, found {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    return _as_labels(image)


def _as_labels(image: sitk.Image) -> sitk.Image:
    """The image as uint8 / uint16 labels (negative values -> 0, fractional values rounded)."""
    if image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkUInt16):
        return image
    arr = sitk.GetArrayViewFromImage(image)
    top = float(arr.max()) if arr.size else 0.0
    dtype = np.uint8 if top < 256 else np.uint16
    if top >= 65536:
        raise SegmentationError(f"label values up to {top:.0f}; expected labels below 65536")
    out = sitk.GetImageFromArray(np.clip(np.rint(arr), 0, None).astype(dtype))
    out.CopyInformation(image)
    return out


def _read_structure_folder(path: Path) -> tuple[sitk.Image, int, list[str]]:
    """Code image (1-5 = lobes) from TotalSegmentator's per-structure files; (image, overlapping voxels, missing)."""
    files = {}
    for name, lobe in TOTALSEG_LOBES.items():
        for suffix in (".nii.gz", ".nii"):
            if (path / f"{name}{suffix}").exists():
                files[lobe] = path / f"{name}{suffix}"
                break
    if not files:
        raise SegmentationError(f"{path}: no lung lobe file ({', '.join(TOTALSEG_LOBES)} .nii.gz) in the folder")
    codes: np.ndarray | None = None
    reference: sitk.Image | None = None
    overlap = 0
    for lobe in LOBES:
        if lobe not in files:
            continue
        image = _read_label_file(files[lobe])
        if reference is None:
            reference = image
            codes = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
        elif not _same_grid(image, reference):
            raise SegmentationError(
                f"{files[lobe]}: grid {image.GetSize()} / {image.GetSpacing()} mm differs from the folder's first "
                f"lobe file {reference.GetSize()} / {reference.GetSpacing()} mm"
            )
        inside = sitk.GetArrayViewFromImage(image) > 0
        overlap += int(np.count_nonzero(codes[inside]))
        codes[inside] = LOBE_CODE[lobe]
    out = sitk.GetImageFromArray(codes)
    out.CopyInformation(reference)
    missing = [lobe for lobe in LOBES if lobe not in files]
    return out, overlap, missing


def _is_dicom_seg(path: Path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a DICOM SEG
        return False
    return str(ds.get("Modality", "")) == "SEG"


def _dicom_seg_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _is_dicom_seg(p))


def _dicom_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = _dicom_seg_files(path)
    if len(found) != 1:
        raise SegmentationError(f"{path}: expected one DICOM SEG file in the folder, found {len(found)}")
    return found[0]


def _segment_name(description: Any) -> str | None:
    """Lobe / side name of one DICOM SEG segment from its label, else from its SNOMED CT codes; None if not lung."""
    label = re.sub(r"[_\-.]+", " ", str(description.segment_label)).lower().strip()
    if label.replace(" ", "_") in TOTALSEG_LOBES:
        return TOTALSEG_LOBES[label.replace(" ", "_")]
    if re.search(r"vessel|nodul|airway|trache|bronch|lesion|infiltrat|tumou?r|effusion|covid|pleura", label):
        return None
    words = set(label.split())
    for lobe in LOBES:
        if lobe.lower() in words:
            return lobe
    side = "right" if words & {"right", "r"} else "left" if words & {"left", "l"} else None
    if side is not None and "lobe" in words:
        level = next((w for w in ("upper", "middle", "lower") if w in words), None)
        if level is not None:
            return _lobe_of(side, level)
    if side is not None and "lung" in words:
        return side
    # SNOMED CT property type (+ laterality modifier), TotalSegmentator's coding
    item = description.SegmentedPropertyTypeCodeSequence[0]
    value = str(item.CodeValue)
    modifiers = {str(m.CodeValue) for m in item.get("SegmentedPropertyTypeModifierCodeSequence", [])}
    side = "right" if SCT_RIGHT in modifiers else "left" if SCT_LEFT in modifiers else None
    if value == SCT_MIDDLE_RIGHT:
        return "RML"
    if side is None:
        return None
    if value == SCT_LUNG:
        return side
    level = {SCT_UPPER: "upper", SCT_LOWER: "lower"}.get(value)
    return _lobe_of(side, level) if level else None


def _lobe_of(side: str, level: str) -> str | None:
    name = f"{side[0]}{level[0]}l".upper()
    return name if name in LOBES else None


def _read_dicom_seg(path: Path) -> tuple[sitk.Image, dict[int, str]]:
    """Code image and {value: name} of the lung / lobe segments of a DICOM SEG (highdicom)."""
    import highdicom as hd

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - highdicom raises many types; one line for the user
        raise SegmentationError(f"{path}: not a readable DICOM SEG ({type(exc).__name__}: {exc})") from exc
    keep: dict[int, str] = {}
    labels = []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        labels.append(str(description.segment_label))
        name = _segment_name(description)
        if name is not None and name not in keep.values():
            keep[int(number)] = name
    if not keep:
        raise SegmentationError(f"{path}: no lung or lobe segment in the DICOM SEG; segment labels: {labels}")
    try:
        volume = seg.get_volume(
            segment_numbers=list(keep), combine_segments=True, relabel=True, skip_overlap_checks=True, dtype=np.uint8
        )
    except Exception as exc:  # noqa: BLE001
        raise SegmentationError(f"{path}: DICOM SEG frames do not form a volume ({type(exc).__name__}: {exc})") from exc
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    affine = np.asarray(volume.affine, dtype=float)
    axes = affine[:3, :3][:, ::-1]  # columns: index x (column), y (row), z (slice)
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (axes / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return image, {i + 1: name for i, name in enumerate(keep.values())}


# ------------------------------------------------------------------------------------------------------- grid


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-4)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GRID_TOL_MM)
    )


def _onto_grid(image: sitk.Image, ct: sitk.Image) -> tuple[np.ndarray, str, str]:
    """Label values on the CT grid: (array (z, y, x), "same" / "subgrid" / "resampled", note)."""
    flipped = _flipped_view(image, ct)
    if flipped is not None:  # an axis-aligned file on the CT grid (e.g. RAS vs LPS): a flipped view, no copy
        return flipped, "same", ""
    target = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ct.GetDirection())
    oriented = sitk.DICOMOrient(image, target)
    if _same_grid(oriented, ct):
        return sitk.GetArrayFromImage(oriented), "same", ""
    if np.allclose(oriented.GetSpacing(), ct.GetSpacing(), rtol=1e-4) and np.allclose(
        oriented.GetDirection(), ct.GetDirection(), atol=1e-4
    ):
        axes = np.asarray(ct.GetDirection(), dtype=float).reshape(3, 3) * np.asarray(ct.GetSpacing())
        offset = np.linalg.solve(axes, np.asarray(oriented.GetOrigin()) - np.asarray(ct.GetOrigin()))
        steps = np.rint(offset)
        if np.all(np.abs(offset - steps) < SUBGRID_TOL):
            return _paste(sitk.GetArrayViewFromImage(oriented), ct, steps.astype(int)[::-1]), "subgrid", ""
    resampled = sitk.Resample(oriented, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, oriented.GetPixelID())
    note = (
        f"mask grid {image.GetSize()} at {tuple(round(s, 3) for s in image.GetSpacing())} mm resampled (nearest "
        f"neighbour) onto the CT grid {ct.GetSize()} at {tuple(round(s, 3) for s in ct.GetSpacing())} mm"
    )
    return sitk.GetArrayFromImage(resampled), "resampled", note


def _flipped_view(image: sitk.Image, ct: sitk.Image) -> np.ndarray | None:
    """The label array as a view on the CT grid when the two grids differ only by axis signs, else None."""
    d_img = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    d_ct = np.asarray(ct.GetDirection(), dtype=float).reshape(3, 3)
    signs = np.diag(d_img) * np.diag(d_ct)
    if not (
        image.GetSize() == ct.GetSize()
        and np.allclose(np.abs(np.diag(d_img)), 1.0, atol=1e-6)
        and np.allclose(np.abs(np.diag(d_ct)), 1.0, atol=1e-6)
        and np.allclose(image.GetSpacing(), ct.GetSpacing(), rtol=1e-4)
    ):
        return None
    corner = [0 if sign > 0 else size - 1 for sign, size in zip(signs, image.GetSize(), strict=True)]
    if not np.allclose(image.TransformIndexToPhysicalPoint(corner), ct.GetOrigin(), atol=GRID_TOL_MM):
        return None
    view = sitk.GetArrayViewFromImage(image)
    flip = [2 - axis for axis in range(3) if signs[axis] < 0]  # sitk axis x, y, z -> array axis 2, 1, 0
    return np.flip(view, flip) if flip else view


def _paste(values: np.ndarray, ct: sitk.Image, offset_zyx: np.ndarray) -> np.ndarray:
    """``values`` placed at integer ``offset_zyx`` (voxels) in an array of the CT's shape (cropped to it)."""
    shape = ct.GetSize()[::-1]
    out = np.zeros(shape, dtype=values.dtype)
    dst, src = [], []
    for axis in range(3):
        start = int(offset_zyx[axis])
        lo, hi = max(start, 0), min(start + values.shape[axis], shape[axis])
        if hi <= lo:
            return out
        dst.append(slice(lo, hi))
        src.append(slice(lo - start, hi - start))
    out[tuple(dst)] = values[tuple(src)]
    return out


# ---------------------------------------------------------------------------------------------------- result


def _decode(values: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass, slab by slab: lung labels (1 right, 2 left), lobe labels (1-5) and the counts of the label values.

    ``lut`` maps label values to codes (1-5 lobes, 6 right lung, 7 left lung).
    """
    labels = np.empty(values.shape, dtype=np.uint8)
    lobes = np.empty(values.shape, dtype=np.uint8)
    counts = np.zeros(len(lut), dtype=np.int64)
    for z in range(0, values.shape[0], _CHUNK):
        v = values[z : z + _CHUNK]
        counts += np.bincount(v.ravel(), minlength=len(lut))
        c = lut[v]
        left = (c >= LOBE_CODE["LUL"]) & (c != _SIDE_CODE["right"])
        labels[z : z + _CHUNK] = (c > 0).view(np.uint8) + left.view(np.uint8)
        lobes[z : z + _CHUNK] = np.where(c <= len(LOBES), c, 0)
    return labels, lobes, counts


def _result(
    labels_arr: np.ndarray,
    lobes_arr: np.ndarray,
    counts: np.ndarray,
    ct: sitk.Image,
    convention: str,
    path: Path,
    source_ml: float,
    grid: str,
    notes: list[str],
    flags: list[str],
) -> ExternalLungMask:
    if counts[1:].sum() == 0:
        raise SegmentationError(
            f"{path}: the mask does not overlap the CT: its {source_ml:.0f} mL of lung lie outside the CT's field "
            f"(CT origin {tuple(round(v, 1) for v in ct.GetOrigin())} mm, size {ct.GetSize()})"
        )
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    right_ml = float(counts[[1, 2, 3, 6]].sum()) * voxel_ml
    left_ml = float(counts[[4, 5, 7]].sum()) * voxel_ml
    total_ml = right_ml + left_ml
    lobe_ml = {lobe: float(counts[LOBE_CODE[lobe]]) * voxel_ml for lobe in LOBES if counts[LOBE_CODE[lobe]]}
    hu = sitk.GetArrayViewFromImage(ct)
    inside = hu[::2, ::2, ::2][labels_arr[::2, ::2, ::2] > 0]  # every 8th voxel (speed)
    if inside.size == 0:
        inside = hu[labels_arr > 0]
    median_hu = float(np.median(inside))
    del inside
    outside = max(0.0, 1.0 - total_ml / source_ml) if source_ml > 0 else 0.0
    if min(right_ml, left_ml) == 0:
        flags.append("one_lung")
    lr_ratio = min(right_ml, left_ml) / max(right_ml, left_ml)
    if 0 < lr_ratio < IMBALANCE:
        flags.append("lr_imbalance")
    if right_ml > 0 and left_ml > 0 and _right_is_on_left(labels_arr, ct):
        flags.append("sides_swapped")
    if outside > OUTSIDE_MAX and grid != "resampled" or outside > 2 * OUTSIDE_MAX:
        flags.append("mask_partly_outside_ct")
    if lobe_ml and len(lobe_ml) < len(LOBES):
        flags.append("missing_lobes")
        notes.append(f"lobes present: {', '.join(lobe_ml)}")
    if median_hu > LUNG_HU_MAX:
        flags.append("not_lung_hu")
    labels = sitk.GetImageFromArray(labels_arr)
    labels.CopyInformation(ct)
    lobes = None
    if lobe_ml:
        lobes = sitk.GetImageFromArray(lobes_arr)
        lobes.CopyInformation(ct)
    dense = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    dense.CopyInformation(ct)
    qa: dict[str, Any] = {
        "flags": flags,
        "right_ml": right_ml,
        "left_ml": left_ml,
        "total_ml": total_ml,
        "lr_ratio": lr_ratio,
        "lobe_ml": lobe_ml,
        "lobes": list(lobe_ml),
        "median_hu": median_hu,
        "outside_ct_fraction": outside,
        "convention": convention,
        "mask_source": path.name,
        "grid": grid,
        "notes": notes,
        "dense_recovered_ml": 0.0,
        "dense_recovered_fraction": 0.0,
        "leak_fraction": np.nan,
        "airway_ml": np.nan,
        "halo_dropped_ml": np.nan,
        "halo_gate": False,
        "dropped_gas_ml": 0.0,
        "dropped_gas": [],
        "patient_position": "",
        "mode": "3d",
        "algorithm_version": f"mask:{convention}",
    }
    return ExternalLungMask(labels=labels, qa=qa, dense_recovered=dense, lobes=lobes)


def _right_is_on_left(labels: np.ndarray, ct: sitk.Image) -> bool:
    """True when the right-lung label's centroid lies on the patient's left of the left-lung label's (LPS x)."""
    centre = []
    sample = labels[::2, ::4]  # every 2nd slice and 4th row: enough for a centroid's x
    for value in (RIGHT, LEFT):
        profile = (sample == value).sum(axis=(0, 1), dtype=np.int64)
        cx = float(profile @ np.arange(profile.size) / profile.sum())
        centre.append(ct.TransformContinuousIndexToPhysicalPoint((cx, labels.shape[1] / 2, labels.shape[0] / 2))[0])
    return centre[0] > centre[1]


# ------------------------------------------------------------------------------------------------ mask folders

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm")


def find_series_mask(
    masks_dir: str | os.PathLike[str], series_uid: str, series_path: str | os.PathLike[str] | None = None
) -> Path | None:
    """The mask of one series in a folder of masks, or None (the series then uses the classical method).

    Looked up in this order (first hit wins), ``<suffix>`` one of ``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``,
    ``.mhd``, ``.dcm``:

    1. ``masks_dir/<SeriesInstanceUID><suffix>`` or a folder ``masks_dir/<SeriesInstanceUID>/`` (TotalSegmentator's
       per-structure output, or one DICOM SEG file);
    2. ``masks_dir/<series_path><suffix>`` or a folder ``masks_dir/<series_path>/``, where ``series_path`` is the
       series' folder relative to the repository (e.g. ``dicom/S01/KICC-S01-0007/CT1`` ->
       ``masks_dir/dicom/S01/KICC-S01-0007/CT1.nii.gz``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "1.2.3.nii.gz").touch()
    >>> find_series_mask(root, "1.2.3").name, find_series_mask(root, "9.9")
    ('1.2.3.nii.gz', None)
    """
    root = Path(masks_dir)
    for stem in [str(series_uid)] + ([Path(series_path).as_posix().strip("/")] if series_path else []):
        if not stem or stem.startswith(".."):
            continue
        for suffix in MASK_SUFFIXES:
            candidate = root / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        folder = root / stem
        if folder.is_dir() and (any(folder.glob("lung_*_lobe_*.nii*")) or any(folder.glob("*.dcm"))):
            return folder
    return None


# ---------------------------------------------------------------------------------------------------- writing


def write_lung_mask(
    labels: sitk.Image | LungSegmentation,
    destination: str | os.PathLike[str],
    convention: str = "totalsegmentator",
    *,
    lobes: sitk.Image | None = None,
    mapping: Mapping[int, str] | None = None,
    ct_files: Sequence[str | os.PathLike[str]] | None = None,
    orientation: str | None = None,
) -> Path:
    """Write lung labels (1 right, 2 left) and/or lobes (1 RUL ... 5 LLL) in one of the conventions of this module.

    Parameters
    ----------
    labels : SimpleITK.Image or LungSegmentation
        Lung labels, or a result of :func:`segment_lungs` / :func:`load_lung_mask` (its ``lobes`` are used when
        ``lobes`` is not given).
    destination : path
        A file (``.nii.gz``, ``.nrrd``, ``.mha``; a ``.dcm`` file for ``dicom_seg``) or, for
        ``totalsegmentator_dir``, a folder (created) that receives ``lung_upper_lobe_left.nii.gz`` ...
    convention : str
        ``totalsegmentator``, ``totalsegmentator_v1``, ``totalsegmentator_dir``, ``lungmask_lobes`` (need lobes),
        ``lungmask_r231``, ``labelmap`` (with ``mapping``) or ``dicom_seg`` (with ``ct_files``).
    lobes : SimpleITK.Image, optional
        Lobe labels on the grid of ``labels``.
    mapping : mapping, optional
        ``{value: name}`` for ``labelmap``.
    ct_files : sequence of paths, optional
        The CT series' DICOM files (``dicom_seg``: the SEG references them; axial series on the grid of ``labels``).
    orientation : str, optional
        Re-orient label files before writing, e.g. ``"RAS"`` (what TotalSegmentator writes for a RAS NIfTI input);
        default: the grid of ``labels`` as it is.

    Returns
    -------
    pathlib.Path
        ``destination``.
    """
    if isinstance(labels, LungSegmentation):
        lobes = lobes if lobes is not None else getattr(labels, "lobes", None)
        labels = labels.labels
    destination = Path(destination)
    lung = sitk.GetArrayViewFromImage(labels)
    lobe_arr = sitk.GetArrayViewFromImage(lobes) if lobes is not None else None
    if convention in ("totalsegmentator", "totalsegmentator_v1", "lungmask_lobes", "totalsegmentator_dir", "labelmap"):
        table = (
            _checked_mapping(mapping, destination)
            if convention == "labelmap"
            else CONVENTIONS.get(convention, dict(enumerate(LOBES, start=1)))
        )
        if lobe_arr is None and any(name in LOBES for name in table.values()):
            raise SegmentationError(f"{destination}: convention {convention} holds lobes; pass lobes=")
    if convention == "totalsegmentator_dir":
        destination.mkdir(parents=True, exist_ok=True)
        for name, lobe in TOTALSEG_LOBES.items():
            _write_array(
                (lobe_arr == LOBE_CODE[lobe]).astype(np.uint8), labels, destination / f"{name}.nii.gz", orientation
            )
        return destination
    if convention == "dicom_seg":
        if not ct_files:
            raise SegmentationError(f"{destination}: convention dicom_seg needs ct_files= (the CT series' DICOM files)")
        _write_dicom_seg(lung, lobe_arr, labels, destination, ct_files)
        return destination
    if convention == "lungmask_r231":
        table = CONVENTIONS["lungmask_r231"]
    elif convention not in CONVENTIONS and convention != "labelmap":
        raise SegmentationError(
            f"write_lung_mask: unknown convention {convention!r}; expected one of {ALL_CONVENTIONS[1:]}"
        )
    dtype = np.uint8 if max(table) < 256 else np.uint16
    out = np.zeros(lung.shape, dtype=dtype)
    for value, name in table.items():
        if name in LOBES:
            out[lobe_arr == LOBE_CODE[name]] = value
        else:
            out[lung == (RIGHT if name == "right" else LEFT)] = value
    _write_array(out, labels, destination, orientation)
    return destination


def _write_array(array: np.ndarray, reference: sitk.Image, path: Path, orientation: str | None) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    if orientation:
        image = sitk.DICOMOrient(image, orientation)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _write_dicom_seg(
    lung: np.ndarray, lobes: np.ndarray | None, reference: sitk.Image, path: Path, ct_files: Sequence[Any]
) -> None:
    """One binary segment per lobe (or per lung without lobes), TotalSegmentator's labels and SNOMED CT codes."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from .. import __version__

    datasets = [pydicom.dcmread(f) for f in ct_files]
    frames = []
    for ds in datasets:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        if not np.allclose(orientation, [1, 0, 0, 0, 1, 0], atol=1e-3) or not np.allclose(
            reference.GetDirection(), np.eye(3).ravel(), atol=1e-4
        ):
            raise SegmentationError(f"{ds.filename}: write_lung_mask(dicom_seg) writes axial (LPS) series only")
        index = reference.TransformPhysicalPointToIndex([float(v) for v in ds.ImagePositionPatient])
        if not 0 <= index[2] < lung.shape[0] or (int(ds.Rows), int(ds.Columns)) != lung.shape[1:]:
            raise SegmentationError(f"{ds.filename}: slice not on the grid of the labels")
        frames.append(index[2])
    if lobes is not None:
        names = list(LOBES)
        planes = [lobes == LOBE_CODE[n] for n in names]
    else:
        names = ["right", "left"]
        planes = [lung == RIGHT, lung == LEFT]
    pixel = np.stack([np.stack([p[z] for p in planes], axis=-1) for z in frames])
    type_code = {
        "RUL": (SCT_UPPER, "Upper lobe of lung", SCT_RIGHT),
        "RML": (SCT_MIDDLE_RIGHT, "Middle lobe of right lung", None),
        "RLL": (SCT_LOWER, "Lower lobe of lung", SCT_RIGHT),
        "LUL": (SCT_UPPER, "Upper lobe of lung", SCT_LEFT),
        "LLL": (SCT_LOWER, "Lower lobe of lung", SCT_LEFT),
        "right": (SCT_LUNG, "Lung", SCT_RIGHT),
        "left": (SCT_LUNG, "Lung", SCT_LEFT),
    }
    label_of = {lobe: name for name, lobe in TOTALSEG_LOBES.items()} | {"right": "lung_right", "left": "lung_left"}
    descriptions = []
    for number, name in enumerate(names, start=1):
        value, meaning, side = type_code[name]
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label_of[name],
            segmented_property_category=hd.sr.CodedConcept(SCT_ANATOMICAL_STRUCTURE, "SCT", "Anatomical Structure"),
            segmented_property_type=hd.sr.CodedConcept(value, "SCT", meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="kicc-analysis", version=__version__, family=codes.cid7162.ArtificialIntelligence
            ),
        )
        if side is not None:
            modifier = hd.sr.CodedConcept(side, "SCT", "Right" if side == SCT_RIGHT else "Left")
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(description)
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixel.astype(bool),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=9001,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="kicc-analysis",
        manufacturer_model_name="kicc_analysis.segmentation",
        software_versions=__version__,
        device_serial_number="0",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
