"""The optional re-identification table: which local patient and study each pseudonym stands for, encrypted.

``kicc deidentify IN OUT --key KEY --reid-table PATH`` writes it, only at ``PATH`` (refused inside OUT and inside
IN, since OUT is what is shared and IN is the hospital's export); ``kicc reidentify-table PATH --key KEY --out
CSV`` or :func:`read_reid_table` decrypts it with the same key file.

Format: the line ``KICC-REID 1`` then a Fernet token (``cryptography``: AES-128-CBC with HMAC-SHA256,
authenticated) of the table as UTF-8 CSV. The Fernet key is derived from the key file with HKDF-SHA256
(info ``kicc re-identification table v1``), so the key file alone opens it and no other secret is stored. One
row per study: site, local patient ID, patient pseudonym, the patient's date offset (days), original Study
Instance UID and Accession Number, new Study Instance UID.

Examples
--------
>>> import tempfile, pathlib, pandas as pd
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "key").write_text("k" * 64)
>>> rows = pd.DataFrame({"site": ["S03"], "local_patient_id": ["12345678"], "pseudonym": ["KICC-S03-56013480"]})
>>> path = write_reid_table(rows, folder / "reid.enc", folder / "key")
>>> b"12345678" in path.read_bytes()
False
>>> read_reid_table(path, folder / "key").equals(rows)
True
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pandas as pd

from kicc_analysis.deid.keys import DeidError, fingerprint, load_key

MAGIC = b"KICC-REID 1\n"
#: Columns of the table (one row per study).
COLUMNS = (
    "site",
    "local_patient_id",
    "pseudonym",
    "date_offset_days",
    "study_instance_uid",
    "accession_number",
    "new_study_instance_uid",
)


def _fernet(key: bytes):  # noqa: ANN202 - cryptography's Fernet, imported lazily
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"kicc-deid", info=b"kicc re-identification table v1"
    ).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def check_reid_path(path: str | os.PathLike[str], inp: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """``path`` resolved; :class:`DeidError` when it lies inside OUT or inside IN."""
    p = Path(path).resolve()
    for folder, name in ((Path(out).resolve(), "OUT"), (Path(inp).resolve(), "IN")):
        if p.is_relative_to(folder):
            raise DeidError(
                f"--reid-table {p} is inside {name} {folder}: write the re-identification table elsewhere "
                "(OUT is what is shared, IN is the hospital's export)"
            )
    return p


def write_reid_table(rows: pd.DataFrame, path: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> Path:
    """Encrypt ``rows`` with the key of ``key_file`` to ``path`` (atomic, readable by its owner only)."""
    key = load_key(key_file)
    plain = rows.to_csv(index=False).encode("utf-8")
    data = MAGIC + _fernet(key).encrypt(plain) + b"\n"
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def read_reid_table(path: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> pd.DataFrame:
    """Decrypt a re-identification table; :class:`DeidError` (one line) for a wrong key or a damaged file."""
    from cryptography.fernet import InvalidToken

    p = Path(path)
    if not p.is_file():
        raise DeidError(f"re-identification table {p}: not found")
    data = p.read_bytes()
    if not data.startswith(MAGIC):
        raise DeidError(f"re-identification table {p}: expected a file starting 'KICC-REID 1', found another format")
    key = load_key(key_file)
    try:
        plain = _fernet(key).decrypt(data[len(MAGIC) :].strip())
    except InvalidToken:
        raise DeidError(
            f"re-identification table {p}: cannot be decrypted with key file {key_file} "
            f"(fingerprint {fingerprint(key)}): wrong key, or the file was altered"
        ) from None
    return pd.read_csv(io.BytesIO(plain), dtype=str, keep_default_na=False, encoding="utf-8")
