"""Burned-in text on radiographs and secondary captures: OCR with the Debian ``tesseract-ocr`` program
(English and Korean language data, ``tesseract-ocr-kor``) through ``pytesseract``.

The image is scaled to 8 bits (1st-99th percentile window) and read in both polarities (white text on black,
black text on white). Each word is matched against the file's own identifying values (names, IDs) and each
line through :func:`kicc_analysis.privacy.scan_text`; a match is a finding with its bounding box in pixels.
Where tesseract is absent the check is skipped with a warning (never silently): see
:func:`kicc_analysis.deid.audit.audit_repository`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kicc_analysis.privacy import scan_text

#: Modalities whose pixels are OCR'd (radiographs, secondary captures, other).
OCR_MODALITIES = frozenset({"CR", "DX", "SC", "OT", "XA", "RF", "MG", "PX", "IO", "DOC"})


def tesseract_available() -> bool:
    """True when the ``tesseract`` program is on PATH."""
    return shutil.which("tesseract") is not None


@lru_cache(maxsize=1)
def languages() -> str:
    """``eng+kor`` when the Korean data is installed, else ``eng``."""
    try:
        out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "eng"
    return "eng+kor" if "kor" in out.split() else "eng"


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """A 2-D image scaled to 0-255 between its 1st and 99th percentiles (colour: the mean of the channels)."""
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    elif image.ndim == 3:  # multi-frame: the first frame
        image = image[0]
    low, high = np.percentile(image, [1, 99])
    if high <= low:
        high = low + 1
    return (np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def normal(text: str) -> str:
    """Lower case, letters, digits and Hangul only (how OCR'd text is compared)."""
    return re.sub(r"[^0-9a-z\uac00-\ud7a3]", "", text.lower())


@dataclass(frozen=True)
class TextLine:
    """One line of text tesseract read: its words joined, its bounding box in pixels (``x, y, width, height``,
    of the image as given) and the lowest word confidence (0-100)."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float

    @property
    def box_text(self) -> str:
        return ",".join(map(str, self.box))


def read_lines(pixels: np.ndarray) -> list[TextLine]:
    """Every line of text in a 2-D image, read in both polarities (white on dark, dark on bright)."""
    import pytesseract
    from PIL import Image

    image = to_8bit(pixels)
    lines_read: list[TextLine] = []
    # both polarities: bright text (white on dark) and dark text (black on bright), each binarised to black ink on
    # white, as tesseract reads best
    for ink in (image >= 192, image <= 63):
        page = np.where(ink, 0, 255).astype(np.uint8)
        data = pytesseract.image_to_data(
            Image.fromarray(page), lang=languages(), output_type=pytesseract.Output.DICT, config="--psm 11"
        )
        lines: dict[tuple, list[int]] = {}
        for i, word in enumerate(data["text"]):
            if word.strip():
                lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
        for idx in lines.values():
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            text = " ".join(data["text"][i] for i in idx)
            confidence = min(float(data["conf"][i]) for i in idx)
            lines_read.append(TextLine(text, (x0, y0, x1 - x0, y1 - y0), confidence))
    return lines_read


def identifying(line: TextLine, targets: set[str]) -> list[str]:
    """The rules a line breaks: ``burned_in:<kind>`` (privacy detector), ``burned_in:known_identifier``
    (``targets``: the file's own identifying values, normalised by :func:`normal`)."""
    rules = [f"burned_in:{f.kind}" for f in scan_text(line.text)]
    squeezed = normal(line.text)
    if any(t in squeezed for t in targets):
        rules.append("burned_in:known_identifier")
    return rules


def targets_of(known: set[str]) -> set[str]:
    """The known identifying values as OCR'd text is compared with them (normalised, 2 characters or more)."""
    return {normal(k) for k in known if len(normal(k)) >= 2}


def burned_in_findings(pixels: np.ndarray, known: set[str]) -> list[tuple[str, str, str]]:
    """(rule, text read, bounding box ``x,y,width,height``) for each identifying word or line in the image."""
    targets = targets_of(known)
    found: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for line in read_lines(pixels):
        for rule in identifying(line, targets):
            if (rule, line.box_text) not in seen:
                seen.add((rule, line.box_text))
                found.append((rule, line.text, line.box_text))
    return found


def is_word(line: TextLine, min_confidence: float = 60.0) -> bool:
    """True for a line tesseract read with confidence holding 3 or more letters or digits (not a lone marker
    such as ``L`` or ``R``, not noise read from anatomy)."""
    return line.confidence >= min_confidence and len(normal(line.text)) >= 3


def margin_of(box: tuple[int, int, int, int]) -> int:
    """Pixels added on every side of a box before blanking: half the text height, at least 4."""
    return max(4, box[3] // 2)


def grown(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``box`` grown by :func:`margin_of` on every side and clipped to an image of ``shape`` (rows, columns...)."""
    x, y, w, h = box
    m = margin_of(box)
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(shape[1], x + w + m), min(shape[0], y + h + m)
    return x0, y0, x1 - x0, y1 - y0


def blank(pixels: np.ndarray, boxes: list[tuple[int, int, int, int]], fill: float) -> np.ndarray:
    """A copy of ``pixels`` (2-D, or rows x columns x samples) with every box, :func:`grown`, set to ``fill``;
    pixels outside the grown boxes are unchanged.

    Examples
    --------
    >>> blank(np.ones((12, 12), dtype=np.uint16), [(5, 5, 2, 2)], 0).sum()  # a 2x2 box grown by 4: 10x10
    np.uint64(44)
    """
    out = np.array(pixels, copy=True)
    for box in boxes:
        x, y, w, h = grown(box, out.shape)
        out[y : y + h, x : x + w, ...] = fill
    return out
