"""Deterministic file writing and the manifest of an export (content hashes, identifier check of text files).

NIfTI ``.nii.gz`` files are written by SimpleITK uncompressed, then gzipped here (level :data:`GZIP_LEVEL`) with
``mtime=0`` and no file name in
the gzip header, so the same inputs and seed give byte-identical files (a plain ``sitk.WriteImage(..., "x.nii.gz")``
stores the write time in the gzip header).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from kicc_analysis._cache import file_content_hash as sha256  # SHA-256 of a file's bytes (hex)
from kicc_analysis.privacy import assert_no_identifiers

TEXT_SUFFIXES = (".json", ".csv", ".md", ".txt")
#: gzip level of ``.nii.gz`` files: level 1 compresses an int16 CT about 5x faster than level 6 for a file about 3 %
#: larger (the size SimpleITK's own ``useCompression=True`` writes is in between; docs/benchmarks.md)
GZIP_LEVEL = 1


def write_image(image: sitk.Image, path: Path) -> None:
    """Write ``image`` to ``path`` (``.nii.gz`` gzipped with a fixed mtime; other endings by SimpleITK)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".nii.gz"):
        with tempfile.TemporaryDirectory() as folder:
            plain = Path(folder) / "image.nii"
            sitk.WriteImage(image, str(plain), useCompression=False)
            data = plain.read_bytes()
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz,
        ):
            gz.write(data)
    else:
        sitk.WriteImage(image, str(path), useCompression=False)


def write_text(text: str, path: Path, *, known_values: Iterable[object] = ()) -> None:
    """Write UTF-8 text after the package's identifier check (:func:`kicc_analysis.privacy.assert_no_identifiers`)."""
    assert_no_identifiers(text, known_values=known_values, where=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_json(data: object, path: Path, *, known_values: Iterable[object] = ()) -> None:
    """Write ``data`` as sorted, indented JSON (checked for identifiers)."""
    write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path, known_values=known_values)


def write_csv(table: pd.DataFrame, path: Path, *, known_values: Iterable[object] = ()) -> None:
    """Write ``table`` as UTF-8 CSV with ``\\n`` line ends (checked for identifiers)."""
    write_text(table.to_csv(index=False, lineterminator="\n"), path, known_values=known_values)


def write_manifest(out: Path, *, known_values: Iterable[object] = ()) -> pd.DataFrame:
    """List every file under ``out`` with its size and SHA-256 in ``MANIFEST.csv``; re-check every text file.

    The manifest is checked with the identifier patterns and the known values (digit runs inside its hex digests
    are not read as numbers: :func:`kicc_analysis.privacy.scan_text`).

    Returns
    -------
    DataFrame
        ``path`` (relative, POSIX), ``bytes``, ``sha256``.
    """
    known = list(known_values)
    rows = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.csv"):
        relative = path.relative_to(out).as_posix()
        if path.suffix in TEXT_SUFFIXES:
            assert_no_identifiers(path.read_bytes(), known_values=known, where=relative)
        rows.append({"path": relative, "bytes": path.stat().st_size, "sha256": sha256(path)})
    manifest = pd.DataFrame(rows, columns=["path", "bytes", "sha256"])
    text = manifest.to_csv(index=False, lineterminator="\n")
    assert_no_identifiers(text, known_values=known, where="MANIFEST.csv")
    (out / "MANIFEST.csv").write_text(text, encoding="utf-8", newline="\n")
    return manifest
