"""A DICOMweb server as a repository source: QIDO-RS scan into the scan tables, WADO-RS fetch on demand.

:func:`scan_dicomweb` builds the same instance / series / study / selection tables as
:func:`~kicc_analysis.repository.scan_repository` (same columns, dtypes and selection logic: both go through
:func:`~kicc_analysis.repository.tables.build_instances`, ``build_series``, ``select_ct_series`` and
``build_studies``) from QIDO-RS metadata alone: no pixel data is transferred. Attributes are requested with
``includefield`` (:data:`QIDO_FIELDS`); study and instance queries are paged (``limit`` / ``offset``), retried
with exponential backoff, and shown with a progress bar. The scan is incremental: a re-scan asks the server
for the list of studies (with their number of series and instances) and queries the instances of new or changed
studies only.

:class:`DicomwebSeries` is a series on the server that quantification can use as a ``source``: it becomes local
files (``os.fspath``) by a WADO-RS retrieval into a bounded, least-recently-used :class:`SeriesCache`, so a
cohort never needs all its pixels on disk. Its :meth:`~DicomwebSeries.cache_identity` keys the per-series
result cache on the server's metadata without fetching anything.

Addresses are written ``dicomweb+http://host:port/dicom-web`` (or ``dicomweb+https://``); credentials never go
in the address: a bearer token is read from ``$KICC_DICOMWEB_TOKEN`` or a whole header (``Name: value``) from
``$KICC_DICOMWEB_HEADER`` (other variable names can be given), and neither is ever logged, written or put in an
error message.

Example
-------
>>> is_dicomweb_url("dicomweb+https://pacs.example.org/dicom-web")
True
>>> service_url("dicomweb+https://pacs.example.org/dicom-web/")
'https://pacs.example.org/dicom-web'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._cache import cache_base, cache_key
from ..errors import RepositoryError
from ..progress import progress_bar
from .header import _WANTED, _clean
from .scan import _SCHEMA, RepositoryScan, _arrow_strings, _finish_scan, _temp_path, geometry_columns
from .sealed import SECRET_NAME, cache_secret, seal_table, unseal_table
from .tables import FLAT_COLUMNS, build_instances, build_series

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "HEADER_ENV",
    "QIDO_FIELDS",
    "TOKEN_ENV",
    "DicomwebScan",
    "DicomwebSeries",
    "SeriesCache",
    "is_dicomweb_url",
    "scan_dicomweb",
    "series_source",
    "service_url",
]

logger = logging.getLogger(__name__)

#: Prefix of a repository address that names a DICOMweb service.
SCHEME_PREFIX = "dicomweb+"
#: Environment variable holding a bearer token (sent as ``Authorization: Bearer <token>``).
TOKEN_ENV = "KICC_DICOMWEB_TOKEN"
#: Environment variable holding one whole header line ``Name: value`` (e.g. an API key header).
HEADER_ENV = "KICC_DICOMWEB_HEADER"
#: Default bound of the local WADO-RS series cache (bytes): 20 GiB.
DEFAULT_CACHE_BYTES = 20 << 30
#: Bump when the QIDO-derived index rows change: older DICOMweb indexes are then rebuilt.
DICOMWEB_INDEX_VERSION = "2"  # 2: identifying columns sealed (repository.sealed)

#: Attributes the scan tables need, as QIDO-RS ``includefield`` tags (the header parser's attributes except the
#: file meta group 0002, which is not part of a data set and which QIDO-RS does not return).
QIDO_FIELDS: dict[str, tuple[str, str]] = {f"{tag:08X}": (name, vr) for tag, name, vr in _WANTED if tag >> 16 != 0x0002}
#: Study-level attributes used to notice changes: Number of Study Related Series / Instances.
_STUDY_FIELDS = ("00201206", "00201208")
_MULTI_NUMBERS = frozenset({"image_position", "image_orientation", "pixel_spacing", "imager_pixel_spacing"})
#: HTTP status codes worth retrying (the server is busy or restarting).
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_dicomweb_url(text: str | os.PathLike[str]) -> bool:
    """True when ``text`` is a ``dicomweb+http(s)://`` repository address."""
    return isinstance(text, str) and text.lower().startswith((SCHEME_PREFIX + "http://", SCHEME_PREFIX + "https://"))


