"""Write phantom CTs and synthetic radiographs as DICOM files with site-specific header habits.

Each of the six demo sites has a :class:`SiteProfile`: manufacturer and model, reconstruction kernel names, slice
spacing, pixel storage (signed with intercept 0 or unsigned with intercept -1024), padding outside a circular field
of view (-2048), an optional second thick soft-tissue series, the transfer syntax, and how it nests and names files.
Those are exactly the habits that make series selection and HU conversion non-trivial in a real multi-site
repository.

All UIDs come from :func:`pydicom.uid.generate_uid` with pydicom's registered root and deterministic entropy
sources (demo seed, pseudonym, role, index), so the same seed writes the same UIDs. No real identifiers are written:
PatientID and PatientName are the pseudonym, dates are shifted fictional dates, and
``PatientIdentityRemoved`` is ``YES``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from scipy import ndimage

from kicc_analysis.demo.phantom import ChestPhantom

__all__ = [
    "SITE_PROFILES",
    "SeriesGeometry",
    "SiteProfile",
    "WrittenSeries",
    "demo_uid",
    "radiograph_from_phantom",
    "write_ct_series",
    "write_ground_truth",
    "write_radiograph",
]

UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's registered UID root
IMPLEMENTATION_VERSION = "KICC_DEMO_1"


@dataclass(frozen=True)
class SiteProfile:
    """Header and file-layout habits of one demo site.

    Attributes
    ----------
    site : site code, e.g. ``"S01"``.
    manufacturer, model : (0008,0070) and (0008,1090).
    lung_kernel, soft_kernel : (0018,1210) ConvolutionKernel of the lung and soft-tissue reconstructions.
    slice_mm : slice spacing = thickness (mm) of the lung series in the default (low-resolution) demo: 6-9 mm, thicker
        than a clinical lung series so that quantifying the 522-patient demo fits the study budget (axial images
        look the same; see docs/demo.md).
    soft_series_mm : thickness (mm) of a second soft-tissue series, or ``None`` when the site sends only one series.
    unsigned : store ``HU + 1024`` as unsigned 12-bit with RescaleIntercept -1024 (else signed, intercept 0).
    padding : stored value outside a circular reconstruction field of view (``PixelPaddingValue``), or ``None``.
    implicit_vr : write Implicit VR Little Endian (else Explicit VR Little Endian).
    layout : file naming / nesting scheme, one of ``"nested_dcm"``, ``"bare_numbers"``, ``"flat"``, ``"dicomdir_like"``,
        ``"by_description"``, ``"uid_names"``.
    noise_hu : image noise (HU) of the lung reconstruction.
    radiograph_class : ``"DX"`` or ``"CR"``; CR sites write MONOCHROME1.
    """

    site: str
    manufacturer: str
    model: str
    lung_kernel: str
    soft_kernel: str
    slice_mm: float
    soft_series_mm: float | None
    unsigned: bool
    padding: int | None
    implicit_vr: bool
    layout: str
    noise_hu: float
    radiograph_class: str = "DX"


SITE_PROFILES: dict[str, SiteProfile] = {
    p.site: p
    for p in (
        SiteProfile("S01", "SIEMENS", "SOMATOM Definition Edge", "B70f", "B30f", 7.5, 10.0, False, -2048, False,
                    "nested_dcm", 18.0, "DX"),
        SiteProfile("S02", "GE MEDICAL SYSTEMS", "Revolution CT", "LUNG", "STANDARD", 7.5, None, False, None, False,
                    "bare_numbers", 16.0, "DX"),
        SiteProfile("S03", "Philips", "iCT 256", "YB", "B", 6.0, None, True, None, False, "flat", 14.0, "CR"),
        SiteProfile("S04", "TOSHIBA", "Aquilion ONE", "FC52", "FC08", 9.0, 10.0, False, -2048, True,
                    "dicomdir_like", 15.0, "CR"),
        SiteProfile("S05", "SIEMENS", "SOMATOM Force", "Br64", "Br40", 7.5, None, False, -2048, False,
                    "by_description", 12.0, "DX"),
        SiteProfile("S06", "GE MEDICAL SYSTEMS", "Discovery CT750 HD", "BONEPLUS", "STANDARD", 7.5, None, False,
                    None, True, "uid_names", 16.0, "DX"),
        # eleven smaller hospitals: other scanners, the same six file-layout habits
        SiteProfile("S07", "SIEMENS", "SOMATOM go.Top", "Bl57", "Br40", 7.5, None, False, -2048, False,
                    "nested_dcm", 15.0, "DX"),
        SiteProfile("S08", "GE MEDICAL SYSTEMS", "Optima CT660", "LUNG", "STANDARD", 7.5, None, False, None, False,
                    "bare_numbers", 17.0, "DX"),
        SiteProfile("S09", "Philips", "Ingenuity CT", "L", "B", 6.0, None, True, None, False, "flat", 15.0, "CR"),
        SiteProfile("S10", "CANON_MEDICAL", "Aquilion Prime SP", "FC56", "FC13", 9.0, None, False, -2048, True,
                    "dicomdir_like", 16.0, "DX"),
        SiteProfile("S11", "SIEMENS", "SOMATOM Definition AS+", "I70f", "I30f", 7.5, None, False, -2048, False,
                    "by_description", 14.0, "DX"),
        SiteProfile("S12", "GE MEDICAL SYSTEMS", "Revolution EVO", "BONEPLUS", "STANDARD", 7.5, None, False, None,
                    True, "uid_names", 16.0, "CR"),
        SiteProfile("S13", "SIEMENS", "SOMATOM Drive", "Br59", "Br36", 6.0, None, False, -2048, False,
                    "by_description", 13.0, "DX"),
        SiteProfile("S14", "Philips", "Brilliance 64", "YC", "B", 7.5, None, True, None, False, "flat", 17.0, "DX"),
        SiteProfile("S15", "GE MEDICAL SYSTEMS", "LightSpeed VCT", "LUNG", "STANDARD", 7.5, None, False, None, False,
                    "bare_numbers", 18.0, "CR"),
        SiteProfile("S16", "CANON_MEDICAL", "Aquilion ONE GENESIS", "FC86", "FC08", 9.0, None, False, -2048, True,
                    "dicomdir_like", 14.0, "DX"),
        SiteProfile("S17", "SIEMENS", "SOMATOM Perspective", "B60f", "B30f", 7.5, None, False, -2048, False,
                    "nested_dcm", 17.0, "DX"),
    )
}  # fmt: skip


def demo_uid(*entropy: object) -> str:
    """Deterministic, valid DICOM UID from entropy sources (pydicom root + SHA-512 of the sources)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(e) for e in entropy])


