"""Load a chest radiograph (CR/DX DICOM, or a JPEG/PNG teaching file) as display-ready pixels.

Public API
----------
``load_radiograph(source)``
    A DICOM file (path or :class:`pydicom.Dataset`) or an 8/16-bit JPEG/PNG -> :class:`Radiograph`.
``Radiograph``
    Display pixels plus what is known about them (spacing or why not, view, laterality, window, notes).
``RADIOGRAPH_CODEC_HINT``
    What to install when a compressed transfer syntax has no decoder.

The grey-scale pipeline (PS3.3 C.11, PS3.4 N.2) applied to DICOM pixel data
----------------------------------------------------------------------------
1. **Modality LUT**: a Modality LUT Sequence (LUT Descriptor ``[entries, first mapped, bits]``; values below the
   first mapped value take the first entry, above the last take the last entry), otherwise ``stored * RescaleSlope +
   RescaleIntercept`` (identity when absent). The sequence wins when both are present, as in pydicom.
2. **VOI LUT**: by default the VOI LUT Sequence when present (``prefer_lut=True``), else the window (centre, width)
   number ``voi_index`` of Window Center/Width (several windows are listed in the notes with their explanations),
   with VOI LUT Function ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID`` (PS3.3 C.11.2.1.2-3). The output is
   scaled to 0-1 (0 = lowest output of the window, 1 = highest). Without any VOI the window is the minimum-maximum of
   the modality values (stated in the notes).
3. **Presentation / polarity**: the output is inverted (``1 - v``) when the Photometric Interpretation is
   ``MONOCHROME1`` or the Presentation LUT Shape is ``INVERSE``. These describe the same inversion (PS3.3
   C.8.11.6.1.2: INVERSE *shall* accompany MONOCHROME1), so it is applied once; a mismatch is noted.

The result ``pixels`` is ``float32`` in 0-1 where 1 is displayed white (bone bright, lungs dark). The chain is
evaluated once per possible stored value and then applied with a single table look-up, which is exact for integer
pixel data and faster than evaluating it on every pixel (see ``docs/benchmarks.md``); float pixel data and
stored ranges wider than ``2**20`` values are computed pixel by pixel.

Pixel spacing (mm, ``(row, column)``) follows PS3.3 C.8.11.7 / 10.7.1.3:

* ``PixelSpacing`` present and positive: used (calibrated or as given; ``PixelSpacingCalibrationType`` noted).
* otherwise ``ImagerPixelSpacing`` (detector plane) divided by the estimated radiographic magnification factor:
  ``EstimatedRadiographicMagnificationFactor`` when present, else ``DistanceSourceToDetector /
  DistanceSourceToPatient``; when neither is known the detector spacing is returned as is, with that stated.
* Zero, negative, non-numeric or wrongly sized values (e.g. ``"0.000\\0.000"``) are rejected with the reason;
  Secondary Capture objects and JPEG/PNG files carry no spacing (``spacing_mm=None`` and the reason).

Files without a file meta header are read (``force=True``) and their transfer syntax is inferred from the
encoding of the data set (noted). Compressed transfer syntaxes are decoded by pydicom's plugins: JPEG 2000 by
pylibjpeg-openjpeg, JPEG lossless/baseline by GDCM (python-gdcm), JPEG-LS by pyjpegls (CharLS); a missing decoder
raises :class:`~kicc_analysis.errors.MissingCodecError` naming the transfer syntax and what to install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from kicc_analysis.errors import ImagingError, MissingCodecError

__all__ = ["RADIOGRAPH_CODEC_HINT", "RASTER_SUFFIXES", "Radiograph", "load_radiograph"]

RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SECONDARY_CAPTURE_UIDS = {
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
}
RADIOGRAPH_CODEC_HINT = (
    "install the decoders into the environment: `pip install pylibjpeg pylibjpeg-openjpeg` (JPEG 2000), "
    "`pip install python-gdcm` (JPEG lossless/baseline, also JPEG-LS), `pip install pyjpegls` (JPEG-LS)"
)
#: largest stored-value range evaluated as a look-up table (beyond it the chain runs pixel by pixel)
MAX_LUT_ENTRIES = 1 << 20
_VIEW_CODES = {  # ViewCodeSequence code meanings (SNOMED/DICOM CID 4010) -> ViewPosition terms
    "postero-anterior": "PA",
    "antero-posterior": "AP",
    "left lateral": "LL",
    "right lateral": "RL",
    "lateral": "LATERAL",
}


@dataclass(frozen=True)
class Radiograph:
    """A radiograph ready for display, with what is known about its geometry and rendering.

    Attributes
    ----------
    pixels : ndarray of float32, shape (rows, columns)
        Display values 0-1 (1 = white) after the Modality LUT, VOI LUT and polarity.
    spacing_mm : tuple of float or None
        (row, column) pixel spacing in mm, or ``None`` (see ``spacing_reason``).
    spacing_source : str
        ``"PixelSpacing"``, ``"ImagerPixelSpacing/magnification"``, ``"ImagerPixelSpacing"`` or ``""``.
    spacing_reason : str
        Why the spacing is what it is (or why it is absent).
    magnification : float or None
        Estimated radiographic magnification factor used (detector spacing / returned spacing).
    view_position : str
        ``PA``, ``AP``, ``LL``, ``RL``, ``LATERAL``... or ``""`` when unknown.
    laterality : str
        Image Laterality / Laterality (``L``, ``R``, ``B``...) or ``""``.
    photometric_interpretation : str
        As stored (``MONOCHROME1``, ``MONOCHROME2``; ``RGB`` etc. for colour teaching files converted to grey).
    inverted : bool
        Whether the polarity inversion was applied.
    window : dict
        The VOI used: ``kind`` (``"window"``, ``"voi_lut_sequence"``, ``"min-max"``, ``"none"``) and its parameters
        (``center``, ``width``, ``function``, ``explanation``, ``index``, ``n_available``).
    burned_in_annotation : str
        ``"YES"``, ``"NO"`` or ``"unknown"`` (element absent).
    modality : str
        ``CR``, ``DX``... (``""`` for raster files).
    presentation_intent : str
        ``FOR PRESENTATION``, ``FOR PROCESSING`` or ``""``.
    sop_class_uid, transfer_syntax : str
        As read (transfer syntax inferred when the file has no meta header).
    source : str
        File name (no folder), or ``"<dataset>"``.
    notes : list of str
        Everything noteworthy met while loading (inferred transfer syntax, rejected spacing, several windows...).
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    spacing_source: str
    spacing_reason: str
    magnification: float | None
    view_position: str
    laterality: str
    photometric_interpretation: str
    inverted: bool
    window: dict[str, Any]
    burned_in_annotation: str
    modality: str
    presentation_intent: str
    sop_class_uid: str
    transfer_syntax: str
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the image."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    def to_uint8(self) -> np.ndarray:
        """Display pixels as 8-bit (0-255), e.g. to save a PNG."""
        return np.rint(np.clip(self.pixels, 0.0, 1.0) * 255.0).astype(np.uint8)

    def summary(self) -> dict[str, Any]:
        """Metadata as a flat dict (no pixels, no identifiers)."""
        return {
            "source": self.source,
            "rows": self.shape[0],
            "columns": self.shape[1],
            "modality": self.modality,
            "view_position": self.view_position,
            "laterality": self.laterality,
            "photometric_interpretation": self.photometric_interpretation,
            "inverted": self.inverted,
            "window": self.window.get("kind", ""),
            "spacing_mm": self.spacing_mm,
            "spacing_source": self.spacing_source,
            "spacing_reason": self.spacing_reason,
            "magnification": self.magnification,
            "burned_in_annotation": self.burned_in_annotation,
            "presentation_intent": self.presentation_intent,
            "transfer_syntax": self.transfer_syntax,
            "notes": "; ".join(self.notes),
        }


