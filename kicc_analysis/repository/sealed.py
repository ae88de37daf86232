"""The scan cache never holds an identifier in clear: identifying columns are sealed under a per-cache secret.

The scan's cache (the Parquet index and the Arrow table cache, see :mod:`kicc_analysis.repository.scan`) must give
back exactly the tables a fresh scan builds -- real file paths to read the images, the PatientIDs that link images
to clinical rows -- yet a copy of the cache folder, a backup or a ``grep`` must find no patient name, hospital ID or
other identifier in it. So each cached table is stored in two parts:

* the *clear* part: numbers and the coded text columns of :data:`CLEAR_TEXT_COLUMNS` (UIDs, modality, kernel,
  transfer syntax...), memory-mapped on load as before;
* the *sealed* part: every other text column (relative paths and paths, whose folder names can be patient names;
  PatientID, which is not always a pseudonym; descriptions, skip reasons, selection notes, manufacturer...), as an
  Arrow IPC stream (zstd) encrypted with a SHAKE-256 key stream under the cache's secret and a random 16-byte
  nonce, authenticated with HMAC-SHA256. A column that is not listed as clear is sealed (fail closed).

The secret: 32 random bytes in :data:`SECRET_NAME` beside the cache files, created with mode 0600. Without it (or
with another one) the sealed parts cannot be read and the cache is rebuilt, never trusted.

Examples
--------
>>> import pyarrow as pa
>>> secret = bytes(32)
>>> table = pa.table({"relpath": ["홍길동_12345678/IM1"], "modality": ["CT"], "size": [10]})
>>> clear, sealed = seal_table(table, secret)
>>> clear.column_names, "홍길동".encode() in sealed
(['modality', 'size'], False)
>>> unseal_table(clear, sealed, secret).equals(table)
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["CLEAR_TEXT_COLUMNS", "SECRET_NAME", "cache_secret", "mask_key", "seal_table", "unseal_table"]

#: File of the per-cache secret (32 random bytes, mode 0600), in the cache folder.
SECRET_NAME = ".kicc-secret"
#: Text columns stored in clear: coded values and UIDs that never hold a name or a local ID.
CLEAR_TEXT_COLUMNS = frozenset(
    {
        "header_hash",
        "parser",
        "media_sop_class_uid",
        "media_sop_uid",
        "transfer_syntax",
        "specific_character_set",
        "image_type",
        "sop_class_uid",
        "sop_uid",
        "study_date",
        "modality",
        "modalities",
        "body_part",
        "kernel",
        "kernel_class",
        "view_position",
        "study_uid",
        "series_uid",
        "selected_series_uid",
        "frame_of_reference_uid",
        "photometric_interpretation",
        "plane",
    }
)
_MAGIC = b"KICCSEAL1"
_DOMAIN = b"kicc-analysis scan cache seal v1"
_SECRET_BYTES = 32


def cache_secret(folder: str | os.PathLike[str], *, create: bool = False) -> bytes | None:
    """The secret of the cache in ``folder``; a new one (mode 0600) when ``create`` and there is none.

    Returns None when there is no usable secret (absent and not created, unreadable, wrong size).
    """
    path = Path(folder) / SECRET_NAME
    try:
        data = path.read_bytes()
        if len(data) == _SECRET_BYTES:
            return data
        if not create:
            return None
        path.unlink()  # a broken secret: the cache it sealed is unreadable anyway
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another scan created it meanwhile
        return cache_secret(folder)
    except OSError:
        return None
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(_SECRET_BYTES))
    return cache_secret(folder)


def mask_key(secret: bytes | None) -> bytes:
    """Key of the HMAC tags of masked paths (derived from the cache secret; random for the process without)."""
    if secret is None:
        return _PROCESS_KEY
    return hmac.new(secret, b"kicc mask tag", hashlib.sha256).digest()


_PROCESS_KEY = secrets.token_bytes(_SECRET_BYTES)


def _keystream(secret: bytes, nonce: bytes, n: int) -> np.ndarray:
    return np.frombuffer(hashlib.shake_256(_DOMAIN + secret + nonce).digest(n), dtype=np.uint8)


def _xor(data: bytes, stream: np.ndarray) -> bytes:
    return np.bitwise_xor(np.frombuffer(data, dtype=np.uint8), stream).tobytes()


def _context(clear: pa.Table) -> bytes:
    """What binds a sealed part to its clear part: the clear part's metadata (tree fingerprint, parameters,
    column order) and row count, so that a sealed file left from another write is never paired with it."""
    meta = clear.schema.metadata or {}
    return b"\x1f".join([str(clear.num_rows).encode(), *(k + b"=" + meta[k] for k in sorted(meta))])


def _is_clear(field: pa.Field) -> bool:
    text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    text = text or pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)
    return not text or field.name in CLEAR_TEXT_COLUMNS


def seal_table(table: pa.Table, secret: bytes) -> tuple[pa.Table, bytes]:
    """Split ``table`` into its clear part (with the column order in its metadata) and the sealed bytes.

    The clear part keeps ``table``'s schema metadata; :func:`unseal_table` puts the columns back in order.
    """
    clear_names = [f.name for f in table.schema if _is_clear(f)]
    sealed_names = [f.name for f in table.schema if not _is_clear(f)]
    meta = dict(table.schema.metadata or {})
    meta[b"kicc_columns"] = json.dumps(table.column_names).encode()
    clear = table.select(clear_names).replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    hidden = table.select(sealed_names).replace_schema_metadata(None)
    with pa.ipc.new_stream(sink, hidden.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(hidden)
    plain = sink.getvalue().to_pybytes()
    nonce = secrets.token_bytes(16)
    body = _xor(plain, _keystream(secret, nonce, len(plain)))
    tag = hmac.new(secret, _context(clear) + nonce + body, hashlib.sha256).digest()
    return clear, _MAGIC + nonce + tag + body


def unseal_table(clear: pa.Table, sealed: bytes, secret: bytes) -> pa.Table | None:
    """The whole table from its two parts; None when the sealed part is not of this secret, not of this clear
    part (another write) or damaged."""
    if not sealed.startswith(_MAGIC):
        return None
    head = len(_MAGIC)
    nonce, tag, body = sealed[head : head + 16], sealed[head + 16 : head + 48], sealed[head + 48 :]
    if not hmac.compare_digest(tag, hmac.new(secret, _context(clear) + nonce + body, hashlib.sha256).digest()):
        return None
    hidden = pa.ipc.open_stream(pa.py_buffer(_xor(body, _keystream(secret, nonce, len(body))))).read_all()
    meta = dict(clear.schema.metadata or {})
    try:
        order = json.loads(meta.pop(b"kicc_columns"))
    except (KeyError, ValueError):
        return None
    parts = {name: (clear, i) for i, name in enumerate(clear.column_names)}
    parts.update({name: (hidden, i) for i, name in enumerate(hidden.column_names)})
    if hidden.num_rows != clear.num_rows or sorted(order) != sorted(parts):
        return None
    columns = [parts[c][0].column(parts[c][1]) for c in order]
    fields = [parts[c][0].schema.field(parts[c][1]) for c in order]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=meta or None))