@dataclass(frozen=True)
class SeriesGeometry:
    """Geometry of a CT series in LPS (identity direction cosines).

    ``origin_mm`` is the centre of voxel (0, 0, 0) as (x, y, z); ``spacing_mm`` is (z, y, x) like the arrays.
    """

    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]

    def position(self, k: int) -> tuple[float, float, float]:
        """ImagePositionPatient (x, y, z) of slice ``k`` (k = 0 is the most caudal slice)."""
        x0, y0, z0 = self.origin_mm
        return (x0, y0, z0 + k * self.spacing_mm[0])


@dataclass(frozen=True)
class WrittenSeries:
    """What :func:`write_ct_series` / :func:`write_radiograph` wrote."""

    series_uid: str
    study_uid: str
    modality: str
    files: tuple[str, ...]
    geometry: SeriesGeometry | None = None


def geometry_for(phantom: ChestPhantom, table_z_mm: float) -> SeriesGeometry:
    """Scanner geometry of a phantom: in-plane centre on the isocentre, first (caudal) slice at ``table_z_mm``."""
    nz, ny, nx = phantom.hu.shape
    sz, sy, sx = phantom.spacing_mm
    x0 = -(nx - 1) / 2.0 * sx
    y0 = -(ny - 1) / 2.0 * sy
    return SeriesGeometry((round(x0, 4), round(y0, 4), round(table_z_mm, 4)), (sz, sy, sx), (nz, ny, nx))


def _ds_value(v: float) -> str:
    """Decimal String of at most 16 characters."""
    s = f"{v:.6g}"
    return s if len(s) <= 16 else f"{v:.4e}"