# --------------------------------------------------------------------------- entry point


def load_radiograph(
    source: str | Path | Dataset,
    *,
    voi_index: int = 0,
    prefer_lut: bool = True,
) -> Radiograph:
    """Load one radiograph as display-ready pixels plus its geometry and rendering facts.

    Parameters
    ----------
    source : path or pydicom Dataset
        A DICOM file (with or without file meta header) or a JPEG/PNG/TIFF/BMP raster image.
    voi_index : int
        Which window (centre/width pair) or VOI LUT to use when the file has several (0 = the first, the default
        by PS3.3 C.11.2.1.2).
    prefer_lut : bool
        Use the VOI LUT Sequence rather than the window when both are present (pydicom's default).

    Returns
    -------
    Radiograph

    Raises
    ------
    ImagingError
        Missing file, not DICOM and not a readable image, no pixel data, multi-frame or colour data that cannot be
        shown as one grey image, an invalid LUT. The message names the file, the element and what was found.
    MissingCodecError
        Compressed pixel data without an installed decoder (message names the transfer syntax and the install).

    Examples
    --------
    >>> import numpy as np
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 2, 16, 12, 11
    >>> ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME1"
    >>> ds.WindowCenter, ds.WindowWidth, ds.ImagerPixelSpacing = 2048, 4096, [0.15, 0.15]
    >>> ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = 1800, 1500
    >>> ds.PixelData = np.array([[0, 1024], [2048, 4095]], dtype=np.uint16).tobytes()
    >>> xr = load_radiograph(ds)
    >>> np.round(xr.pixels, 3).tolist()   # MONOCHROME1: low stored values are displayed white
    [[1.0, 0.75], [0.5, 0.0]]
    >>> xr.spacing_mm, xr.magnification
    ((0.125, 0.125), 1.2)
    """
    if isinstance(source, Dataset):
        return _from_dataset(source, "<dataset>", voi_index=voi_index, prefer_lut=prefer_lut, notes=[])
    path = Path(source)
    if not path.is_file():
        raise ImagingError(f"{path}: radiograph file not found")
    notes: list[str] = []
    try:
        ds = pydicom.dcmread(path, force=False)
    except InvalidDicomError:
        if path.suffix.lower() in RASTER_SUFFIXES:
            return _from_raster(path)
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:  # noqa: BLE001 - any parser failure is reported in one line
            raise ImagingError(
                f"{path.name}: neither a DICOM file nor a JPEG/PNG image ({type(exc).__name__})"
            ) from exc
        if "PixelData" not in ds and "Rows" not in ds:
            if path.suffix.lower() in RASTER_SUFFIXES or _looks_like_raster(path):
                return _from_raster(path)
            raise ImagingError(
                f"{path.name}: neither a DICOM file (no 'DICM' preamble, no image elements) nor an image"
            ) from None
        notes.append("no DICOM preamble/file meta header: read as a raw data set")
    except Exception as exc:  # noqa: BLE001
        raise ImagingError(f"{path.name}: cannot be read as DICOM: {type(exc).__name__}: {exc}") from exc
    return _from_dataset(ds, path.name, voi_index=voi_index, prefer_lut=prefer_lut, notes=notes)


