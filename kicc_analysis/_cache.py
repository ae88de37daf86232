"""The one cache-key helper and cache location of the package: derived data never outlives its inputs.

Every cache (the scan index, the scan's table cache, the per-series quantification results) is keyed with
:func:`cache_key` on

* the *content* it was computed from: per file ``(path, size, mtime_ns, ctime_ns, header hash)``
  (:func:`file_identity`, :func:`files_fingerprint`), or a full content hash for small parameter files such
  as masks (:func:`file_content_hash`);
* every parameter that changes the result (presets, options, algorithm versions), passed as keyword
  arguments, any number of them.

``ctime`` is part of the identity because it cannot be set back by a user: ``chmod``, a restored mtime after
an in-place edit, or a file replaced by another of the same size and mtime all change it.

Derived files go to :func:`default_cache_dir`, outside the input repository (``$KICC_CACHE`` or
``~/.cache/kicc-analysis``), and :func:`is_read_only` tells whether a folder must not be written even by
``root`` (mode bits, read-only mount, or a ``.kicc-read-only`` marker file), without ``os.access``, which
says "writable" to root on any folder.

Examples
--------
>>> cache_key(series="1.2.3", bins="default", core_periphery=True) == cache_key(
...     bins="default", core_periphery=True, series="1.2.3")
True
>>> cache_key(series="1.2.3", bins="default") == cache_key(series="1.2.3", bins="emphysema")
False
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER_BYTES",
    "READ_ONLY_MARKER",
    "cache_base",
    "cache_key",
    "content_digest",
    "default_cache_dir",
    "file_content_hash",
    "file_identity",
    "files_fingerprint",
    "header_hash",
    "is_read_only",
    "source_files",
]

#: Bytes hashed by :func:`header_hash` (a DICOM preamble, file meta and the main header attributes).
HEADER_BYTES = 4096
#: A file of this name in a folder marks it (and everything under it) as read-only for this package.
READ_ONLY_MARKER = ".kicc-read-only"


def _canonical(value: Any) -> Any:
    """A JSON-serialisable, order-stable form of a key part."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _canonical(value.item())
    return repr(value)


def cache_key(*parts: Any, **params: Any) -> str:
    """Hex SHA-256 of the key parts and of every named parameter (order of keywords does not matter).

    Parameters
    ----------
    *parts
        Positional parts (e.g. a content fingerprint), in order.
    **params
        Every parameter that changes the derived result (presets, options, versions, mask hashes...);
        any number of them, so callers add new parameters without changing this function.
    """
    text = json.dumps([_canonical(list(parts)), _canonical(params)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def content_digest(*chunks: bytes | str) -> str:
    """Hex SHA-1 of byte strings (text as UTF-8), in order, each followed by a separator: the fast key of large
    listings (the scan's tree fingerprint), where :func:`cache_key`'s JSON form would cost too much.

    >>> content_digest("a", b"b") == content_digest("a", "b") != content_digest("ab")
    True
    """
    h = hashlib.sha1()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape"))
        h.update(b"\x1f")
    return h.hexdigest()


def header_hash(path: str | os.PathLike[str], n_bytes: int = HEADER_BYTES) -> str:
    """Hex SHA-1 of the first ``n_bytes`` of a file (the DICOM header): cheap, catches in-place header edits."""
    with open(path, "rb") as f:
        return hashlib.sha1(f.read(n_bytes)).hexdigest()


def file_content_hash(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a whole file, read in 1 MiB blocks (masks, export manifests, de-identification manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_identity(path: str | os.PathLike[str], *, with_header: bool = True) -> tuple[str, int, int, int, str]:
    """``(path, size in bytes, mtime_ns, ctime_ns, header hash)`` of one file (header hash "" when not asked).

    Raises
    ------
    OSError
        The file cannot be stat-ed or read.
    """
    p = os.fspath(path)
    st = os.stat(p)
    return (p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, header_hash(p) if with_header else "")


def source_files(source: Any) -> list[str]:
    """The files behind a series source: a file, a folder (all files under it, sorted) or a list of files."""
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if p.is_dir():
            return sorted(os.fspath(f) for f in p.rglob("*") if f.is_file())
        return [os.fspath(p)]
    return [os.fspath(f) for f in source]


def files_fingerprint(files: Iterable[str | os.PathLike[str]], *, with_header: bool = True) -> str:
    """Hex key of a list of files' identities (sorted by path; a missing file is part of the key as missing)."""
    ids: list[Any] = []
    for f in sorted(os.fspath(x) for x in files):
        try:
            ids.append(file_identity(f, with_header=with_header))
        except OSError as exc:
            ids.append((f, "missing", exc.errno))
    return cache_key(ids)


def is_read_only(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (a folder) must not be written by this package, whoever runs it (root included).

    Read-only means: the folder's mode has no write bit at all (``chmod a-w``), it lies on a file system
    mounted read-only, or it or one of its parents holds a :data:`READ_ONLY_MARKER` file. ``os.access`` is
    not used: it reports every folder writable to root.
    """
    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:  # a folder still to be created: judge the first existing parent
        p = p.parent
    try:
        st = os.stat(p)
    except OSError:
        return False
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return True
    try:
        if os.statvfs(p).f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):
        pass
    return any((q / READ_ONLY_MARKER).exists() for q in (p, *p.parents))


def cache_base() -> Path:
    """The folder under which every derived file of this package goes: ``$KICC_CACHE``, else
    ``~/.cache/kicc-analysis``."""
    base = os.environ.get("KICC_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "kicc-analysis"


def default_cache_dir(repository: str | os.PathLike[str]) -> Path:
    """Where derived files of ``repository`` go by default: never inside it.

    ``$KICC_CACHE/<name>-<hash>`` when ``KICC_CACHE`` is set, else ``~/.cache/kicc-analysis/<name>-<hash>``
    (``<hash>``: 8 hex digits of the resolved repository path, so two repositories never share a cache).
    ``<name>`` is the ASCII part of the repository folder's name, or ``repository`` when that name could identify
    a person (a name or an ID by :func:`kicc_analysis.privacy.field_findings`, or a run of 5 or more digits).
    """
    from kicc_analysis.privacy import field_findings

    repository = Path(repository).expanduser().resolve()
    name = os.fsencode(repository.name).decode("ascii", "replace").replace("\ufffd", "_") or "root"
    if field_findings(repository.name) or field_findings(name) or re.search(r"\d{5}", name):
        name = "repository"
    tag = f"{name}-{hashlib.sha1(os.fsencode(repository)).hexdigest()[:8]}"
    return cache_base() / tag
