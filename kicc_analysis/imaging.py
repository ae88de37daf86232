"""Load a CT series or volume file as a SimpleITK image in Hounsfield units (HU), LPS orientation.

Public API
----------
``load_ct(source)``
    DICOM series (folder, file list, single file) or a volume file (NRRD, NIfTI, MHA) -> ``SimpleITK.Image``.
``get_load_report(image)``
    The :class:`LoadReport` (warnings and QA facts of the load) stored on the image metadata.
``display_to_hu(pixels, level, width)``
    Map 8-bit display values of a windowed teaching image back to approximate HU.

Conventions (documented in ``docs/ct.md``)
-------------------------------------------
* Voxel values are HU: ``stored * RescaleSlope + RescaleIntercept`` per slice. The image is ``int16`` when every
  slice has an integer intercept and slope 1 (the usual case), otherwise ``float32``.
* Voxels outside the reconstruction field of view (``PixelPaddingValue``, or any value below
  ``PADDING_THRESHOLD_HU`` = -1500 HU, e.g. -2048, -3024) are set to ``AIR_HU`` = -1024 HU (air), so that
  segmentation sees outside-of-scan as outside air. The fraction replaced is reported.
* The image is re-oriented to the canonical LPS direction (identity direction cosines, array axes (z, y, x) =
  (inferior->superior, anterior->posterior, right->left)), so a DICOM series and its NIfTI copy give the same array.
* DICOM slices are sorted by their position along the slice normal (never by file name or InstanceNumber);
  duplicate positions are dropped, missing slices (gaps > 1.5 x the median spacing) are filled by linear
  interpolation between the neighbouring slices so the grid stays uniform; both are reported.
* Gantry tilt (tag (0018,1120) or slice positions not along the slice normal) is reported, not corrected.
* Non-DICOM files mixed into a folder are skipped and counted. When a folder holds several series, the one with
  most slices is loaded (or the one named by ``series_uid``) and the others are listed in the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from .errors import ImagingError, MissingCodecError
from .radiography import load_radiograph  # noqa: F401  re-exported: kicc_analysis.imaging.load_radiograph

AIR_HU = -1024
PADDING_THRESHOLD_HU = -1500.0
REPORT_KEY = "kicc_load_report"
#: The package's one table of CT display windows: name -> (level, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
}
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
CODEC_HINT = (
    "install a decoder into the environment: `pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg` "
    "(JPEG 2000 / JPEG / JPEG-LS) or `pip install python-gdcm`"
)


@dataclass
class LoadReport:
    """What happened while loading one CT.

    Attributes
    ----------
    source : str
        Folder or file that was loaded (first file of a list).
    kind : str
        ``"dicom"`` or ``"volume"``.
    series_uid : str
        SeriesInstanceUID (empty for volume files).
    n_files, n_slices : int
        Files read and slices in the output grid (after dropping duplicates and filling gaps).
    skipped_files : int
        Files that were not DICOM images of the loaded series (non-DICOM, other series, no pixels).
    other_series : list of str
        Other SeriesInstanceUIDs found in the same source (not loaded).
    duplicate_slices : int
        Slices dropped because another slice had the same position.
    missing_slices : int
        Slices interpolated to fill gaps along z.
    gantry_tilt_deg : float
        Gantry/detector tilt in degrees (0 when absent).
    padding_fraction : float
        Fraction of voxels that were outside the field of view and were set to ``AIR_HU``.
    transfer_syntax : str
        Transfer syntax UID of the first file (DICOM only).
    patient_position : str
        DICOM PatientPosition (0018,5100) of the first file, e.g. ``"HFS"`` (head first supine), ``"FFP"``
        (feet first prone), ``"HFDL"`` (decubitus left); empty when absent or not DICOM.
    warnings : list of str
        Human-readable warnings (no patient identifiers).
    """

    source: str
    kind: str
    series_uid: str = ""
    n_files: int = 0
    n_slices: int = 0
    skipped_files: int = 0
    other_series: list[str] = field(default_factory=list)
    duplicate_slices: int = 0
    missing_slices: int = 0
    gantry_tilt_deg: float = 0.0
    padding_fraction: float = 0.0
    transfer_syntax: str = ""
    patient_position: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise to a JSON string (stored on the image metadata)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadReport:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def get_load_report(image: sitk.Image) -> LoadReport | None:
    """Return the :class:`LoadReport` that :func:`load_ct` stored on ``image`` (None if absent).

    SimpleITK filters do not propagate metadata, so read the report from the image ``load_ct`` returned.
    """
    if image.HasMetaDataKey(REPORT_KEY):
        return LoadReport.from_json(image.GetMetaData(REPORT_KEY))
    return None


# --------------------------------------------------------------------------------------------- public entry point
def load_ct(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series_uid: str | None = None,
    padding_threshold_hu: float = PADDING_THRESHOLD_HU,
) -> sitk.Image:
    """Load a CT as a SimpleITK image in HU with canonical LPS orientation.

    Parameters
    ----------
    source : path or sequence of paths
        A DICOM series folder (searched recursively), a list of DICOM files of one series, a single DICOM file,
        or a volume file (``.nrrd``, ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``).
    series_uid : str, optional
        Which series to load when ``source`` holds several (default: the one with most slices).
    padding_threshold_hu : float
        Values below this (HU, after rescale) are treated as outside the scan field and set to -1024 HU.

    Returns
    -------
    SimpleITK.Image
        3-D image (a single slice has z size 1), HU, spacing in mm, identity direction (LPS). The load report is
        stored as JSON under metadata key ``"kicc_load_report"``; read it with :func:`get_load_report`.

    Raises
    ------
    ImagingError
        Nothing loadable, inconsistent slice sizes, unreadable file.
    MissingCodecError
        The pixel data is compressed with a transfer syntax no installed decoder handles (checked before decoding).
    """
    files = _expand_source(source)
    if len(files) == 1 and _is_volume_file(files[0]):
        image, report = _load_volume(files[0])
    else:
        image, report = _load_dicom(files, series_uid=series_uid)
    image, report.padding_fraction = _replace_padding(image, padding_threshold_hu, report)
    if report.padding_fraction > 0:
        report.warnings.append(
            f"{report.padding_fraction:.1%} of voxels were outside the scan field (< {padding_threshold_hu:g} HU "
            f"or PixelPaddingValue) and were set to {AIR_HU} HU"
        )
    image = _orient_lps(image)
    report.n_slices = image.GetSize()[2]
    image.SetMetaData(REPORT_KEY, report.to_json())
    return image


def display_to_hu(pixels: np.ndarray, level: float, width: float, *, max_value: float = 255.0) -> np.ndarray:
    """Map display values of a windowed image (8-bit JPG/PNG) back to approximate HU.

    The linear DICOM window maps ``level - width/2 .. level + width/2`` HU onto ``0 .. max_value``; this inverts it:
    ``HU = level - width/2 + pixels / max_value * width``. Values clipped by the window (black/white) come back as
    the window limits, so HU outside the window are not recoverable.

    Parameters
    ----------
    pixels : ndarray
        Display values (any shape; colour images must be converted to grey first).
    level, width : float
        Display window centre and width in HU (e.g. lung window -600 / 1500).
    max_value : float
        Display value of the window top (255 for 8-bit).

    Returns
    -------
    ndarray of float32, same shape, in HU.
    """
    if width <= 0:
        raise ImagingError(f"display window width must be > 0 HU, got {width}")
    values = np.asarray(pixels, dtype=np.float32)
    if values.size and (np.nanmin(values) < 0 or np.nanmax(values) > max_value):
        raise ImagingError(
            f"display values must lie in 0..{max_value:g}, found {np.nanmin(values):g}..{np.nanmax(values):g}"
        )
    return (level - width / 2.0 + values / max_value * width).astype(np.float32)


AERATED_LUNG_HU = -850.0  # anchor of the window estimate: mode of aerated lung parenchyma (HU)
SOFT_TISSUE_HU = 40.0  # ... and of mediastinal soft tissue / muscle / blood (HU)


def estimate_display_window(
    pixels: np.ndarray,
    *,
    lung_hu: float = AERATED_LUNG_HU,
    tissue_hu: float = SOFT_TISSUE_HU,
    max_value: float = 255.0,
    smooth_bins: float = 2.0,
) -> tuple[float, float]:
    """Estimate the display window (level, width in HU) of a lung-window teaching image from its anatomy.

    A chest CT slice shown in a lung window has two histogram modes: aerated lung parenchyma (dark, about
    ``lung_hu`` = -850 HU) and soft tissue of the mediastinum and chest wall (bright, about ``tissue_hu`` = +40 HU).
    The most populated mode below mid-grey (for a 2-D slice whose border is mostly dark, i.e. air around the
    body: of the dark regions not touching the border, so outside air at -1000 HU is not taken for lung) and the most populated mode
    above mid-grey (saturated 0 / ``max_value`` bins excluded; histograms smoothed by a Gaussian of
    ``smooth_bins``) are mapped to those HU; the linear window
    through both is returned, ready for :func:`display_to_hu`. Accuracy is that of the anchors (about +-50 HU for
    lung density varying with inspiration and disease); a per-image estimate beats one global window when images
    come from different viewers (MedSeg/SIRM teaching JPGs).

    Parameters
    ----------
    pixels : ndarray
        Grey display values 0..``max_value`` (2-D slice or any shape).
    lung_hu, tissue_hu : float
        HU assigned to the lung and soft-tissue modes.
    max_value : float
        Display value of the window top (255 for 8-bit).
    smooth_bins : float
        Gaussian smoothing (display units) of the histogram before the modes are located.

    Returns
    -------
    (level, width) : tuple of float
        Window centre and width in HU.

    Raises
    ------
    ImagingError
        When the image lacks one of the two modes (e.g. not a lung-window chest slice) or is constant.
    """
    from scipy import ndimage  # local: imaging otherwise needs no scipy

    values = np.asarray(pixels, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ImagingError("estimate_display_window: empty image (no finite display values)")
    n_bins = int(round(max_value)) + 1
    hist = np.bincount(np.clip(np.rint(values), 0, max_value).astype(int), minlength=n_bins).astype(float)
    hist[0] = hist[-1] = 0.0  # clipped by the window: not a tissue mode
    hist = ndimage.gaussian_filter1d(hist, smooth_bins)
    middle = n_bins // 2
    lung_hist = hist
    grey = np.asarray(pixels, dtype=np.float64)
    if grey.ndim == 2:
        # outside air (dark regions touching the image border) is darker than lung: take the lung mode from the
        # dark regions inside the body when they are big enough (tight crops may cut through the lungs)
        dark, _ = ndimage.label(np.nan_to_num(grey, nan=max_value) < max_value / 2.0)
        edge = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
        inside = (dark > 0) & ~np.isin(dark, np.unique(edge))
        if (edge > 0).mean() >= 0.5 and inside.sum() >= 0.02 * grey.size:  # a field of view with air around
            inner = np.clip(np.rint(grey[inside]), 0, max_value).astype(int)
            lung_hist = ndimage.gaussian_filter1d(np.bincount(inner, minlength=n_bins).astype(float), smooth_bins)
    lung_mode = int(np.argmax(lung_hist[1:middle])) + 1
    tissue_mode = middle + int(np.argmax(hist[middle:-1]))
    if hist[lung_mode] <= 0 or hist[tissue_mode] <= 0 or tissue_mode - lung_mode < 0.2 * max_value:
        raise ImagingError(
            "estimate_display_window: expected a dark aerated-lung mode below mid-grey and a bright soft-tissue "
            f"mode above it (lung-window chest slice); found modes at {lung_mode} and {tissue_mode} of {max_value:g}"
        )
    hu_per_unit = (tissue_hu - lung_hu) / (tissue_mode - lung_mode)
    width = hu_per_unit * max_value
    low = lung_hu - lung_mode * hu_per_unit
    return float(low + width / 2.0), float(width)


# --------------------------------------------------------------------------------------------- helpers
def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in VOLUME_SUFFIXES)


def _expand_source(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImagingError(f"CT source not found: expected a DICOM folder, DICOM file or volume file at {path}")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise ImagingError(f"CT source folder {path} contains no files")
            return files
        return [path]
    files = [Path(p) for p in source]
    if not files:
        raise ImagingError("CT source is an empty list of files; expected the files of one DICOM series")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ImagingError(f"{len(missing)} listed CT file(s) do not exist, e.g. {missing[0]}")
    return files


def _load_volume(path: Path) -> tuple[sitk.Image, LoadReport]:
    report = LoadReport(source=str(path), kind="volume", n_files=1)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImagingError(f"cannot read volume file {path}: {exc}") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImagingError(
            f"expected a scalar CT volume in {path}, found {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    if image.GetDimension() == 2:
        image = sitk.JoinSeries([image])
    elif image.GetDimension() != 3:
        raise ImagingError(f"expected a 2-D or 3-D CT volume in {path}, found {image.GetDimension()}-D")
    if image.GetPixelID() not in (sitk.sitkInt16, sitk.sitkFloat32):
        array = sitk.GetArrayViewFromImage(image)
        if np.issubdtype(array.dtype, np.integer) and array.min() >= -32768 and array.max() <= 32767:
            image = sitk.Cast(image, sitk.sitkInt16)
        else:
            image = sitk.Cast(image, sitk.sitkFloat32)
    return image, report


def _read_headers(files: Iterable[Path]) -> tuple[list[pydicom.Dataset], int]:
    datasets: list[pydicom.Dataset] = []
    skipped = 0
    for path in files:
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            skipped += 1
            continue
        if "PixelData" not in ds:
            skipped += 1
            continue
        ds.filename = str(path)
        datasets.append(ds)
    return datasets, skipped


def _select_series(
    datasets: list[pydicom.Dataset], series_uid: str | None, report: LoadReport
) -> list[pydicom.Dataset]:
    groups: dict[str, list[pydicom.Dataset]] = {}
    for ds in datasets:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    if series_uid is not None:
        if series_uid not in groups:
            raise ImagingError(f"series {series_uid} not found in {report.source}; found {sorted(groups)}")
        chosen = series_uid
    else:
        chosen = max(groups, key=lambda uid: len(groups[uid]))
    others = sorted(uid for uid in groups if uid != chosen)
    if others:
        report.other_series = others
        report.skipped_files += sum(len(groups[uid]) for uid in others)
        report.warnings.append(f"{len(others)} other series in the source were not loaded")
    report.series_uid = chosen
    return groups[chosen]


#: Image storage SOP classes that are not CT, by the modality they imply (for files without a Modality attribute).
_NON_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.6.1": "US",
}


def _check_ct_slices(datasets: list[pydicom.Dataset]) -> None:
    """One-line errors naming the file when a slice is not a single-frame grayscale CT image."""
    for ds in datasets:
        where = ds.filename
        modality = str(ds.get("Modality", "") or "").strip().upper()
        sop_class = str(ds.get("SOPClassUID", "") or "")
        implied = modality or _NON_CT_SOP_CLASSES.get(sop_class, "")
        if implied and implied != "CT":
            source = "Modality" if modality else "SOP Class"
            raise ImagingError(
                f"{where}: Modality {implied} (from its {source}, SOP Class {sop_class or 'absent'}), "
                "expected CT: load_ct reads CT series in HU"
            )
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames != 1:
            raise ImagingError(
                f"{where}: multi-frame image ({frames} frames), expected single-frame CT slices "
                "(convert an Enhanced CT to NIfTI/NRRD and load that file)"
            )
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if samples != 1:
            photometric = str(ds.get("PhotometricInterpretation", "") or "?")
            raise ImagingError(
                f"{where}: {samples} samples per pixel ({photometric}), expected a grayscale CT slice "
                "(1 sample per pixel, MONOCHROME1/2)"
            )


def _check_codec(ds: pydicom.Dataset, where: str) -> None:
    """Fail before decoding anything when the transfer syntax is unknown or has no installed decoder."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return
    try:
        compressed = syntax.is_compressed
    except ValueError:
        raise ImagingError(
            f"{where}: transfer syntax {syntax} is not a DICOM transfer syntax (expected e.g. "
            "1.2.840.10008.1.2.1 Explicit VR Little Endian or a standard compressed one)"
        ) from None
    if not compressed:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise MissingCodecError(
            f"{where}: pixel data uses transfer syntax {syntax.name} ({syntax}), which pydicom cannot decode; "
            f"{CODEC_HINT}"
        ) from exc
    if not decoder.is_available:
        raise MissingCodecError(
            f"{where}: pixel data uses transfer syntax {syntax.name} ({syntax}) but no decoder is installed "
            f"(missing: {', '.join(decoder.missing_dependencies) or 'a plugin'}); {CODEC_HINT}"
        )


