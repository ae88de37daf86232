"""The secret key of de-identification and everything derived from it (HMAC-SHA256).

One key file (at least 32 random bytes; make one with :func:`new_key_file`) gives, for every run and batch:

* patient pseudonyms ``KICC-Sxx-nnnnnnnn`` = HMAC of the site and the local patient ID (same for DICOM and the
  clinical table);
* UIDs ``2.25.<integer>`` = the first 128 bits of HMAC of the original UID (at most 44 characters);
* a per-patient date offset of -3650 to -1 days = HMAC of the pseudonym;
* keyed hashes of values in audit reports (comparable across reports made with the same key).

Examples
--------
>>> key = b"k" * 32
>>> pseudonym(key, "S03", "12345678")
'KICC-S03-56013480'
>>> new_uid(key, "1.2.840.113619.2.55.3.1")
'2.25.271693964220084751421451271022020603132'
>>> date_offset_days(key, "KICC-S03-56013480")
-1669
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from kicc_analysis.errors import KiccError

MIN_KEY_BYTES = 32


class DeidError(KiccError):
    """De-identification cannot proceed (bad key, OUT inside IN, a manifest that does not match...)."""


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file; raise :class:`DeidError` when it is missing or shorter than 32 bytes."""
    p = Path(path)
    if not p.is_file():
        raise DeidError(f"key file {p}: not found (expected a file of at least {MIN_KEY_BYTES} random bytes)")
    key = p.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(f"key file {p}: {len(key)} bytes (expected at least {MIN_KEY_BYTES})")
    return key


def new_key_file(path: str | os.PathLike[str]) -> Path:
    """Write a new random key (64 hex characters) to ``path``, readable by its owner only; never overwrites."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return p


def fingerprint(key: bytes) -> str:
    """A public fingerprint of the key (recorded in manifests; does not reveal the key)."""
    return hashlib.sha256(b"kicc-deid-fingerprint\0" + key).hexdigest()[:16]


def _mac(key: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(key, purpose.encode() + b"\0" + value.encode("utf-8"), hashlib.sha256).digest()


def keyed_hash(key: bytes, value: str) -> str:
    """16 hex characters of HMAC-SHA256 of ``value``: equal values give equal hashes under one key."""
    return _mac(key, "value", value).hex()[:16]


def normalise_site(site: str) -> str:
    """``"3"``, ``"S3"``, ``"s03"`` -> ``"S03"``; raise :class:`DeidError` for anything else."""
    m = re.fullmatch(r"[Ss]?(\d{1,2})", str(site).strip())
    if not m or not 1 <= int(m.group(1)) <= 99:
        raise DeidError(f"site {site!r}: expected S01-S99")
    return f"S{int(m.group(1)):02d}"


def pseudonym(key: bytes, site: str, local_id: str) -> str:
    """The patient pseudonym ``KICC-Sxx-nnnnnnnn`` of ``local_id`` at ``site`` (8 digits from the HMAC)."""
    site = normalise_site(site)
    number = int.from_bytes(_mac(key, "patient", f"{site}\0{str(local_id).strip()}")[:8], "big") % 10**8
    return f"KICC-{site}-{number:08d}"


def new_uid(key: bytes, uid: str) -> str:
    """``2.25.`` + the integer of the first 128 bits of HMAC(uid); the same UID always maps to the same UID."""
    return "2.25." + str(int.from_bytes(_mac(key, "uid", str(uid).strip().rstrip("\0"))[:16], "big"))


def date_offset_days(key: bytes, patient_pseudonym: str) -> int:
    """Days (-3650 to -1) every date of one patient is shifted by; intervals within the patient are kept."""
    return -1 - int.from_bytes(_mac(key, "dates", patient_pseudonym)[:4], "big") % 3650