# --------------------------------------------------------------------------- raster teaching files


def _looks_like_raster(path: Path) -> bool:
    head = path.read_bytes()[:8]
    return head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG")


def _from_raster(path: Path) -> Radiograph:
    from PIL import Image, UnidentifiedImageError

    notes = ["raster image (JPEG/PNG): no DICOM header, no LUTs; pixel values shown as stored"]
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if arr.max() > 255 else 255.0
            else:
                if mode not in ("L", "1", "P", "LA"):
                    notes.append(f"colour image (mode {mode}) converted to grey (ITU-R 601-2 luma)")
                arr = np.asarray(img.convert("L"), dtype=np.float64)
                top = 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise ImagingError(f"{path.name}: not a readable JPEG/PNG image ({exc})") from exc
    return Radiograph(
        pixels=(arr / top).astype(np.float32),
        spacing_mm=None,
        spacing_source="",
        spacing_reason="raster image (JPEG/PNG) carries no pixel spacing",
        magnification=None,
        view_position="",
        laterality="",
        photometric_interpretation="MONOCHROME2" if mode in ("L", "1", "I;16", "I;16B", "I;16L", "I") else mode,
        inverted=False,
        window={"kind": "none"},
        burned_in_annotation="unknown",
        modality="",
        presentation_intent="",
        sop_class_uid="",
        transfer_syntax="",
        source=path.name,
        notes=notes,
    )