def _base_dataset(
    sop_class: str,
    implicit_vr: bool,
    patient: dict,
    study: dict,
    site: SiteProfile,
) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_PREFIX + "1"
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = study["date"]
    ds.SeriesDate = study["date"]
    ds.AcquisitionDate = study["date"]
    ds.ContentDate = study["date"]
    ds.StudyTime = study["time"]
    ds.SeriesTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.Manufacturer = site.manufacturer
    ds.ManufacturerModelName = site.model
    ds.InstitutionName = f"KICC-19 demo site {site.site}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study["description"]
    ds.PatientName = patient["subjid"]
    ds.PatientID = patient["subjid"]
    ds.PatientBirthDate = ""
    ds.PatientSex = patient["sex"]
    ds.PatientAge = patient["age"]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "KICC-19 demo: synthetic patient, pseudonymous ID, shifted dates"
    ds.BurnedInAnnotation = "NO"
    ds.StudyInstanceUID = study["uid"]
    ds.StudyID = study["study_id"]
    ds.BodyPartExamined = "CHEST"
    return ds


class _FastWriter:
    """Write many files that share one header except a few elements and the pixel data.

    pydicom's ``save_as`` re-encodes ~60 elements per file (~5 ms); a 60-slice series x 230 series would spend a
    minute there. Here the static elements are encoded once with pydicom's own element writer and only the
    per-slice elements are encoded per file. The output is byte-identical to ``Dataset.save_as(...,
    enforce_file_format=True)`` (tested).
    """

    def __init__(self, ds: Dataset, dynamic: Sequence[str]) -> None:
        self.implicit = ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        correct_ambiguous_vr(ds, True)
        self.ds = ds
        dyn_tags = {ds.data_element(k).tag for k in dynamic}
        self.chunks: list[bytes | str] = []
        static: list[DataElement] = []
        for elem in ds:  # ascending tag order
            if elem.tag in dyn_tags:
                if static:
                    self.chunks.append(self._encode(static, self.implicit))
                    static = []
                self.chunks.append(elem.keyword)
            elif elem.tag == 0x7FE00010:
                if static:
                    self.chunks.append(self._encode(static, self.implicit))
                    static = []
                self.chunks.append("__pixels__")
                self.pixel_vr = elem.VR
            else:
                static.append(elem)
        if static:
            self.chunks.append(self._encode(static, self.implicit))
        meta = ds.file_meta
        self.meta_before = self._encode([meta[t] for t in meta.keys() if t < 0x00020003 and t != 0x00020000], False)
        self.meta_after = self._encode([meta[t] for t in meta.keys() if t > 0x00020003], False)

    @staticmethod
    def _encode(elems: Sequence[DataElement], implicit: bool) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = implicit
        for elem in elems:
            write_data_element(fp, elem)
        return fp.getvalue()

    def write(self, path: Path, sop_uid: str, values: dict, pixels: bytes) -> None:
        uid_elem = DataElement(0x00020003, "UI", sop_uid)
        meta_body = self.meta_before + self._encode([uid_elem], False) + self.meta_after
        group_len = b"\x02\x00\x00\x00UL\x04\x00" + len(meta_body).to_bytes(4, "little")
        parts = [b"\x00" * 128, b"DICM", group_len, meta_body]
        for chunk in self.chunks:
            if isinstance(chunk, bytes):
                parts.append(chunk)
            elif chunk == "__pixels__":
                n = len(pixels)
                pad = b"\x00" if n % 2 else b""
                if self.implicit:
                    parts.append(b"\xe0\x7f\x10\x00" + (n + len(pad)).to_bytes(4, "little"))
                else:
                    parts.append(
                        b"\xe0\x7f\x10\x00"
                        + self.pixel_vr.encode()
                        + b"\x00\x00"
                        + (n + len(pad)).to_bytes(4, "little")
                    )
                parts.append(pixels + pad)
            else:
                self.ds[chunk].value = values[chunk]
                parts.append(self._encode([self.ds[chunk]], self.implicit))
        path.write_bytes(b"".join(parts))


