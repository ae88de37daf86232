"""Burned-in text: tesseract (eng+kor) finds planted names and IDs in both polarities, with bounding boxes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from kicc_analysis.deid import ocr
from kicc_analysis.deid.audit import audit_repository

NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf")
pytestmark = pytest.mark.skipif(not ocr.tesseract_available(), reason="tesseract (Debian tesseract-ocr) not installed")

# planted tokens: (text drawn, polarity) -- a Latin name, a patient ID and a Hangul name, white-on-black and
# black-on-white
PLANTED = [("KIMMINSU", "white"), ("83920174", "black"), ("박서준", "white"), ("YOONJIHO", "black")]


def _image(text_polarity: list[tuple[str, str]]) -> np.ndarray:
    image = Image.new("L", (900, 700), 128)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(NANUM), 44) if NANUM.exists() else ImageFont.load_default(44)
    for k, (text, polarity) in enumerate(text_polarity):
        y = 40 + 160 * k
        background, ink = (0, 255) if polarity == "white" else (255, 0)
        draw.rectangle([30, y - 10, 560, y + 70], fill=background)
        draw.text((50, y), text, fill=ink, font=font)
    return (np.asarray(image, dtype=np.uint16) * 16).astype(np.uint16)


def _write(folder: Path, pixels: np.ndarray, names: tuple[str, str, str]) -> Path:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.Modality = "DX"
    ds.PatientName = f"{names[0]}^{names[2]}"
    ds.PatientID = names[1]
    ds.OtherPatientNames = names[2]
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_burned_in_words_found_in_both_polarities(tmp_path):
    pixels = _image(PLANTED)
    hits = ocr.burned_in_findings(pixels, {"KIMMINSU", "83920174", "박서준", "YOONJIHO"})
    read = {text.replace(" ", "") for _, text, _ in hits}
    found = [t for t, _ in PLANTED if any(t in r for r in read)]
    assert len(found) / len(PLANTED) >= 0.95, (found, read)  # the floor for burned-in tokens
    for _, _, box in hits:
        x, y, w, h = map(int, box.split(","))
        assert 0 <= x < 900 and 0 <= y < 700 and w > 0 and h > 0


def test_audit_reports_burned_in_text_with_bbox(tmp_path):
    (tmp_path / "repo").mkdir()
    _write(tmp_path / "repo", _image(PLANTED), ("KIMMINSU", "83920174", "박서준"))
    result = audit_repository(tmp_path / "repo", workers=1, show=False)
    burned = result.findings[result.findings["rule"].str.startswith("burned_in")]
    assert len(burned) >= 2 and (burned["bbox"] != "").all()
    assert not burned["preview"].str.contains("KIMMINSU|83920174").any()  # masked


def test_blank_image_has_no_burned_in_finding():
    assert ocr.burned_in_findings(np.full((300, 300), 500, dtype=np.uint16), {"KIMMINSU"}) == []


def test_skipped_with_warning_without_tesseract(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "repo").mkdir()
    with pytest.warns(UserWarning, match="tesseract"):
        result = audit_repository(tmp_path / "repo", workers=1, show=False)
    assert any("tesseract" in w for w in result.warnings)


# --- blanking by kicc deidentify ------------------------------------------------------------------------------------

NAMES = ("KIMMINSU", "83920174", "박서준")
HARMLESS = ("CHEST PA", "black")  # a view label: not identifying, kept unless the file is flagged YES


def _deidentify(tmp_path: Path, pixels: np.ndarray, flagged: str | None = None) -> tuple[dict, Path]:
    import json

    from kicc_analysis.deid.deidentify import deidentify_repository
    from kicc_analysis.deid.keys import new_key_file

    (tmp_path / "repo").mkdir()
    path = _write(tmp_path / "repo", pixels, NAMES)
    ds = pydicom.dcmread(path)
    ds.OperatorsName = "YOONJIHO"  # the fourth planted word: the operator's name, burned in
    if flagged is not None:
        ds.BurnedInAnnotation = flagged
    ds.save_as(path)
    new_key_file(tmp_path / "key")
    deidentify_repository(tmp_path / "repo", tmp_path / "out", tmp_path / "key", "S01", workers=1, ocr=True, show=False)
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"][0]
    return entry, tmp_path / "out" / entry["output"] if entry["output"] else tmp_path / "out"


def _outside(boxes: list[list[int]], shape: tuple[int, int]) -> np.ndarray:
    mask = np.ones(shape, dtype=bool)
    for x, y, w, h in boxes:
        mask[y : y + h, x : x + w] = False
    return mask


def test_deidentify_blanks_burned_in_text_in_both_polarities_and_hangul(tmp_path):
    pixels = _image([*PLANTED, HARMLESS])
    entry, written = _deidentify(tmp_path, pixels)
    assert entry["status"] == "written" and entry["pixels"] == "blanked"
    out = pydicom.dcmread(written)
    assert out.BurnedInAnnotation == "NO"
    after = out.pixel_array
    read = " ".join(line.text for line in ocr.read_lines(after))
    assert not [t for t, _ in PLANTED if ocr.normal(t) in ocr.normal(read)], read
    # every pixel outside the boxes is the input's; the boxes cover the planted lines and little else
    outside = _outside(entry["boxes"], pixels.shape)
    assert (after[outside] == pixels[outside]).all()
    assert len(entry["boxes"]) >= len(PLANTED) and (~outside).mean() < 0.25
    harmless_band = slice(40 + 160 * len(PLANTED) - 10, 40 + 160 * len(PLANTED) + 70)
    assert (after[harmless_band] == pixels[harmless_band]).all()  # the view label is not identifying: kept


def test_flagged_file_blanks_all_text_read(tmp_path):
    pixels = _image([HARMLESS, ("PORTABLE", "white")])
    entry, written = _deidentify(tmp_path, pixels, flagged="YES")
    assert entry["pixels"] == "blanked" and pydicom.dcmread(written).BurnedInAnnotation == "NO"
    read = " ".join(line.text for line in ocr.read_lines(pydicom.dcmread(written).pixel_array))
    assert "CHEST" not in read and "PORTABLE" not in read and len(entry["boxes"]) == 2


def test_flagged_file_without_readable_text_is_quarantined(tmp_path):
    entry, out = _deidentify(tmp_path, np.full((300, 300), 500, dtype=np.uint16), flagged="YES")
    assert entry["status"] == "quarantined" and entry["output"] is None
    assert entry["reason"] == "burned-in annotation YES, no text read to localise"
    assert not list(out.rglob("*.dcm"))


def test_clean_radiograph_written_unchanged_pixels(tmp_path):
    pixels = _image([HARMLESS, ("PORTABLE", "white")])
    entry, written = _deidentify(tmp_path, pixels)
    assert entry["pixels"] == "read" and (pydicom.dcmread(written).pixel_array == pixels).all()


def test_compressed_radiograph_blanked_written_uncompressed_clean_one_kept_compressed(tmp_path):
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    pixels = _image([("KIMMINSU", "white"), ("83920174", "black")])
    (tmp_path / "src").mkdir()
    source = pydicom.dcmread(_write(tmp_path / "src", pixels, NAMES))
    source.compress(RLELossless, generate_instance_uid=False)
    (tmp_path / "repo").mkdir()
    source.save_as(tmp_path / "repo" / "rle.dcm")
    from kicc_analysis.deid.deidentify import deidentify_repository
    from kicc_analysis.deid.keys import new_key_file, new_uid

    clean = pydicom.dcmread(_write(tmp_path / "src", _image([HARMLESS, ("PORTABLE", "white")]), NAMES))
    clean.SOPInstanceUID = clean.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    clean.compress(RLELossless, generate_instance_uid=False)
    clean.save_as(tmp_path / "repo" / "clean_rle.dcm")
    new_key_file(tmp_path / "key")
    run = deidentify_repository(tmp_path / "repo", tmp_path / "out", tmp_path / "key", "S01", workers=1, show=False)
    assert run.blanked == 1 and run.quarantined == 0 and run.written == 2
    key = (tmp_path / "key").read_bytes().strip()
    written = {str(d.SOPInstanceUID): d for d in map(pydicom.dcmread, (tmp_path / "out").rglob("*.dcm"))}
    assert written[new_uid(key, clean.SOPInstanceUID)].file_meta.TransferSyntaxUID == RLELossless  # nothing blanked
    out = written[new_uid(key, source.SOPInstanceUID)]
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    read = ocr.normal(" ".join(line.text for line in ocr.read_lines(out.pixel_array)))
    assert "kimminsu" not in read and "83920174" not in read
    changed = out.pixel_array != pixels
    assert changed.any() and changed.mean() < 0.2
    if shutil.which("dciodvfy"):  # Debian dicom3tools: the rewritten pixel module adds no error
        import re
        import subprocess

        def errors(path: Path) -> set[str]:
            text = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, errors="replace").stderr
            return {re.sub(r"\d+", "N", line) for line in text.splitlines() if line.startswith("Error")}

        blanked = next(
            p for p in (tmp_path / "out").rglob("*.dcm") if pydicom.dcmread(p).SOPInstanceUID == out.SOPInstanceUID
        )
        assert errors(blanked) <= errors(tmp_path / "repo" / "rle.dcm")


# --- a few slices of every CT series in the audit ---------------------------------------------------------------------


def _ct_series(folder: Path, texts: dict[int, str], n: int = 5) -> None:
    """``n`` CT slices (written in shuffled file order, positioned along z) with ``texts[k]`` burned into slice k."""
    from pydicom.uid import CTImageStorage

    series, study = generate_uid(), generate_uid()
    for k in range(n):
        image = Image.new("L", (320, 240), 20)
        if k in texts:
            draw = ImageDraw.Draw(image)
            font = ImageFont.truetype(str(NANUM), 30) if NANUM.exists() else ImageFont.load_default(30)
            draw.text((12, 12), texts[k], fill=250, font=font)
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "KIMMINSU^JIHO", "83920174"
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 5.0 * k], [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = n - k  # instance numbers run the other way: position decides
        pixels = np.asarray(image, dtype=np.uint16) * 8
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = pixels.tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
            CTImageStorage,
            ds.SOPInstanceUID,
        )
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"slice_{(k * 7) % n}.dcm", enforce_file_format=True)


def _burned(result) -> list[str]:
    hits = result.findings[result.findings["rule"].str.startswith("burned_in")]
    return sorted(set(hits["file"]))


def test_audit_ocrs_first_middle_and_last_slice_of_each_series(tmp_path):
    from kicc_analysis.deid.audit import series_sample

    (tmp_path / "repo").mkdir()
    _ct_series(tmp_path / "repo", {0: "KIMMINSU", 2: "83920174", 4: "KIMMINSU", 1: "KIMMINSU"})
    assert series_sample(5, 3) == [0, 2, 4]
    # slices 0, 2 and 4 (by position) are read; slice 1 is not, though it holds the name too
    found = _burned(audit_repository(tmp_path / "repo", workers=1, show=False))
    files_by_slice = {k: f"slice_{(k * 7) % 5}.dcm" for k in range(5)}
    assert found == sorted(files_by_slice[k] for k in (0, 2, 4))
    every = _burned(audit_repository(tmp_path / "repo", workers=1, ocr_slices=5, show=False))
    assert every == sorted(files_by_slice[k] for k in (0, 1, 2, 4))
    assert _burned(audit_repository(tmp_path / "repo", workers=1, ocr_slices=0, show=False)) == []