# --------------------------------------------------------------------------- DICOM


def _ensure_transfer_syntax(ds: Dataset, notes: list[str]) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = True, True
    inferred = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = inferred
    notes.append(f"no Transfer Syntax UID in the file meta: inferred {inferred.name} from the data set encoding")
    return str(inferred)


def _check_decoder(ts: str, name: str) -> None:
    uid = UID(ts)
    if not uid.is_compressed:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise MissingCodecError(f"{name}: transfer syntax {ts} ({uid.name}) is not supported by pydicom") from exc
    if not decoder.is_available:
        raise MissingCodecError(
            f"{name}: pixel data compressed as {uid.name} ({ts}) but no decoder is installed; {RADIOGRAPH_CODEC_HINT}"
        )


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, None)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _view_position(ds: Dataset, notes: list[str]) -> str:
    view = _text(ds, "ViewPosition").upper()
    if view:
        return view
    for item in ds.get("ViewCodeSequence", []) or []:
        meaning = str(item.get("CodeMeaning", "")).strip().lower()
        for text, term in _VIEW_CODES.items():
            if text in meaning:
                notes.append(f"view position taken from ViewCodeSequence ('{meaning}')")
                return term
    return ""


def _numbers(value: Any) -> list[float] | None:
    if value is None:
        return None
    items = list(value) if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _valid_spacing(ds: Dataset, keyword: str) -> tuple[tuple[float, float] | None, str]:
    """(spacing, problem) of one spacing element; problem is '' when valid, 'absent' when missing."""
    if keyword not in ds:
        return None, "absent"
    raw = ds[keyword].value
    numbers = _numbers(raw)
    shown = "\\".join(str(v) for v in raw) if isinstance(raw, list | pydicom.multival.MultiValue) else str(raw)
    if not numbers or len(numbers) != 2:
        return None, f"{keyword} '{shown}' is not two numbers"
    if not all(math.isfinite(v) and v > 0 for v in numbers):
        return None, f"{keyword} '{shown}' is not positive"
    return (numbers[0], numbers[1]), ""


def _magnification(ds: Dataset) -> tuple[float | None, str]:
    erm = _numbers(ds.get("EstimatedRadiographicMagnificationFactor", None))
    if erm and math.isfinite(erm[0]) and erm[0] >= 1.0:
        return erm[0], "EstimatedRadiographicMagnificationFactor"
    sid = _numbers(ds.get("DistanceSourceToDetector", None))
    sod = _numbers(ds.get("DistanceSourceToPatient", None))
    if sid and sod and sod[0] > 0 and sid[0] >= sod[0]:
        return sid[0] / sod[0], f"DistanceSourceToDetector/DistanceSourceToPatient = {sid[0]:g}/{sod[0]:g} mm"
    return None, ""


