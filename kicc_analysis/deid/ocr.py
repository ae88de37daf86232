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


def _normal(text: str) -> str:
    return re.sub(r"[^0-9a-z\uac00-\ud7a3]", "", text.lower())


def burned_in_findings(pixels: np.ndarray, known: set[str]) -> list[tuple[str, str, str]]:
    """(rule, text read, bounding box ``x,y,width,height``) for each identifying word or line in the image."""
    import pytesseract
    from PIL import Image

    image = to_8bit(pixels)
    targets = {_normal(k) for k in known if len(_normal(k)) >= 2}
    found: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
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
            text = " ".join(data["text"][i] for i in idx)
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            box = f"{x0},{y0},{x1 - x0},{y1 - y0}"
            squeezed = _normal(text)
            rules = [f"burned_in:{f.kind}" for f in scan_text(text)]
            if any(t in squeezed for t in targets):
                rules.append("burned_in:known_identifier")
            for rule in rules:
                if (rule, box) not in seen:
                    seen.add((rule, box))
                    found.append((rule, text, box))
    return found