def write_ct_series(
    phantom: ChestPhantom,
    folder: Path,
    *,
    site: SiteProfile,
    patient: dict,
    study: dict,
    series_number: int,
    role: str,
    kernel: str,
    file_name: Callable[[int, str], str],
    table_z_mm: float = -300.0,
    entropy: Sequence[object] = (),
) -> WrittenSeries:
    """Write a phantom as a CT Image Storage series, one file per slice.

    Parameters
    ----------
    phantom : the volume (HU int16, (z, y, x)).
    folder : directory receiving the files (created).
    site : header habits (storage, padding, transfer syntax, manufacturer).
    patient : ``subjid``, ``sex`` (M/F/O) and ``age`` (e.g. ``"055Y"``).
    study : ``uid``, ``date`` (YYYYMMDD, shifted), ``time``, ``accession``, ``study_id``, ``description``.
    series_number : (0020,0011).
    role : ``"lung"`` or ``"soft_tissue"`` (only used in the description).
    kernel : ConvolutionKernel.
    file_name : ``file_name(instance_number, sop_uid) -> str`` (site naming scheme).
    table_z_mm : z (mm) of the most caudal slice centre.
    entropy : extra entropy sources for the UIDs (seed, pseudonym, study index...).

    Returns
    -------
    WrittenSeries
    """
    folder.mkdir(parents=True, exist_ok=True)
    geom = geometry_for(phantom, table_z_mm)
    nz, ny, nx = phantom.hu.shape
    sz, sy, sx = phantom.spacing_mm
    series_uid = demo_uid(*entropy, "series", series_number)
    frame_uid = demo_uid(*entropy, "frame")
    ds = _base_dataset(CTImageStorage, site.implicit_vr, patient, study, site)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{'LUNG' if role == 'lung' else 'MEDIASTINUM'} {sz:.1f} {kernel}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ConvolutionKernel = kernel
    ds.SliceThickness = _ds_value(sz)
    ds.SpacingBetweenSlices = _ds_value(sz)
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [_ds_value(sy), _ds_value(sx)]
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    if site.unsigned:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.RescaleIntercept = "-1024"
    else:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.RescaleIntercept = "0"
    if role == "lung":
        ds.WindowCenter, ds.WindowWidth = "-600", "1500"
    else:
        ds.WindowCenter, ds.WindowWidth = "40", "400"
    stored = phantom.hu.astype(np.int32)
    if site.unsigned:
        stored = np.clip(stored + 1024, 0, 4095).astype(np.uint16)
    else:
        stored = stored.astype(np.int16)
    if site.padding is not None:
        ds.PixelPaddingValue = int(site.padding)
        yy = (np.arange(ny) - (ny - 1) / 2.0) * sy
        xx = (np.arange(nx) - (nx - 1) / 2.0) * sx
        outside = (yy[:, None] ** 2 + xx[None, :] ** 2) > (min(ny * sy, nx * sx) / 2.0) ** 2
        stored = stored.copy()
        stored[:, outside] = site.padding
    ds.file_meta.MediaStorageSOPInstanceUID = demo_uid(*entropy, "sop", series_number, 0)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.InstanceNumber = nz
    ds.ImagePositionPatient = [_ds_value(p) for p in geom.position(0)]
    ds.SliceLocation = _ds_value(geom.position(0)[2])
    ds.PixelData = np.ascontiguousarray(stored[0]).tobytes()
    writer = _FastWriter(ds, dynamic=("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation"))
    files = []
    for k in range(nz):
        instance = nz - k  # scanners number from head to feet
        sop_uid = demo_uid(*entropy, "sop", series_number, k)
        pos = geom.position(k)
        path = folder / file_name(instance, sop_uid)
        writer.write(
            path,
            sop_uid,
            {
                "SOPInstanceUID": sop_uid,
                "InstanceNumber": instance,
                "ImagePositionPatient": [_ds_value(p) for p in pos],
                "SliceLocation": _ds_value(pos[2]),
            },
            np.ascontiguousarray(stored[k]).tobytes(),
        )
        files.append(str(path))
    return WrittenSeries(series_uid, study["uid"], "CT", tuple(files), geom)