def _spacing(ds: Dataset, notes: list[str]) -> tuple[tuple[float, float] | None, str, str, float | None]:
    """(spacing_mm, source, reason, magnification)."""
    problems = []
    pixel, problem = _valid_spacing(ds, "PixelSpacing")
    if pixel is not None:
        calibration = _text(ds, "PixelSpacingCalibrationType")
        imager, _ = _valid_spacing(ds, "ImagerPixelSpacing")
        if calibration:
            reason = f"PixelSpacing calibrated ({calibration}: {_text(ds, 'PixelSpacingCalibrationDescription')})"
        elif imager is not None and np.allclose(imager, pixel):
            reason = "PixelSpacing equals ImagerPixelSpacing: detector plane, not corrected for magnification"
        else:
            reason = "PixelSpacing as stored"
        return pixel, "PixelSpacing", reason, None
    if problem != "absent":
        problems.append(problem)
        notes.append(f"{problem}: ignored")
    imager, problem = _valid_spacing(ds, "ImagerPixelSpacing")
    if imager is not None:
        factor, how = _magnification(ds)
        if factor is not None:
            spacing = (imager[0] / factor, imager[1] / factor)
            reason = f"ImagerPixelSpacing / magnification {factor:.4g} ({how})"
            return spacing, "ImagerPixelSpacing/magnification", reason, factor
        reason = "ImagerPixelSpacing at the detector; magnification unknown (no source distances): not corrected"
        return imager, "ImagerPixelSpacing", reason, None
    if problem != "absent":
        problems.append(problem)
        notes.append(f"{problem}: ignored")
    sop = _text(ds, "SOPClassUID")
    if problems:
        reason = "; ".join(problems)
    elif sop in SECONDARY_CAPTURE_UIDS:
        reason = "Secondary Capture object without PixelSpacing/ImagerPixelSpacing: size in mm unknown"
    else:
        reason = "no PixelSpacing or ImagerPixelSpacing element"
    return None, "", reason, None


def _modality_lut(ds: Dataset, name: str, values: np.ndarray) -> tuple[np.ndarray, str]:
    """Modality LUT applied to ``values`` (float64) and a description."""
    seq = ds.get("ModalityLUTSequence", None)
    if seq:
        item = seq[0]
        lut, first, _bits = _lut_item(item, name, "ModalityLUTSequence")
        index = np.clip(np.rint(values) - first, 0, len(lut) - 1).astype(np.int64)
        return lut[index], f"Modality LUT Sequence ({len(lut)} entries, type {_text(item, 'ModalityLUTType') or '?'})"
    slope = _numbers(ds.get("RescaleSlope", None))
    intercept = _numbers(ds.get("RescaleIntercept", None))
    s = slope[0] if slope else 1.0
    b = intercept[0] if intercept else 0.0
    if s == 1.0 and b == 0.0:
        return values, "identity"
    return values * s + b, f"rescale {s:g} x + {b:g}"


def _lut_item(item: Dataset, name: str, where: str) -> tuple[np.ndarray, int, int]:
    descriptor = _numbers(item.get("LUTDescriptor", None))
    if not descriptor or len(descriptor) != 3 or "LUTData" not in item:
        raise ImagingError(f"{name}: {where} item lacks a valid LUTDescriptor (3 values) or LUTData")
    entries, first, bits = (int(v) for v in descriptor)
    entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2**16 entries
    raw = item["LUTData"].value
    if isinstance(raw, bytes | bytearray):
        dtype = np.uint8 if bits <= 8 and len(raw) == entries else np.uint16
        lut = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    else:
        lut = np.asarray(raw if isinstance(raw, list | pydicom.multival.MultiValue) else [raw], dtype=np.float64)
    if lut.size < entries:
        raise ImagingError(f"{name}: {where} LUTData has {lut.size} values, LUTDescriptor says {entries}")
    return lut[:entries], first, bits