def _load_dicom(files: list[Path], series_uid: str | None) -> tuple[sitk.Image, LoadReport]:
    report = LoadReport(source=str(files[0].parent if len(files) > 1 else files[0]), kind="dicom")
    datasets, skipped = _read_headers(files)
    report.skipped_files = skipped
    if not datasets:
        raise ImagingError(f"no DICOM image files found in {report.source} ({len(files)} file(s) looked at)")
    if skipped:
        report.warnings.append(f"{skipped} non-DICOM or pixel-less file(s) skipped")
    datasets = _select_series(datasets, series_uid, report)
    first = datasets[0]
    report.transfer_syntax = str(first.file_meta.get("TransferSyntaxUID", ""))
    report.patient_position = str(first.get("PatientPosition", "") or "").strip().upper()
    _check_ct_slices(datasets)
    _check_codec(first, str(first.filename))

    iop = np.asarray(first.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), dtype=float)
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    positions = []
    for index, ds in enumerate(datasets):
        ipp = ds.get("ImagePositionPatient")
        if ipp is None:
            location = float(ds.get("SliceLocation", ds.get("InstanceNumber", index)))
            positions.append(np.array([0.0, 0.0, location]))
        else:
            positions.append(np.asarray(ipp, dtype=float))
    positions_arr = np.asarray(positions)
    distance = positions_arr @ normal
    order = np.argsort(distance, kind="stable")
    datasets = [datasets[i] for i in order]
    distance = distance[order]
    positions_arr = positions_arr[order]

    keep = np.concatenate([[True], np.diff(distance) > 1e-3])
    report.duplicate_slices = int((~keep).sum())
    if report.duplicate_slices:
        report.warnings.append(f"{report.duplicate_slices} slice(s) with a duplicate position were dropped")
    datasets = [ds for ds, k in zip(datasets, keep, strict=True) if k]
    distance, positions_arr = distance[keep], positions_arr[keep]
    report.n_files = len(datasets)

    tilt = float(first.get("GantryDetectorTilt", 0.0) or 0.0)
    if len(datasets) > 1:
        step = positions_arr[-1] - positions_arr[0]
        cos_angle = abs(float(step @ normal)) / max(float(np.linalg.norm(step)), 1e-9)
        geometric_tilt = float(np.degrees(np.arccos(min(cos_angle, 1.0))))
        if geometric_tilt > 0.5:
            tilt = tilt if abs(tilt) > 0 else geometric_tilt
    report.gantry_tilt_deg = tilt
    if abs(tilt) > 0.01:
        report.warnings.append(
            f"gantry tilt of {tilt:.1f} degrees: slices are sheared; geometry is not corrected (volumes are still "
            "right, positions are approximate)"
        )

    rows, cols = int(first.Rows), int(first.Columns)
    rescale = [
        (float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)) for ds in datasets
    ]
    integer_hu = all(slope == 1.0 and intercept == int(intercept) for slope, intercept in rescale)
    # int16 output when HU are integers (the usual case): half the memory, no float round trip
    volume = np.empty((len(datasets), rows, cols), dtype=np.int16 if integer_hu else np.float32)
    padded_voxels = 0
    for k, (ds, (slope, intercept)) in enumerate(zip(datasets, rescale, strict=True)):
        if int(ds.Rows) != rows or int(ds.Columns) != cols:
            raise ImagingError(
                f"slice {Path(ds.filename).name} is {ds.Rows}x{ds.Columns}, expected {rows}x{cols} like the rest "
                f"of series in {report.source}"
            )
        try:
            raw = ds.pixel_array
        except Exception as exc:  # decoder errors come as several types
            raise ImagingError(f"cannot decode pixel data of {Path(ds.filename).name}: {exc}") from exc
        if integer_hu:
            hu = raw.astype(np.int32) + int(intercept)
            if hu.min() < -32768 or hu.max() > 32767:  # cannot be int16: fall back to float32
                volume = volume.astype(np.float32)
                integer_hu = False
        else:
            hu = raw.astype(np.float32) * slope + intercept
        padding = ds.get("PixelPaddingValue")
        if padding is not None:
            is_padding = raw == padding
            padded_voxels += int(is_padding.sum())
            hu[is_padding] = AIR_HU
        volume[k] = hu
    report.padding_fraction = padded_voxels / volume.size

    spacing_z = float(first.get("SliceThickness", 1.0) or 1.0)
    if len(datasets) > 1:
        gaps = np.diff(distance)
        spacing_z = float(np.median(gaps))
        n_target = int(round((distance[-1] - distance[0]) / spacing_z)) + 1
        if n_target > len(datasets):
            report.missing_slices = n_target - len(datasets)
            report.warnings.append(
                f"{report.missing_slices} missing slice(s) (gaps up to {gaps.max():.2f} mm, median {spacing_z:.2f} mm)"
                " were filled by linear interpolation"
            )
            filled = _fill_gaps(volume, distance, distance[0] + spacing_z * np.arange(n_target))
            volume = np.rint(filled).astype(np.int16) if integer_hu else filled.astype(np.float32)
        elif np.ptp(gaps) > 0.05 * spacing_z:
            report.warnings.append(f"uneven slice spacing {gaps.min():.2f}..{gaps.max():.2f} mm; median used")

    image = sitk.GetImageFromArray(volume)
    spacing_xy = [float(v) for v in first.get("PixelSpacing", [1.0, 1.0])]
    image.SetSpacing((spacing_xy[1], spacing_xy[0], spacing_z))
    image.SetOrigin(tuple(float(v) for v in positions_arr[0]))
    image.SetDirection(tuple(np.column_stack([row, col, normal]).ravel()))
    return image, report