def service_url(url: str) -> str:
    """The HTTP(S) address of the DICOMweb service (``dicomweb+`` removed, no trailing slash).

    Raises
    ------
    RepositoryError
        Not an ``http``/``https`` address, or an address with a user name or password in it (credentials go in
        ``$KICC_DICOMWEB_TOKEN`` / ``$KICC_DICOMWEB_HEADER``, never in an address that is printed and stored).
    """
    text = url[len(SCHEME_PREFIX) :] if url.lower().startswith(SCHEME_PREFIX) else url
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RepositoryError(
            f"DICOMweb address {_safe(text)!r}: expected dicomweb+http://host[:port]/path or dicomweb+https://..."
        )
    if parts.username or parts.password:
        raise RepositoryError(
            "DICOMweb address contains a user name or password: remove it and put the credentials in "
            f"${TOKEN_ENV} (bearer token) or ${HEADER_ENV} ('Name: value' header)"
        )
    if parts.query or parts.fragment:
        raise RepositoryError(f"DICOMweb address {_safe(text)!r}: expected no query string or fragment")
    return text.rstrip("/")


def _safe(text: str) -> str:
    """An address without any user-info part (for messages)."""
    parts = urlsplit(text)
    if parts.username or parts.password:
        return text.replace(parts.netloc, parts.hostname or "?")
    return text