def _voi(
    ds: Dataset,
    name: str,
    values: np.ndarray,
    *,
    voi_index: int,
    prefer_lut: bool,
    notes: list[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """VOI transformation of modality values (float64) to 0-1 and the description of the VOI used."""
    seq = ds.get("VOILUTSequence", None)
    centers = _numbers(ds.get("WindowCenter", None))
    widths = _numbers(ds.get("WindowWidth", None))
    has_window = bool(centers) and bool(widths)
    if seq and (prefer_lut or not has_window):
        if voi_index >= len(seq):
            raise ImagingError(f"{name}: VOI LUT number {voi_index} requested, the file has {len(seq)}")
        item = seq[voi_index]
        lut, first, bits = _lut_item(item, name, "VOILUTSequence")
        top = float(2**bits - 1)
        if lut.max() > top:
            notes.append(f"VOI LUT values exceed its {bits}-bit descriptor: scaled by the LUT maximum")
            top = float(lut.max())
        index = np.clip(np.rint(values) - first, 0, len(lut) - 1).astype(np.int64)
        if len(seq) > 1:
            notes.append(f"{len(seq)} VOI LUTs in the file; number {voi_index} used")
        window = {
            "kind": "voi_lut_sequence",
            "index": voi_index,
            "n_available": len(seq),
            "entries": len(lut),
            "first_mapped": first,
            "bits": bits,
            "explanation": _text(item, "LUTExplanation"),
        }
        return lut[index] / top, window
    if has_window:
        n = min(len(centers), len(widths))
        if voi_index >= n:
            raise ImagingError(f"{name}: window number {voi_index} requested, the file has {n} (WindowCenter/Width)")
        center, width = centers[voi_index], widths[voi_index]
        function = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
        explanations = ds.get("WindowCenterWidthExplanation", None)
        explanations = (
            [str(e) for e in explanations]
            if isinstance(explanations, list | pydicom.multival.MultiValue)
            else ([str(explanations)] if explanations else [])
        )
        if n > 1:
            listed = ", ".join(
                f"{i}: {c:g}/{w:g}" + (f" ({explanations[i]})" if i < len(explanations) else "")
                for i, (c, w) in enumerate(zip(centers, widths, strict=False))
            )
            notes.append(f"{n} windows in the file (centre/width {listed}); number {voi_index} used")
        valid = width >= 1 if function == "LINEAR" else width > 0
        if valid and function in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            window = {
                "kind": "window",
                "center": center,
                "width": width,
                "function": function,
                "index": voi_index,
                "n_available": n,
                "explanation": explanations[voi_index] if voi_index < len(explanations) else "",
            }
            return _apply_window(values, center, width, function), window
        notes.append(f"window {center:g}/{width:g} with VOI LUT Function {function} unusable: min-max window used")
    low, high = float(np.min(values)), float(np.max(values))
    if not has_window and not seq:
        notes.append("no VOI (window or VOI LUT) in the file: window set to the minimum-maximum of the image")
    span = high - low if high > low else 1.0
    return (values - low) / span, {"kind": "min-max", "low": low, "high": high}


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 window functions, output scaled to 0-1."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    c, w = center - 0.5, width - 1.0
    if w == 0:  # width 1: a threshold at the centre
        return (values > c).astype(np.float64)
    out = (values - c) / w + 0.5
    out[values <= c - w / 2] = 0.0
    out[values > c + w / 2] = 1.0
    return out


def _pixel_array(ds: Dataset, name: str) -> np.ndarray:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImagingError(f"{name}: no Pixel Data element (a header-only object); expected a CR/DX image")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoder failures are reported in one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImagingError(f"{name}: pixel data cannot be decoded: {type(exc).__name__}: {first_line}") from exc
    return arr


def _from_dataset(ds: Dataset, name: str, *, voi_index: int, prefer_lut: bool, notes: list[str]) -> Radiograph:
    ts = _ensure_transfer_syntax(ds, notes)
    if "PixelData" in ds:
        _check_decoder(ts, name)
    arr = _pixel_array(ds, name)
    pi = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(_numbers(ds.get("NumberOfFrames", None) or [1])[0] or 1)
    if frames > 1:
        notes.append(f"{frames} frames: the first is shown")
        arr = arr[0]
    if samples > 1 or pi not in ("MONOCHROME1", "MONOCHROME2"):
        pixels = _colour_to_grey(ds, arr, pi, name, notes)
        window: dict[str, Any] = {"kind": "none"}
        inverted = False
    else:
        pixels, window = _grey_chain(ds, name, arr, voi_index=voi_index, prefer_lut=prefer_lut, notes=notes)
        shape = _text(ds, "PresentationLUTShape").upper()
        inverted = pi == "MONOCHROME1" or shape == "INVERSE"
        if pi == "MONOCHROME1" and shape == "IDENTITY":
            notes.append("MONOCHROME1 with Presentation LUT Shape IDENTITY (PS3.3 expects INVERSE): inverted")
        if pi == "MONOCHROME2" and shape == "INVERSE":
            notes.append("MONOCHROME2 with Presentation LUT Shape INVERSE: inverted")
        if inverted:
            np.subtract(np.float32(1.0), pixels, out=pixels)
    sop = _text(ds, "SOPClassUID")
    modality = _text(ds, "Modality").upper()
    if sop in SECONDARY_CAPTURE_UIDS:
        notes.append(f"Secondary Capture object with modality {modality or '(none)'}: a converted image")
    spacing, spacing_source, reason, factor = _spacing(ds, notes)
    burned = _text(ds, "BurnedInAnnotation").upper()
    return Radiograph(
        pixels=pixels,
        spacing_mm=spacing,
        spacing_source=spacing_source,
        spacing_reason=reason,
        magnification=factor,
        view_position=_view_position(ds, notes),
        laterality=_text(ds, "ImageLaterality").upper() or _text(ds, "Laterality").upper(),
        photometric_interpretation=pi,
        inverted=inverted,
        window=window,
        burned_in_annotation=burned if burned in ("YES", "NO") else "unknown",
        modality=modality,
        presentation_intent=_text(ds, "PresentationIntentType").upper(),
        sop_class_uid=sop,
        transfer_syntax=ts,
        source=name,
        notes=notes,
    )


def _grey_chain(
    ds: Dataset, name: str, arr: np.ndarray, *, voi_index: int, prefer_lut: bool, notes: list[str]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Modality LUT then VOI, to float32 0-1 (before polarity), via one table look-up for integer pixels."""
    if arr.ndim != 2:
        raise ImagingError(f"{name}: expected a 2-D grey image, pixel data have shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer) and arr.size:
        low, high = int(arr.min()), int(arr.max())
        if high - low < MAX_LUT_ENTRIES:
            domain = np.arange(low, high + 1, dtype=np.float64)
            modality_values, _ = _modality_lut(ds, name, domain)
            table, window = _voi(ds, name, modality_values, voi_index=voi_index, prefer_lut=prefer_lut, notes=notes)
            table = table.astype(np.float32)
            if low >= 0:
                if low > 0:  # keep the index equal to the stored value: pad the table below the minimum
                    table = np.concatenate([np.zeros(low, dtype=np.float32), table])
                return table.take(arr), window
            return table.take(arr.astype(np.int64) - low), window
    values, _ = _modality_lut(ds, name, arr.astype(np.float64))
    out, window = _voi(ds, name, values, voi_index=voi_index, prefer_lut=prefer_lut, notes=notes)
    return out.astype(np.float32), window


def _colour_to_grey(ds: Dataset, arr: np.ndarray, pi: str, name: str, notes: list[str]) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if pi.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, pi, "RGB")
            notes.append(f"{pi} converted to RGB")
        grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        notes.append(f"colour image ({pi}) converted to grey (ITU-R 601 luma); no VOI applied")
        top = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        return (grey / top).astype(np.float32)
    if pi == "PALETTE COLOR":
        raise ImagingError(f"{name}: PALETTE COLOR radiographs are not supported (expected MONOCHROME1/2 or RGB)")
    raise ImagingError(f"{name}: photometric interpretation {pi} with pixel shape {arr.shape} is not a grey image")