def _fill_gaps(volume: np.ndarray, distance: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Linear interpolation of slices at the ``target`` positions (mm along the normal)."""
    upper = np.clip(np.searchsorted(distance, target, side="left"), 1, len(distance) - 1)
    lower = upper - 1
    weight = ((target - distance[lower]) / (distance[upper] - distance[lower])).clip(0, 1).astype(np.float32)
    w = weight[:, None, None]
    return volume[lower] * (1 - w) + volume[upper] * w


def _replace_padding(image: sitk.Image, threshold: float, report: LoadReport) -> tuple[sitk.Image, float]:
    """Set voxels below ``threshold`` HU to air; return the image and the fraction replaced (plus DICOM padding)."""
    array = sitk.GetArrayFromImage(image)
    padded = array < threshold
    fraction = float(padded.mean()) if array.size else 0.0
    fraction += report.padding_fraction
    if not padded.any():
        return image, fraction
    array[padded] = AIR_HU
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out, fraction


def _orient_lps(image: sitk.Image) -> sitk.Image:
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if np.allclose(direction, np.eye(3), atol=1e-6):
        return image
    if np.allclose(np.abs(direction), np.round(np.abs(direction)), atol=1e-3):
        return sitk.DICOMOrient(image, "LPS")
    # Oblique: keep as is (resampling would blur); the caller sees the direction.
    return image