def _auth_headers(token_env: str, header_env: str) -> dict[str, str]:
    """Authentication headers from the environment (values never logged)."""
    headers: dict[str, str] = {}
    token = os.environ.get(token_env, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    line = os.environ.get(header_env, "").strip()
    if line:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise RepositoryError(f"${header_env} must be one header line 'Name: value' (its value is not shown)")
        headers[name.strip()] = value.strip()
    return headers


# ----------------------------------------------------------------------------------------------------------------------
# The server connection: dicomweb-client with our retries and one-line errors.


class _ServerGone(Exception):
    """The server did not answer after every retry (or refused the request): carries a one-line reason."""


def _reason(exc: BaseException) -> str:
    """A short, credential-free reason for a failed request."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason or ''}".strip()
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Read timed out", "Name or service not known"):
        if marker in text:
            return f"{type(exc).__name__}: {marker.lower()}"
    return type(exc).__name__


class _Server:
    """One DICOMweb service: paged QIDO-RS searches and WADO-RS retrievals with retries and backoff."""

    def __init__(
        self,
        url: str,
        *,
        token_env: str = TOKEN_ENV,
        header_env: str = HEADER_ENV,
        session: Any = None,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
    ) -> None:
        try:
            import requests
            from dicomweb_client.api import DICOMwebClient
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise RepositoryError(
                f"DICOMweb needs the 'dicomweb-client' package (pip install 'kicc-analysis[dicomweb]'): {exc}"
            ) from None
        self.url = service_url(url)
        session = session if session is not None else requests.Session()
        session.headers.update(_auth_headers(token_env, header_env))
        self.client = DICOMwebClient(url=self.url, session=session, timeout=timeout_s)
        self.client.set_http_retry_params(retry=False)  # retried here, connection errors included
        self.retries = retries
        self.backoff_s = backoff_s
        self.n_requests = 0
        self.credential_names = f"${token_env} or ${header_env}"

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one request, retrying connection errors and busy answers with exponential backoff."""
        import requests

        attempt = 0
        while True:
            attempt += 1
            self.n_requests += 1
            try:
                return fn()
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status in (401, 403):
                    raise _ServerGone(
                        f"{_reason(exc)} for {what}: the server refused the credentials (set {self.credential_names})"
                    ) from None
                if status not in _RETRY_STATUS or attempt > self.retries:
                    raise _ServerGone(f"{_reason(exc)} for {what} after {attempt} attempt(s)") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.retries:
                    raise _ServerGone(f"no answer to {what} after {attempt} attempt(s) ({_reason(exc)})") from None
            except ValueError as exc:  # malformed JSON or multipart from the server
                raise _ServerGone(f"unreadable answer to {what} ({type(exc).__name__})") from None
            delay = self.backoff_s * 2 ** (attempt - 1)
            logger.info("DICOMweb %s failed (attempt %d); retrying in %.2f s", what, attempt, delay)
            time.sleep(delay)

    def paged(
        self,
        what: str,
        search: Callable[..., list[dict]],
        page_size: int,
        *,
        expected: float | None = None,
        until_empty: bool = False,
        **kwargs: Any,
    ) -> Iterator[dict]:
        """Every result of a QIDO-RS search, page by page (``limit`` / ``offset``).

        A page shorter than ``page_size`` ends the search, unless the server may have cut it to a maximum of its
        own (PS3.18 allows it, with a warning): then the next page is asked for too, when fewer than ``expected``
        results came (the study's instance count) or always with ``until_empty`` (the study list). An empty page
        always ends it.
        """
        offset = 0
        while True:
            page = self.call(f"{what} (offset {offset})", lambda o=offset: search(limit=page_size, offset=o, **kwargs))
            yield from page
            offset += len(page)
            if not page:
                return
            if len(page) < page_size and not until_empty and not (expected is not None and offset < expected):
                return


# ----------------------------------------------------------------------------------------------------------------------
# QIDO-RS JSON -> the header parser's record


def _json_text(values: list) -> str:
    """DICOM JSON values of a text attribute as the backslash-joined text of the file."""
    out = []
    for v in values:
        if isinstance(v, dict):  # person name
            v = v.get("Alphabetic", "")
        out.append("" if v is None else str(v))
    return "\\".join(out)


def _json_value(name: str, vr: str, element: dict | None) -> Any:
    """One attribute of a DICOM JSON data set as :func:`~kicc_analysis.repository.read_header` returns it."""
    if not element:
        return None
    values = element.get("Value")
    if not values:
        return None
    if vr in ("US", "xs"):
        try:
            return int(values[0])
        except (TypeError, ValueError):
            return None
    if vr in ("DS", "IS"):
        numbers = []
        for v in values:
            try:
                numbers.append(float(v))
            except (TypeError, ValueError):
                numbers.append(None)
        if vr == "DS" and name in _MULTI_NUMBERS:
            kept = tuple(v for v in numbers if v is not None)
            return kept or None
        first = numbers[0]
        if first is None:
            return None
        if vr == "IS":
            return int(first) if float(first).is_integer() else None
        return first
    return _clean(_json_text(values))


def _metadata_hash(element: dict) -> str:
    """SHA-1 of the requested attributes of one instance (order-independent, retrieve URLs left out)."""
    kept = {k: v for k, v in element.items() if k in QIDO_FIELDS}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _row(element: dict, study_uid: str | None = None) -> tuple:
    """One index row (in :data:`FLAT_COLUMNS` order) from one QIDO-RS instance result (``study_uid``: the study
    that was queried, used when the result does not repeat it)."""
    rec = {name: _json_value(name, vr, element.get(tag)) for tag, (name, vr) in QIDO_FIELDS.items()}
    if rec["study_uid"] is None:
        rec["study_uid"] = study_uid
    ipp, iop, ps, ips = geometry_columns(rec)
    relpath = f"{rec['study_uid']}/{rec['series_uid']}/{rec['sop_uid']}"
    values = {
        "relpath": relpath,
        "size": 0,
        "mtime_ns": 0,
        "ctime_ns": 0,
        "error": None,
        "header_hash": _metadata_hash(element),
        "parser": "qido",
        "media_sop_class_uid": None,
        "media_sop_uid": None,
        "transfer_syntax": None,
        "imager_spacing_row": ips[0],
        "imager_spacing_col": ips[1],
        "image_position_x": ipp[0],
        "image_position_y": ipp[1],
        "image_position_z": ipp[2],
        "orient_rx": iop[0],
        "orient_ry": iop[1],
        "orient_rz": iop[2],
        "orient_cx": iop[3],
        "orient_cy": iop[4],
        "orient_cz": iop[5],
        "pixel_spacing_row": ps[0],
        "pixel_spacing_col": ps[1],
    }
    return tuple(values[c] if c in values else rec.get(c) for c in FLAT_COLUMNS)


def _rows_table(rows: list[tuple]) -> pd.DataFrame:
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(FLAT_COLUMNS)
    arrays = [pa.array(list(col), type=_SCHEMA.field(i).type, from_pandas=True) for i, col in enumerate(cols)]
    return pa.Table.from_arrays(arrays, schema=_SCHEMA).to_pandas()


# ----------------------------------------------------------------------------------------------------------------------
# The scan


@dataclass(frozen=True, repr=False)
class DicomwebScan(RepositoryScan):
    """A :class:`~kicc_analysis.repository.RepositoryScan` of a DICOMweb service.

    ``root`` is the service address (text); ``instances.path`` is each instance's WADO-RS address and
    ``relpath`` is ``<study uid>/<series uid>/<sop uid>``. QIDO-RS does not expose file sizes, file times or the
    transfer syntax: ``size`` is 0, ``mtime`` NaT, ``transfer_syntax`` empty and ``compressed`` False (the
    syntax is known once a series is fetched). ``skipped`` is empty (a server returns DICOM only).

    Extra attributes: ``url`` (service address), ``n_requests`` (HTTP requests made), ``queried_studies`` (UIDs
    of the new or changed studies queried in this scan), ``queried_series`` (series of changed studies queried one
    by one), ``n_studies_reused`` (unchanged studies taken from the index).
    """

    url: str = ""
    n_requests: int = 0
    queried_studies: tuple[str, ...] = field(default_factory=tuple)
    queried_series: tuple[str, ...] = field(default_factory=tuple)
    n_studies_reused: int = 0

    def summary(self) -> str:
        """A short text report (no patient identifiers or dates)."""
        text = super().summary().replace("Repository scan of", "DICOMweb scan of", 1)
        lines = text.splitlines()
        lines[1] = (
            f"  studies on the server: {len(self.studies)} (queried {len(self.queried_studies)}, reused from index "
            f"{self.n_studies_reused}); {self.n_requests} HTTP requests"
        )
        return "\n".join(lines)


_INDEX_FILE = "files.parquet"
_STUDY_INDEX = "studies.parquet"
_SEALED_FILE = "files.sealed"


def default_index_dir(url: str) -> Path:
    """Folder of the incremental index of a DICOMweb service (one per address, in the package's cache)."""
    address = service_url(url)
    host = urlsplit(address).hostname or "server"
    return cache_base() / f"dicomweb-{host}-{hashlib.sha1(address.encode()).hexdigest()[:8]}" / "index"


def _load_dicomweb_index(folder: Path, url: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    secret = cache_secret(folder)
    if secret is None:
        return None
    try:
        clear = pq.read_table(folder / _INDEX_FILE)
        files = unseal_table(clear, (folder / _SEALED_FILE).read_bytes(), secret)
        studies = pq.read_table(folder / _STUDY_INDEX).to_pandas()
    except Exception:  # noqa: BLE001 - missing or broken index: query everything
        return None
    if files is None:  # sealed under another secret, or not the part of this write: query everything
        return None
    meta = files.schema.metadata or {}
    if meta.get(b"kicc_dicomweb_index") != DICOMWEB_INDEX_VERSION.encode() or meta.get(b"kicc_url") != url.encode():
        return None
    if files.schema.names != list(FLAT_COLUMNS):
        return None
    return files.to_pandas(), studies


def _save_dicomweb_index(folder: Path, url: str, files: pd.DataFrame, studies: pd.DataFrame) -> str | None:
    """Write the index (instance rows and per-study state) atomically; a message when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(files[list(FLAT_COLUMNS)], schema=_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata({"kicc_dicomweb_index": DICOMWEB_INDEX_VERSION, "kicc_url": url})
        secret = cache_secret(folder, create=True)
        if secret is None:
            return f"DICOMweb index not saved to {folder} (no secret {SECRET_NAME} could be made there)"
        clear, sealed = seal_table(table, secret)  # PatientIDs, descriptions... never in clear (repository.sealed)
        tmp_sealed = _temp_path(folder, "sealed")
        with open(tmp_sealed, "wb") as f:
            f.write(sealed)
        os.replace(tmp_sealed, folder / _SEALED_FILE)
        tmp = _temp_path(folder, "files")
        pq.write_table(clear, tmp, compression="zstd")
        tmp_studies = _temp_path(folder, "studies")
        studies.to_parquet(tmp_studies, index=False)
        # studies last: a study is "done" only when its rows are in place
        os.replace(tmp, folder / _INDEX_FILE)
        os.replace(tmp_studies, folder / _STUDY_INDEX)
    except OSError as exc:
        return f"DICOMweb index not saved to {folder} ({exc.strerror or exc}); the next scan queries every study"
    return None


_STUDY_STATE = ("study_uid", "n_series", "n_instances", "modified")


def _study_state(element: dict, modified_tag: str | None) -> tuple[str | None, float, float, str | None]:
    def number(tag: str) -> float:
        v = _json_value("", "IS", element.get(tag))
        return float(v) if v is not None else float("nan")

    uid = _json_value("study_uid", "UI", element.get("0020000D"))
    modified = _json_value("", "LO", element.get(modified_tag)) if modified_tag else None
    return uid, number("00201206"), number("00201208"), modified


def _same_state(old: pd.Series, new: tuple) -> bool:
    """A study is unchanged when its counts (and the modification attribute, if any) are those of the index."""
    _, n_series, n_instances, modified = new

    def eq(a: Any, b: Any) -> bool:
        return (pd.isna(a) and pd.isna(b)) or a == b

    return eq(old["n_series"], n_series) and eq(old["n_instances"], n_instances) and eq(old["modified"], modified)


def scan_dicomweb(
    url: str,
    *,
    index_dir: str | os.PathLike[str] | None = None,
    use_index: bool = True,
    verify: bool = False,
    page_size: int = 500,
    retries: int = 4,
    backoff_s: float = 0.5,
    timeout_s: float = 60.0,
    token_env: str = TOKEN_ENV,
    header_env: str = HEADER_ENV,
    modified_tag: str | None = None,
    show_progress: bool | None = None,
    min_slices: int = 10,
    kernel_first: bool = False,
    save_every: int = 50,
    session: Any = None,
) -> DicomwebScan:
    """Scan a DICOMweb service (QIDO-RS metadata only) into instance, series and study tables.

    Parameters
    ----------
    url
        ``dicomweb+http(s)://host[:port]/path`` (the ``dicomweb+`` prefix is optional here).
    index_dir
        Folder of the incremental index (default :func:`default_index_dir`, in ``$KICC_CACHE``).
    use_index
        False queries every study and leaves the index untouched.
    verify
        Query every study's instances again (the fast path's blind spots, see Notes) and rewrite the index.
    page_size
        ``limit`` of each QIDO-RS request; further pages are asked with ``offset``.
    retries, backoff_s
        A request that fails (connection refused or reset, timeout, HTTP 408/429/5xx) is retried ``retries``
        times after ``backoff_s``, ``2 * backoff_s``, ``4 * backoff_s``... seconds.
    timeout_s
        Timeout of one HTTP request (s).
    token_env, header_env
        Environment variables holding a bearer token / one ``Name: value`` header (never logged).
    modified_tag
        Tag (8 hex digits) of a study-level attribute the server updates when a study changes, when it has one;
        it is requested with the study list and a change re-queries the study.
    show_progress
        Progress bar over the studies queried (default: unless ``KICC_NO_PROGRESS`` is set).
    min_slices, kernel_first
        Series selection options (:func:`~kicc_analysis.repository.select_ct_series`).
    save_every
        Save the index after this many queried studies (and when the server stops answering), so an interrupted
        scan resumes where it stopped.
    session
        A ``requests.Session`` to use (proxies, certificates, hooks); authentication headers are added to it.

    Returns
    -------
    DicomwebScan

    Raises
    ------
    RepositoryError
        Malformed address, credentials refused, a server that lists no study, or a server that stopped answering
        (one line, saying how many studies are saved in the index; run the scan again to resume).

    Notes
    -----
    Fast path: the study list (one paged request) is compared with the index by set difference of Study
    Instance UIDs; a new study is queried whole; a known study is looked at again only when its Number of Study
    Related Series or Instances (or ``modified_tag``) changed, and then by set difference of Series Instance
    UIDs: its series list is asked for and only the series that are new or whose Number of Series Related
    Instances changed are queried (series gone from it are dropped). It cannot see an instance replaced under the same SOP Instance UID (or a
    metadata edit) that leaves these counts unchanged, nor changes in a study on a server that does not return
    the counts: use ``verify=True`` there. Standard QIDO-RS has no modification date; servers that keep one
    in a study attribute can name it with ``modified_tag``.
    """
    address = service_url(url)
    server = _Server(
        address,
        token_env=token_env,
        header_env=header_env,
        session=session,
        retries=retries,
        backoff_s=backoff_s,
        timeout_s=timeout_s,
    )
    folder = Path(index_dir).expanduser().resolve() if index_dir is not None else default_index_dir(address)
    notes: list[str] = []
    old = _load_dicomweb_index(folder, address) if use_index else None
    old_files, old_studies = old if old is not None else (_rows_table([]), pd.DataFrame(columns=list(_STUDY_STATE)))

    study_fields = [*_STUDY_FIELDS, *([modified_tag.upper()] if modified_tag else [])]
    try:
        listed = list(
            server.paged(
                "the study list", server.client.search_for_studies, page_size, until_empty=True, fields=study_fields
            )
        )
    except _ServerGone as exc:
        raise RepositoryError(
            f"DICOMweb server {address}: {exc}; the index in {folder} is unchanged: run the scan again to resume"
        ) from None
    states = {}
    n_without_uid = 0
    for element in listed:
        state = _study_state(element, modified_tag.upper() if modified_tag else None)
        if state[0]:
            states[state[0]] = state
        else:
            n_without_uid += 1
    if n_without_uid:
        notes.append(f"{n_without_uid} result(s) of the study list had no Study Instance UID (0020,000D): not scanned")
    if not states:
        raise RepositoryError(
            f"DICOMweb server {address} lists no studies (expected at least one study with a Study Instance UID)"
        )
    known = old_studies.drop_duplicates("study_uid").set_index("study_uid") if len(old_studies) else None
    todo = [
        uid
        for uid in sorted(states)
        if verify or known is None or uid not in known.index or not _same_state(known.loc[uid], states[uid])
    ]
    keep = sorted(set(states) - set(todo))
    study_of = old_files["relpath"].str.split("/", n=1).str[0] if len(old_files) else pd.Series([], dtype=object)
    reused = [old_files[study_of.isin(keep).to_numpy()] if len(old_files) else old_files]
    done_states = [states[u] for u in keep]

    rows: list[tuple] = []
    done: list[str] = []
    queried_series: list[str] = []
    fields = list(QIDO_FIELDS)
    saved_path: Path | None = folder / _INDEX_FILE if use_index else None

    def current_files() -> pd.DataFrame:
        return pd.concat([*reused, _rows_table(rows)], ignore_index=True) if rows else pd.concat(reused)

    def save() -> None:
        nonlocal saved_path
        if not use_index:
            return
        state = pd.DataFrame([*done_states, *(states[u] for u in done)], columns=list(_STUDY_STATE))
        err = _save_dicomweb_index(folder, address, current_files(), state)
        if err:
            notes.append(err)
            saved_path = None

    def query_study(k: int, uid: str) -> None:
        """Query one new or changed study: a new study whole; a changed one series by series, only the series
        that are new or whose Number of Series Related Instances changed (the others keep their index rows)."""
        label = f"study {k + 1} of {len(todo)}"
        old_rows = old_files[(study_of == uid).to_numpy()] if len(old_files) and not verify else old_files[:0]
        if old_rows.empty or old_rows["series_uid"].isna().any():
            found = server.paged(
                f"the instances of {label}",
                server.client.search_for_instances,
                page_size,
                expected=states[uid][2],
                study_instance_uid=uid,
                fields=fields,
            )
            rows.extend(_row(e, uid) for e in found)
            return
        listed_series = server.paged(
            f"the series list of {label}",
            server.client.search_for_series,
            page_size,
            study_instance_uid=uid,
            fields=["0020000E", "00201209"],
        )
        old_counts = old_rows["series_uid"].value_counts()
        unchanged: list[str] = []
        for element in list(listed_series):
            se = _json_value("series_uid", "UI", element.get("0020000E"))
            n = _json_value("", "IS", element.get("00201209"))
            if se is None:
                continue
            if n is not None and se in old_counts.index and int(old_counts[se]) == n:
                unchanged.append(se)
                continue
            found = server.paged(
                f"the instances of a series of {label}",
                server.client.search_for_instances,
                page_size,
                expected=n,
                study_instance_uid=uid,
                series_instance_uid=se,
                fields=fields,
            )
            rows.extend(_row(e, uid) for e in found)
            queried_series.append(se)
        reused.append(old_rows[old_rows["series_uid"].isin(unchanged).to_numpy()])

    bar = progress_bar(total=len(todo), show=show_progress, desc="DICOMweb studies", unit="study")
    try:
        for k, uid in enumerate(todo):
            n_rows, n_parts = len(rows), len(reused)
            try:
                query_study(k, uid)
            except _ServerGone as exc:
                del rows[n_rows:], reused[n_parts:]  # the study is not done: none of its rows are saved
                save()
                kept = len(done_states) + len(done)
                raise RepositoryError(
                    f"DICOMweb server {address}: {exc}; {kept} of {len(states)} studies are saved in the index "
                    f"{folder}: run the scan again to resume"
                ) from None
            done.append(uid)
            bar.update(1)
            if save_every and len(done) % save_every == 0:
                save()
    finally:
        bar.close()
    if todo or not old or len(old_studies) != len(states):
        save()

    files = current_files().sort_values("relpath", kind="stable").reset_index(drop=True)
    n_reused = len(files) - len(rows)
    instances, series, skipped = _build_dicomweb_tables(address, files)
    n_removed = int(len(old_studies) - len(set(old_studies["study_uid"]) & set(states))) if len(old_studies) else 0
    scan = _finish_scan(
        address,  # type: ignore[arg-type]  # the address stands for the root folder
        {"instances": instances, "series": series, "skipped": skipped},
        len(files),
        len(rows),
        n_reused,
        n_removed,
        saved_path,
        notes,
        min_slices,
        kernel_first,
    )
    return DicomwebScan(
        **{f.name: getattr(scan, f.name) for f in dataclasses.fields(RepositoryScan)},
        url=address,
        n_requests=server.n_requests,
        queried_studies=tuple(todo),
        queried_series=tuple(queried_series),
        n_studies_reused=len(keep),
    )


def _build_dicomweb_tables(address: str, files: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The scan tables from QIDO-RS rows: the filesystem scan's builders, WADO-RS addresses as paths."""
    instances, duplicates = build_instances(files, address)
    instances["path"] = [
        f"{address}/studies/{st}/series/{se}/instances/{sop}"
        for st, se, sop in zip(instances["study_uid"], instances["series_uid"], instances["sop_uid"], strict=True)
    ]
    instances["mtime"] = pd.Series(pd.NaT, index=instances.index, dtype="datetime64[ns, UTC]")
    series = build_series(instances, duplicates)
    instances = _arrow_strings(instances)
    skipped = pd.DataFrame(
        {
            "path": pd.Series([], dtype=object),
            "relpath": pd.Series([], dtype=object),
            "size": pd.Series([], dtype="int64"),
            "reason": pd.Series([], dtype=object),
            "kind": pd.Series([], dtype=object),
        }
    )
    if not duplicates.empty:  # a server keys instances by SOP UID, so this should not happen
        skipped = pd.DataFrame(
            {
                "path": [f"{address}/{r}" for r in duplicates["relpath"]],
                "relpath": duplicates["relpath"].to_numpy(),
                "size": duplicates["size"].astype("int64").to_numpy(),
                "reason": duplicates["reason"].to_numpy(),
            }
        )
        skipped["kind"] = skipped["reason"].str.split(":").str[0]
    return instances, series, skipped


# ----------------------------------------------------------------------------------------------------------------------
# WADO-RS: fetch selected series on demand into a bounded LRU cache


class SeriesCache:
    """A folder of fetched series (one sub-folder each) bounded in bytes, least recently used evicted first.

    Entries are named by a content key (:func:`kicc_analysis._cache.cache_key` of the service, the series and the
    metadata hash of its instances): a series changed on the server gets a new entry, the old one ages out.
    Each entry's ``.complete`` file holds its size and its modification time is its last use. Additions and
    evictions are serialised by a lock file, so several processes can share one cache.

    Parameters
    ----------
    folder
        Cache folder (created).
    max_bytes
        Bound of the entries' total size (bytes). After every addition the least recently used entries are removed
        until the total is within it; the entry just added is never removed, so one series larger than the bound
        is kept alone (with a warning in the log). While a series is being fetched its files are in a temporary
        folder: the disk peak is ``max_bytes`` plus the series being fetched by each process.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.folder = Path(folder).expanduser()
        self.max_bytes = int(max_bytes)
        if self.max_bytes <= 0:
            raise RepositoryError(f"series cache bound must be a positive number of bytes, got {max_bytes}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def entries(self) -> pd.DataFrame:
        """The complete entries: ``name, bytes, last_used`` (s since the epoch), least recently used first."""
        out = []
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                marker = entry / ".complete"
                if not entry.name.startswith(".") and entry.is_dir() and marker.is_file():  # not a fetch under way
                    try:
                        size = int(marker.read_text().strip() or 0)
                        out.append((entry.name, size, marker.stat().st_mtime_ns / 1e9))
                    except (OSError, ValueError):
                        continue
        table = pd.DataFrame(out, columns=["name", "bytes", "last_used"])
        return table.sort_values(["last_used", "name"], kind="stable").reset_index(drop=True)

    def total_bytes(self) -> int:
        """Total size of the complete entries (bytes)."""
        return int(self.entries()["bytes"].sum())

    def get(self, name: str, fetch: Callable[[Path], None]) -> Path:
        """The folder of entry ``name``; ``fetch(folder)`` fills a new folder when it is not cached."""
        entry = self.folder / name
        marker = entry / ".complete"
        if marker.is_file():
            with contextlib.suppress(OSError):
                os.utime(marker)  # most recently used
            return entry
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=".fetch-"))
        try:
            fetch(tmp)
            size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
            (tmp / ".complete").write_text(str(size))
            with self._locked():
                if marker.is_file():  # another process fetched it meanwhile
                    shutil.rmtree(tmp, ignore_errors=True)
                    os.utime(marker)
                    return entry
                self._evict(keep_bytes=self.max_bytes - size)
                os.replace(tmp, entry)
                if size > self.max_bytes:
                    logger.warning(
                        "series %s (%d bytes) is larger than the cache bound (%d bytes): kept alone",
                        name,
                        size,
                        self.max_bytes,
                    )
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return entry

    def _evict(self, keep_bytes: int) -> None:
        """Remove least recently used entries until they total at most ``keep_bytes`` (caller holds the lock)."""
        table = self.entries()
        total = int(table["bytes"].sum())
        for name, size in zip(table["name"], table["bytes"], strict=True):
            if total <= keep_bytes:
                break
            shutil.rmtree(self.folder / name, ignore_errors=True)
            total -= int(size)


def default_series_cache_dir(url: str) -> Path:
    """Default folder of fetched series of a DICOMweb service (beside its index)."""
    return default_index_dir(url).parent / "series"


@dataclass(frozen=True)
class DicomwebSeries(os.PathLike):
    """One series on a DICOMweb service, usable wherever a series' files are (``os.fspath`` fetches it).

    ``os.fspath(series)`` retrieves the series with WADO-RS into :class:`SeriesCache` (once; later calls reuse
    the cached folder) and returns the local folder of its DICOM files, so
    :func:`~kicc_analysis.imaging.load_ct` and ``quantify_series`` take it as their ``source``. It pickles
    (names the environment variables of the credentials, never their values), so it can be sent to worker
    processes.

    Attributes
    ----------
    url, study_uid, series_uid
        Service address and the series.
    content_key
        Hash of the series' instances as the scan saw them (every scanned attribute of every instance).
    cache_dir, max_bytes
        The local :class:`SeriesCache`.
    n_instances
        Instances the scan listed (the fetch checks it got them all).
    """

    url: str
    study_uid: str
    series_uid: str
    content_key: str
    cache_dir: str
    max_bytes: int = DEFAULT_CACHE_BYTES
    n_instances: int = 0
    token_env: str = TOKEN_ENV
    header_env: str = HEADER_ENV
    retries: int = 4
    backoff_s: float = 0.5

    def cache_identity(self) -> str:
        """Key of the series' content for result caches (no request is made)."""
        return cache_key("dicomweb-series", self.url, self.study_uid, self.series_uid, self.content_key)

    def cache_name(self) -> str:
        """Name of the series' folder in the :class:`SeriesCache`."""
        return self.cache_identity()[:32]

    def local_folder(self) -> Path:
        """Fetch the series (unless cached) and return the local folder of its DICOM files (nothing else in it)."""
        cache = SeriesCache(self.cache_dir, self.max_bytes)
        return cache.get(self.cache_name(), self._fetch) / "dicom"

    def _fetch(self, entry: Path) -> None:
        """Retrieve the series into ``entry/dicom`` (instances written as they arrive, in their stored transfer
        syntax when the server can send it; a failed retrieval is retried from the start)."""
        folder = entry / "dicom"
        server = _Server(
            self.url,
            token_env=self.token_env,
            header_env=self.header_env,
            retries=self.retries,
            backoff_s=self.backoff_s,
        )

        def retrieve(media_types: tuple | None) -> int:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            n = 0
            for ds in server.client.iter_series(self.study_uid, self.series_uid, media_types=media_types):
                name = str(getattr(ds, "SOPInstanceUID", "") or f"instance-{n:06d}")
                ds.save_as(folder / f"{name}.dcm", enforce_file_format=True)
                n += 1
            return n

        what = "the series retrieval (WADO-RS)"
        try:
            try:  # the stored transfer syntax: no transcoding on the server, compressed data stays compressed
                n = server.call(what, lambda: retrieve((("application/dicom", "*"),)))
            except _ServerGone as exc:
                if "HTTP 406" not in str(exc) and "HTTP 400" not in str(exc):
                    raise
                n = server.call(what, lambda: retrieve(None))  # the default: Explicit VR Little Endian
        except _ServerGone as exc:
            raise RepositoryError(f"DICOMweb server {self.url}: {exc}") from None
        if self.n_instances and n != self.n_instances:
            raise RepositoryError(
                f"DICOMweb server {self.url}: series {self.series_uid} returned {n} instances, the scan listed "
                f"{self.n_instances}; scan again (the series changed on the server)"
            )

    def __fspath__(self) -> str:
        return str(self.local_folder())

    def __str__(self) -> str:
        return f"{self.url}/studies/{self.study_uid}/series/{self.series_uid}"


def series_source(
    scan: RepositoryScan,
    series_uid: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_bytes: int = DEFAULT_CACHE_BYTES,
    token_env: str = TOKEN_ENV,
    header_env: str = HEADER_ENV,
) -> list[Path] | DicomwebSeries:
    """What quantification reads for one series: its files (a folder scan) or a :class:`DicomwebSeries`.

    Parameters
    ----------
    scan
        A scan from :func:`~kicc_analysis.repository.scan_repository` or :func:`scan_dicomweb`.
    series_uid
        The series.
    cache_dir, max_bytes
        Local cache of fetched series (DICOMweb only; default :func:`default_series_cache_dir`).

    Raises
    ------
    RepositoryError
        ``series_uid`` is not in the scan.
    """
    if not isinstance(scan, DicomwebScan):
        from .scan import series_files

        return series_files(scan, series_uid)
    inst = scan.instances
    sub = inst[inst["series_uid"] == series_uid]
    if sub.empty:
        raise RepositoryError(
            f"series {series_uid!r} not found in the DICOMweb scan of {scan.url} ({len(scan.series)} series)"
        )
    # content key: every scanned attribute of every instance of the series (sorted by SOP Instance UID)
    rows = sub.drop(columns=["path"]).sort_values("sop_uid", kind="stable").astype(str)
    digest = hashlib.sha1(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
    return DicomwebSeries(
        url=scan.url,
        study_uid=str(sub["study_uid"].iloc[0]),
        series_uid=series_uid,
        content_key=digest,
        cache_dir=str(Path(cache_dir) if cache_dir is not None else default_series_cache_dir(scan.url)),
        max_bytes=max_bytes,
        n_instances=len(sub),
        token_env=token_env,
        header_env=header_env,
    )