def write_ground_truth(
    phantom: ChestPhantom, geometry: SeriesGeometry, folder: Path, series_uid: str
) -> tuple[str, str]:
    """Write ``<series_uid>_lung.nrrd`` and ``<series_uid>_lesion.nrrd`` with the series geometry (SimpleITK)."""
    folder.mkdir(parents=True, exist_ok=True)
    sz, sy, sx = geometry.spacing_mm
    out = []
    for name, arr in (("lung", phantom.lung_labels), ("lesion", phantom.lesion_labels)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((sx, sy, sz))
        img.SetOrigin(geometry.origin_mm)
        img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        path = folder / f"{series_uid}_{name}.nrrd"
        sitk.WriteImage(img, str(path), useCompression=True)
        out.append(str(path))
    return out[0], out[1]


def radiograph_from_phantom(phantom: ChestPhantom, size: int = 256, rng: np.random.Generator | None = None):
    """A PA chest radiograph (uint16, 12-bit, MONOCHROME2 sense) simulated as an attenuation line integral.

    Linear attenuation is taken proportional to ``(HU + 1000)`` (water 0.02 /mm, a ~60 keV effective energy),
    integrated along the antero-posterior axis, log-displayed, resampled to ``size`` x ``size`` (row 0 = superior,
    column 0 = patient right as on a PA film viewed in the standard orientation).
    Returns ``(pixels, pixel_spacing_mm)``.
    """
    sz, sy, sx = phantom.spacing_mm
    mu = np.clip(phantom.hu.astype(np.float32) + 1000.0, 0.0, None) * (0.02 / 1000.0)
    line = mu.sum(axis=1) * sy  # (z, x) optical depth
    proj = line[::-1, :]  # row 0 = superior
    height_mm, width_mm = proj.shape[0] * sz, proj.shape[1] * sx
    spacing = max(height_mm, width_mm) / size
    zoomed = ndimage.zoom(proj, (height_mm / spacing / proj.shape[0], width_mm / spacing / proj.shape[1]), order=1)
    canvas = np.empty((size, size), dtype=np.float32)
    pad_r = (size - zoomed.shape[0]) // 2
    pad_c = (size - zoomed.shape[1]) // 2
    zoomed = zoomed[:size, :size]
    canvas[:] = np.pad(
        zoomed, ((pad_r, size - zoomed.shape[0] - pad_r), (pad_c, size - zoomed.shape[1] - pad_c)), mode="edge"
    )
    img = canvas / max(float(canvas.max()), 1e-6)
    img = img**0.8
    if rng is not None:
        img = img + rng.normal(0.0, 0.01, img.shape).astype(np.float32)
    pixels = np.clip(np.rint(img * 3800.0 + 100.0), 0, 4095).astype(np.uint16)
    return pixels, spacing


def write_radiograph(
    pixels: np.ndarray,
    spacing_mm: float,
    path: Path,
    *,
    site: SiteProfile,
    patient: dict,
    study: dict,
    entropy: Sequence[object] = (),
) -> WrittenSeries:
    """Write one projection radiograph: DX (Digital X-Ray For Presentation) or CR (MONOCHROME1) per the site."""
    path.parent.mkdir(parents=True, exist_ok=True)
    is_cr = site.radiograph_class == "CR"
    sop_class = ComputedRadiographyImageStorage if is_cr else DigitalXRayImageStorageForPresentation
    ds = _base_dataset(sop_class, site.implicit_vr, patient, study, site)
    series_uid = demo_uid(*entropy, "series")
    sop_uid = demo_uid(*entropy, "sop")
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "CR" if is_cr else "DX"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SeriesDescription = "CHEST PA"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]  # PA film: columns run to the patient's left, rows to the feet
    ds.KVP = "120"
    if not is_cr:
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImagerPixelSpacing = [_ds_value(spacing_mm), _ds_value(spacing_mm)]
    ds.PixelSpacing = [_ds_value(spacing_mm), _ds_value(spacing_mm)]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    data = pixels
    if is_cr:
        ds.PhotometricInterpretation = "MONOCHROME1"  # high values displayed dark
        data = (4095 - pixels.astype(np.int32)).astype(np.uint16)
    else:
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    ds.PixelData = np.ascontiguousarray(data).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return WrittenSeries(series_uid, study["uid"], ds.Modality, (str(path),), None)


def study_date(admission: dt.date, day: int) -> str:
    """DICOM date (YYYYMMDD) of an imaging study ``day`` days after the (shifted) admission date."""
    return (admission + dt.timedelta(days=int(day))).strftime("%Y%m%d")
