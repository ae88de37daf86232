"""Burned-in text: whether the OCR engine (the Debian ``tesseract-ocr`` program, via ``pytesseract``) is there.

Where tesseract is absent the burned-in text check is skipped with a warning (never silently): see
:func:`kicc_analysis.deid.audit.audit_repository`.
"""

from __future__ import annotations

import shutil


def tesseract_available() -> bool:
    """True when the ``tesseract`` program is on PATH."""
    return shutil.which("tesseract") is not None
