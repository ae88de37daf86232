"""Parallel, incremental scan of a DICOM repository folder.

A scan walks the folder tree (any nesting, any file names), reads the header of every file that is new
or changed since the last scan (key: relative path + size in bytes + ``st_mtime_ns`` + ``st_ctime_ns``) in a
process pool, and keeps one row per file in a Parquet index (``files.parquet`` in ``index_dir``, by default
outside the tree: :func:`kicc_analysis._cache.default_cache_dir`). Files that are not DICOM or are corrupt are
indexed too (with the reason), and every directory entry that is not read (unreadable or symlinked folder,
broken link, FIFO...) is listed with the reason, so an unchanged tree is re-scanned without opening any file
and nothing is silently dropped. On Linux the tree is listed by GNU ``find`` in a separate process (while this
one loads the cached tables), elsewhere by a Python walk; both give the same records.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISREG

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from .._cache import cache_key, content_digest, default_cache_dir, is_read_only
from ..errors import RepositoryError
from ..progress import progress_bar
from .header import HeaderResult, read_header
from .sealed import SECRET_NAME, cache_secret, mask_key, seal_table, unseal_table
from .selection import select_ct_series
from .tables import FLAT_COLUMNS, INT_INDEX_COLUMNS, TEXT_COLUMNS, build_instances, build_series, build_studies

__all__ = [
    "INDEX_DIRNAME",
    "INDEX_VERSION",
    "RepositoryScan",
    "fs_path",
    "scan_repository",
    "series_file_lists",
    "series_files",
]

#: Name of index folders written inside a tree by earlier versions (or on request): never scanned.
INDEX_DIRNAME = ".kicc_index"
INDEX_FILE = "files.parquet"
#: The sealed (encrypted) identifying columns of a cached table ``<name>.arrow`` / ``files.parquet``.
SEALED_SUFFIX = ".sealed"
#: Bump when the index columns or the parser's output change: older indexes are then rebuilt.
INDEX_VERSION = "4"
#: Below this many files to read, the scan stays in-process (starting and feeding a pool costs ~50 ms).
POOL_THRESHOLD = 200

_SCHEMA = pa.schema(
    [
        pa.field(
            c,
            pa.string() if c in TEXT_COLUMNS else pa.int64() if c in INT_INDEX_COLUMNS else pa.float64(),
        )
        for c in FLAT_COLUMNS
    ]
)


@dataclass(frozen=True, repr=False)
class RepositoryScan:
    """Result of :func:`scan_repository`.

    Attributes
    ----------
    root
        The scanned folder.
    instances
        One row per DICOM file kept (``path, relpath, size, mtime, patient_id, study_uid, series_uid,
        sop_uid, sop_class_uid, modality, instance_number, image_position_x/y/z, slice_position`` (mm),
        orientation cosines ``orient_rx..orient_cz``, ``plane, rows, columns, pixel_spacing_row/col``
        (mm), ``slice_thickness`` (mm), ``kernel, body_part, transfer_syntax, compressed,
        study_date``...). ``study_date`` is kept for analyses but is never printed by this package.
    series
        One row per series (see :func:`kicc_analysis.repository.tables.build_series`).
    studies
        One row per study with the selected CT series.
    skipped
        Files not in ``instances``: ``path, relpath, size, reason, kind`` (``kind`` is one of
        "not DICOM", "corrupt DICOM", "unreadable", "DICOMDIR", "duplicate SOP instance").
    selection
        Per CT study, the series to quantify and the reason
        (:func:`kicc_analysis.repository.select_ct_series`).
    n_files
        Files found under ``root`` (index folder excluded).
    n_read
        Files whose header was read in this scan.
    n_reused
        Files taken unchanged from the index.
    n_removed
        Index rows dropped because their file no longer exists.
    index_path
        Parquet index written/used, or None when it could not be written.
    """

    root: Path
    instances: pd.DataFrame
    series: pd.DataFrame
    studies: pd.DataFrame
    skipped: pd.DataFrame
    selection: pd.DataFrame
    n_files: int
    n_read: int
    n_reused: int
    n_removed: int = 0
    index_path: Path | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    n_verify_changed: int | None = None
    tag_key: bytes = field(default=b"", compare=False)

    def masked_tables(self) -> dict[str, pd.DataFrame]:
        """The five tables as they may be written or shown: no identifier beyond the pseudonym.

        ``patient_id`` values that are not pseudonyms are masked (:func:`kicc_analysis.privacy.mask_ids`); in
        ``path``, ``relpath`` and ``folder`` every component holding an identifier is masked
        (:func:`kicc_analysis.privacy.mask_path`: Hangul or Latin names, RRNs, phones, any of this scan's
        non-pseudonym PatientIDs), with a keyed tag so that two patients' folders stay apart; every other free-text
        column (descriptions, skip reasons, selection notes) has each identifier masked in place
        (:func:`kicc_analysis.privacy.mask_field`). UIDs, dates and coded columns are kept.
        """
        from ..privacy import is_pseudonym, mask_field, mask_ids, mask_path
        from .sealed import CLEAR_TEXT_COLUMNS

        known: set[str] = set()
        for name in ("instances", "studies"):
            table = getattr(self, name)
            if "patient_id" in table.columns:
                known.update(str(v) for v in table["patient_id"].dropna().unique() if not is_pseudonym(str(v)))
        known_values = sorted(known)
        key = self.tag_key or None
        out = {}
        for name in ("instances", "series", "studies", "skipped", "selection"):
            table = getattr(self, name).copy()
            for column in table.columns:
                values = table[column]
                if column == "patient_id":
                    table[column] = mask_ids(values.astype(object))
                    continue
                if column in CLEAR_TEXT_COLUMNS or not (
                    values.dtype == object or isinstance(values.dtype, pd.StringDtype)
                ):
                    continue
                if column in ("path", "relpath", "folder"):
                    mask = functools.partial(mask_path, known_values=known_values, key=key)
                else:
                    mask = functools.partial(mask_field, known_values=known_values, key=key)
                if column in ("path", "relpath"):  # one check per folder and per file name, not per path
                    table[column] = _mask_paths(values, mask)
                else:
                    table[column] = values.astype(object).map({v: mask(v) for v in values.dropna().unique()})
            out[name] = table
        return out

    def write_tables(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write :meth:`masked_tables` as ``<name>.csv`` (UTF-8) in ``folder`` (created); returns the files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.masked_tables().items():
            path = folder / f"{name}.csv"
            table.to_csv(path, index=False)
            written.append(path)
        return written

    def summary(self) -> str:
        """A short text report (no patient identifiers or dates)."""
        lines = [
            f"Repository scan of {_text_name(str(self.root))}",
            f"  files found: {self.n_files} (read {self.n_read}, reused from index {self.n_reused}, "
            f"removed from index {self.n_removed})",
            f"  DICOM instances: {len(self.instances)} in {len(self.series)} series, {len(self.studies)} studies",
        ]
        if not self.series.empty:
            counts = self.series["modality"].fillna("?").value_counts()
            lines.append("  series by modality: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if not self.selection.empty:
            chosen = int(self.selection["series_uid"].notna().sum())
            lines.append(f"  CT studies: {len(self.selection)}, with a series selected: {chosen}")
        if not self.skipped.empty:
            kinds = self.skipped["kind"].value_counts()
            lines.append(
                f"  skipped files: {len(self.skipped)} (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")"
            )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"RepositoryScan(root={str(self.root)!r}, instances={len(self.instances)}, series={len(self.series)}, "
            f"studies={len(self.studies)}, skipped={len(self.skipped)}, n_read={self.n_read}, "
            f"n_reused={self.n_reused})"
        )


#: Skip reasons of directory entries the scanner did not read (the text before ":" is the ``kind``).
REASON_INDEX_FOLDER = "index folder: derived files of kicc-analysis, not scanned"
REASON_LINKED_FOLDER = "symbolic link to a folder: not followed (use --follow-symlinks / follow_symlinks=True)"
REASON_BROKEN_LINK = "broken symbolic link: its target is missing or it loops"
REASON_NOT_REGULAR = "not a regular file: FIFO, socket or device"
REASON_SEEN_FOLDER = "folder already scanned: a symbolic link loop or a second path to a scanned folder"

#: Bytes of a file name that are not UTF-8 (EUC-KR/CP949 names of Korean PACS exports) are kept losslessly in
#: ``relpath``/``path`` as the characters U+10FC80..U+10FCFF (byte 0x80..0xFF); :func:`fs_path` maps them back.
_ESCAPE_BASE = 0x10FC00


def _text_name(name: str) -> str:
    """A file name (decoded by ``os.fsdecode``) as UTF-8-safe text: undecodable bytes become U+10FC80..FF."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return "".join(chr(_ESCAPE_BASE + ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in name)


def fs_path(text: str) -> str:
    """The real file-system path of a ``relpath``/``path`` value of the scan tables (see :func:`_text_name`).

    >>> fs_path("a/b.dcm")
    'a/b.dcm'
    >>> fs_path(chr(0x10FCC8) + ".dcm") == os.fsdecode(bytes([0xC8]) + b".dcm")
    True
    """
    if text.isascii() or not any(0x10FC80 <= ord(c) <= 0x10FCFF for c in text):
        return text
    return "".join(chr(0xDC00 + ord(c) - _ESCAPE_BASE) if 0x10FC80 <= ord(c) <= 0x10FCFF else c for c in text)


Entry = tuple[str, int, int, int]  # relative path (text), size in bytes, mtime_ns, ctime_ns
Problem = tuple[str, str]  # relative path (text), reason


def _walk(root: str, exclude: set[str], follow_symlinks: bool = False) -> tuple[list[Entry], list[Problem]]:
    """Every directory entry under ``root``: regular files as (relpath, size, mtime_ns, ctime_ns), and every
    entry not descended into or not a regular file as (relpath, reason).

    Symlinked folders are listed as problems unless ``follow_symlinks``; then they are walked after the real
    tree, each folder (device, inode) once, so loops end. Index folders (``exclude``, any ``.kicc_index``) are
    not walked (listed with the reason). Files that vanish during the walk are no longer on disk: not listed.
    This loop is the floor of an unchanged re-scan (one ``stat`` per file), so it is kept lean.
    """
    out: list[Entry] = []
    problems: list[Problem] = []
    append = out.append
    scandir = os.scandir
    stack = [(root, "")]
    deferred: list[tuple[str, str]] = []
    visited: set[tuple[int, int]] = set()
    if follow_symlinks:
        st = os.stat(root)
        visited.add((st.st_dev, st.st_ino))
    while stack or deferred:
        if not stack:
            path, rel = deferred.pop(0)
            try:
                st = os.stat(path)
            except OSError:
                problems.append((rel, REASON_BROKEN_LINK))
                continue
            if (st.st_dev, st.st_ino) in visited:
                problems.append((rel, REASON_SEEN_FOLDER))
                continue
            visited.add((st.st_dev, st.st_ino))
            stack.append((path, rel + "/"))
            continue
        folder, prefix = stack.pop()
        try:
            it = scandir(folder)
        except OSError as exc:
            if not prefix:
                raise RepositoryError(f"cannot read repository folder {folder}: {exc.strerror or exc}") from exc
            problems.append((prefix[:-1], f"unreadable folder: {exc.strerror or exc}; its files were not scanned"))
            continue
        with it:
            for e in it:
                name = e.name if e.name.isascii() else _text_name(e.name)
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.name == INDEX_DIRNAME or e.path in exclude:
                            problems.append((prefix + name, REASON_INDEX_FOLDER))
                            continue
                        if follow_symlinks:
                            st = e.stat(follow_symlinks=False)
                            if (st.st_dev, st.st_ino) in visited:
                                problems.append((prefix + name, REASON_SEEN_FOLDER))
                                continue
                            visited.add((st.st_dev, st.st_ino))
                        stack.append((e.path, f"{prefix}{name}/"))
                    elif e.is_symlink():
                        try:
                            st = e.stat()
                        except OSError:
                            problems.append((prefix + name, REASON_BROKEN_LINK))
                            continue
                        if S_ISREG(st.st_mode):
                            append((prefix + name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                        elif S_ISDIR(st.st_mode):
                            if follow_symlinks:
                                deferred.append((e.path, prefix + name))
                            else:
                                problems.append((prefix + name, REASON_LINKED_FOLDER))
                        else:
                            problems.append((prefix + name, REASON_NOT_REGULAR))
                    else:
                        st = e.stat()
                        if S_ISREG(st.st_mode):
                            append((prefix + name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                        else:
                            problems.append((prefix + name, REASON_NOT_REGULAR))
                except OSError:
                    continue  # vanished during the walk: no longer on disk
    return out, problems


# ----------------------------------------------------------------------------------------------------------------------
# Listing the tree with GNU find (Linux): the same records as :func:`_walk`, at C speed, in a separate process, so
# the main process loads the cached tables meanwhile. An unchanged re-scan is bounded by one ``stat`` per file; find
# does it ~1.5x faster than the Python loop and the table load is hidden behind it. find prints every entry that is
# not a folder it descends into (regular files, symlinks, FIFOs..., pruned index folders); when it cannot read a
# folder it fails and the Python walk (which reports the folder) is used.

#: One record per entry: type and target type (``ff`` regular file, ``lf`` symlink to a regular file, ``ld`` to a
#: folder, ``dd`` pruned index folder, ...), relative path, size (bytes), mtime and ctime (seconds since the epoch
#: with a 10-digit fraction in GNU find >= 4.3, i.e. exact nanoseconds + a "0").
_FIND_FORMAT = "%y%Y%P\\0%s\\0%T@\\0%C@\\0"
_FIND_FIELDS = 4
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


@functools.lru_cache(maxsize=1)
def _find_program() -> str | None:
    """Path of the ``find`` program on Linux (GNU findutils there), else None (the Python walk is used)."""
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("find")


def _find_command(root: str, exclude: set[str], follow_symlinks: bool = False) -> list[str] | None:
    """The ``find`` command listing what :func:`_walk` lists (same pruning, symlinked folders not followed).

    None where find is missing, ``KICC_SCAN_WALK=python`` is set, or symlinked folders are followed (the loop-safe
    Python walk does that).
    """
    prog = _find_program()
    if prog is None or follow_symlinks or os.environ.get("KICC_SCAN_WALK", "").lower() == "python":
        return None
    prune = ["-name", INDEX_DIRNAME]
    for ex in sorted(exclude):
        if ex.startswith(root.rstrip(os.sep) + os.sep):  # an index folder inside the tree (not under another name)
            prune += ["-o", "-path", ex.translate(_GLOB_SPECIAL)]
    # -mindepth 1: the root itself is never pruned (as in _walk); -P: symbolic links are not followed, but
    # listed with their target's type (links to regular files are stat-ed by Python, as DirEntry.stat() does).
    return [
        prog, "-P", root, "-mindepth", "1",
        "(", "-type", "d", "(", *prune, ")", "-printf", _FIND_FORMAT, "-prune", ")",
        "-o", "(", "!", "-type", "d", "-printf", _FIND_FORMAT, ")",
    ]  # fmt: skip


def _start_find(root: str, exclude: set[str], follow_symlinks: bool = False) -> subprocess.Popen[bytes] | None:
    """Start listing ``root`` with find in the background; None where find is unavailable."""
    cmd = _find_command(root, exclude, follow_symlinks)
    if cmd is None:
        return None
    try:
        return subprocess.Popen(  # noqa: S603 - fixed program and arguments, no shell
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},
        )
    except OSError:
        return None


def _collect_find(proc: subprocess.Popen[bytes]) -> bytes | None:
    """find's output, or None when it failed (unreadable folder, file vanished, not GNU find...)."""
    try:
        out, _ = proc.communicate()
    except BaseException:  # e.g. KeyboardInterrupt: do not leave find running
        proc.kill()
        proc.wait()
        raise
    return out if proc.returncode == 0 else None


def _ns(stamp: bytes) -> int | None:
    sec, dot, frac = stamp.partition(b".")
    if not (dot and len(frac) >= 9 and sec.isdigit() and frac.isdigit()):
        return None
    return int(sec) * 1_000_000_000 + int(frac[:9])


def _parse_find(raw: bytes, root: str) -> tuple[list[Entry], list[Problem]] | None:
    """The records of :func:`_walk` from find's output, or None if it is not as expected.

    ``%T@``/``%C@`` are converted to integer nanoseconds exactly from their string parts (no float). Negative or
    lower-precision timestamps (pre-1970 files, other find versions) return None: the Python walk is used.
    Symbolic links to regular files are stat-ed here (size and times of the target, like ``_walk``).
    """
    parts = raw.split(b"\0")
    if len(parts) % _FIND_FIELDS != 1 or parts[-1]:
        return None
    out: list[Entry] = []
    problems: list[Problem] = []
    append = out.append
    fsdecode = os.fsdecode
    for rec, size, mstamp, cstamp in zip(parts[0:-1:4], parts[1::4], parts[2::4], parts[3::4], strict=True):
        mtime, ctime = _ns(mstamp), _ns(cstamp)
        if mtime is None or ctime is None or not size.isdigit() or len(rec) < 3:
            return None
        kind, target = rec[:1], rec[1:2]
        rel = fsdecode(rec[2:])
        if not rel.isascii():
            rel = _text_name(rel)
        if kind == b"f":
            append((rel, int(size), mtime, ctime))
        elif kind == b"l":
            if target == b"f":
                try:
                    st = os.stat(os.path.join(root, fsdecode(rec[2:])))
                except OSError:
                    continue  # vanished since find listed it
                if S_ISREG(st.st_mode):
                    append((rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                    continue
                problems.append((rel, REASON_NOT_REGULAR))
            elif target == b"d":
                problems.append((rel, REASON_LINKED_FOLDER))
            elif target in (b"L", b"N", b"l", b"?"):
                problems.append((rel, REASON_BROKEN_LINK))
            else:
                problems.append((rel, REASON_NOT_REGULAR))
        elif kind == b"d":
            problems.append((rel, REASON_INDEX_FOLDER))
        elif kind in (b"p", b"s", b"c", b"b", b"D"):
            problems.append((rel, REASON_NOT_REGULAR))
        else:
            return None
    return out, problems


class _Listing:
    """The entries of the tree: count and fingerprint at once, the records on demand.

    From find's raw output of a tree of regular files only, the fingerprint is a hash of the bytes (no parsing),
    so an unchanged re-scan never builds the list. When the output cannot be parsed, :meth:`entries` falls back
    to the Python walk and updates ``token`` (the caller then checks the cache again with it).
    """

    def __init__(self, root: Path, exclude: set[str], raw: bytes | None, follow_symlinks: bool = False) -> None:
        self.root = root
        self.exclude = exclude
        self.follow_symlinks = follow_symlinks
        self._raw = raw
        self._entries: list[Entry] | None = None
        self._problems: list[Problem] = []
        if raw is not None:
            n = raw.count(b"\0") // _FIND_FIELDS
            if raw.count(b"\0ff") + raw.startswith(b"ff") != n:
                # links, FIFOs, pruned folders...: parse now (link targets' size/times are not in the output)
                self._raw = None
                parsed = _parse_find(raw, str(root))
                if parsed is not None:
                    self._entries, self._problems = parsed
                    self.method = "find"
                    self.token = _tree_token(self._entries, self._problems, root, self.method)
                    self.n_files = len(self._entries) + len(self._problems)
                    return
            else:
                self.method = "find"
                self.token = _raw_token(raw, root)
                self.n_files = n
                return
        self._python_walk()

    def _python_walk(self) -> None:
        self._raw = None
        self._entries, self._problems = _walk(str(self.root), self.exclude, self.follow_symlinks)
        self.method = "walk-follow" if self.follow_symlinks else "walk"
        self.token = _tree_token(self._entries, self._problems, self.root, self.method)
        self.n_files = len(self._entries) + len(self._problems)

    def entries(self) -> list[Entry]:
        """Regular files: (relpath, size in bytes, mtime_ns, ctime_ns)."""
        if self._entries is None and self._raw is not None:
            parsed = _parse_find(self._raw, str(self.root))
            if parsed is None:
                self._python_walk()
            else:
                self._entries, self._problems = parsed
        assert self._entries is not None
        return self._entries

    def problems(self) -> list[Problem]:
        """Entries not read: (relpath, reason)."""
        self.entries()
        return self._problems


def _list_files(
    root: Path, exclude: set[str], proc: subprocess.Popen[bytes] | None, follow_symlinks: bool = False
) -> _Listing:
    return _Listing(root, exclude, _collect_find(proc) if proc is not None else None, follow_symlinks)


def geometry_columns(rec: dict) -> tuple[tuple, tuple, tuple, tuple]:
    """The geometry values of a header record as fixed-length tuples for the flat index columns.

    Image Position (3 values), Image Orientation (6), Pixel Spacing and Imager Pixel Spacing (2, a single value
    repeated); a missing or malformed value becomes ``None`` in every position.

    >>> geometry_columns({"image_position": [0, 0, 1], "image_orientation": None, "pixel_spacing": [0.7],
    ...                   "imager_pixel_spacing": [0.1, 0.2, 0.3]})
    ((0, 0, 1), (None, None, None, None, None, None), (0.7, 0.7), (None, None))
    """
    ipp = tuple(rec.get("image_position") or ())
    iop = tuple(rec.get("image_orientation") or ())
    ps = tuple(rec.get("pixel_spacing") or ())
    ips = tuple(rec.get("imager_pixel_spacing") or ())
    ipp = ipp if len(ipp) == 3 else (None, None, None)
    iop = iop if len(iop) == 6 else (None,) * 6
    ps = ps if len(ps) == 2 else (ps[0], ps[0]) if len(ps) == 1 else (None, None)
    ips = ips if len(ips) == 2 else (ips[0], ips[0]) if len(ips) == 1 else (None, None)
    return ipp, iop, ps, ips


def _flatten(entry: Entry, res: HeaderResult) -> tuple:
    """One index row (in :data:`FLAT_COLUMNS` order) from a listing record and its header result."""
    rel, size, mtime_ns, ctime_ns = entry
    rec = res.record
    if rec is None:
        return (rel, size, mtime_ns, ctime_ns, res.error, res.header_hash) + (None,) * (len(FLAT_COLUMNS) - 6)
    ipp, iop, ps, ips = geometry_columns(rec)
    g = rec.get
    return (
        rel,
        size,
        mtime_ns,
        ctime_ns,
        None,
        res.header_hash,
        g("parser"),
        g("media_sop_class_uid"),
        g("media_sop_uid"),
        g("transfer_syntax"),
        g("specific_character_set"),
        g("image_type"),
        g("sop_class_uid"),
        g("sop_uid"),
        g("study_date"),
        g("modality"),
        g("manufacturer"),
        g("study_description"),
        g("series_description"),
        g("patient_id"),
        g("body_part"),
        g("slice_thickness"),
        g("spacing_between_slices"),
        ips[0],
        ips[1],
        g("kernel"),
        g("view_position"),
        g("study_uid"),
        g("series_uid"),
        g("series_number"),
        g("acquisition_number"),
        g("instance_number"),
        *ipp,
        *iop,
        g("frame_of_reference_uid"),
        g("samples_per_pixel"),
        g("photometric_interpretation"),
        g("number_of_frames"),
        g("rows"),
        g("columns"),
        *ps,
        g("bits_allocated"),
        g("pixel_representation"),
        g("pixel_padding_value"),
        g("rescale_intercept"),
        g("rescale_slope"),
    )


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    """Columnar (Arrow) form of index rows: compact to send between processes and to keep in memory."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(FLAT_COLUMNS)
    arrays = [pa.array(list(col), type=_SCHEMA.field(i).type, from_pandas=True) for i, col in enumerate(cols)]
    return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)


def _read_chunk(root: str, items: Sequence[Entry]) -> pa.RecordBatch:
    """Worker: read the headers of a chunk of files; never raises for a bad file."""
    out = []
    for entry in items:
        rel = entry[0]
        res = read_header(os.path.join(root, rel if rel.isascii() else fs_path(rel)), size=entry[1])
        out.append(_flatten(entry, res))
    return _batch(out)


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _read_all(root: str, todo: list[Entry], workers: int, show: bool | None) -> pa.Table:
    """Read headers of ``todo`` files, in a process pool when there are enough of them."""
    if not todo:
        return _SCHEMA.empty_table()
    if workers <= 1 or len(todo) < POOL_THRESHOLD:
        parts = [
            _read_chunk(root, chunk)
            for chunk in progress_bar(list(_chunks(todo, 64)), show=show, desc="DICOM headers", unit="chunk")
        ]
        return pa.Table.from_batches(parts, schema=_SCHEMA)
    chunk_size = max(32, min(512, len(todo) // (workers * 8) or 32))
    # On Linux "fork" starts workers in milliseconds and needs no importable __main__ (scripts piped to
    # python, notebooks); the workers only read files. Elsewhere (macOS, Windows) "spawn" is the safe choice.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    chunks = list(_chunks(todo, chunk_size))
    done: dict[int, pa.RecordBatch] = {}
    bar = progress_bar(total=len(todo), show=show, desc="DICOM headers", unit="file")
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
            futures = {pool.submit(_read_chunk, root, c): k for k, c in enumerate(chunks)}
            try:
                for fut in as_completed(futures):
                    part = fut.result()
                    done[futures[fut]] = part
                    bar.update(part.num_rows)
            except BaseException:  # e.g. KeyboardInterrupt in a notebook: drop the queued chunks at once
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    except BrokenProcessPool:
        warnings.warn("header-reading worker processes died; finishing the scan in this process", stacklevel=3)
        for k, c in enumerate(chunks):
            if k not in done:
                done[k] = _read_chunk(root, c)
                bar.update(len(c))
    finally:
        bar.close()
    return pa.Table.from_batches([done[k] for k in sorted(done)], schema=_SCHEMA)


def _load_index(path: Path, secret: bytes | None) -> tuple[pd.DataFrame | None, str | None]:
    if not path.exists():
        return None, None
    try:
        clear = pq.read_table(path)
        meta = clear.schema.metadata or {}
        if meta.get(b"kicc_index_version") != INDEX_VERSION.encode():
            return None, f"index {path} has another format version; rebuilt"
        sealed = path.with_suffix(SEALED_SUFFIX).read_bytes()
    except Exception as exc:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        return None, f"index {path} unreadable ({type(exc).__name__}); rebuilt"
    table = unseal_table(clear, sealed, secret) if secret is not None else None
    if table is None:
        return None, f"index {path} was sealed under another secret ({SECRET_NAME}) or is damaged; rebuilt"
    if meta.get(b"kicc_index_version") != INDEX_VERSION.encode() or table.schema.names != list(FLAT_COLUMNS):
        return None, f"index {path} has another format version; rebuilt"
    return table.to_pandas(), None


def _temp_path(folder: Path, key: str) -> str:
    """A new temporary file in ``folder`` (renamed into place once written), readable like a normal file."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}-", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _write_sealed(folder: Path, name: str, data: bytes) -> None:
    tmp = _temp_path(folder, name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, folder / name)


def _save_index(path: Path, df: pd.DataFrame, token: str, secret: bytes | None) -> str | None:
    if secret is None:
        return (
            f"index not saved to {path} (no secret {SECRET_NAME} could be made there); the next scan reads every file"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(df[list(FLAT_COLUMNS)], schema=_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata({"kicc_index_version": INDEX_VERSION, "kicc_tree_token": token})
        clear, sealed = seal_table(table, secret)
        _write_sealed(path.parent, path.with_suffix(SEALED_SUFFIX).name, sealed)
        tmp = _temp_path(path.parent, "files")
        pq.write_table(clear, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError as exc:
        return f"index not saved to {path} ({exc.strerror or exc}); the next scan will read every file again"
    return None


def scan_repository(
    root: str | os.PathLike[str],
    *,
    index_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    show_progress: bool | None = None,
    use_index: bool = True,
    min_slices: int = 10,
    kernel_first: bool = False,
    follow_symlinks: bool = False,
    verify: bool = False,
) -> RepositoryScan:
    """Scan a folder tree of DICOM files into instance, series and study tables.

    Parameters
    ----------
    root
        Folder to scan (any nesting; names with or without ``.dcm``; DICOMDIR and non-DICOM files allowed).
    index_dir
        Folder of the incremental Parquet index. Default: ``<cache>/index`` with ``<cache>`` from
        :func:`kicc_analysis._cache.default_cache_dir` (``$KICC_CACHE`` or ``~/.cache/kicc-analysis``), never
        inside ``root``. An ``index_dir`` inside a read-only ``root`` (mode bits, read-only mount or a
        ``.kicc-read-only`` marker; root users included) is not written. When the index cannot be written, the
        scan still succeeds and says so in ``warnings``.
    workers
        Processes reading headers (default 2). Small scans (< 200 files to read) stay in-process.
    show_progress
        Show a progress bar (default: unless ``KICC_NO_PROGRESS`` is set).
    use_index
        False reads every file and leaves the index untouched.
    min_slices
        Fewest slices for a CT series to be selectable (see :func:`select_ct_series`).
    kernel_first
        Rank the lung/sharp kernel preference before slice thickness in the selection.
    follow_symlinks
        Walk symlinked folders too (each folder once: loops end, a folder reached twice is listed in ``skipped``).
        Default False: each symlinked folder is listed in ``skipped`` with the reason.
    verify
        Re-read every header, compare each file's header hash with the index and report (in ``warnings`` and
        ``n_verify_changed``) files that changed without a change of size, mtime or ctime.

    Returns
    -------
    RepositoryScan

    Raises
    ------
    RepositoryError
        ``root`` does not exist, is not a folder, cannot be read, or contains nothing at all. Problems of single
        files or folders are reported in ``RepositoryScan.skipped``, never raised.

    Notes
    -----
    Fast path: a file is re-read when its size, ``mtime_ns`` or ``ctime_ns`` changed (even by 1 ns). ``ctime``
    cannot be set back by a user, so an in-place edit with the mtime restored, or a ``chmod`` that makes an
    unreadable file readable, is noticed; the fast path assumes the file system updates ctime on every change
    (all POSIX file systems do; some network and FAT mounts do not: use ``verify=True`` there). On Linux the tree
    is listed by GNU ``find``; where it is missing or fails the Python walk is used (``KICC_SCAN_WALK=python``
    forces it); both give the same listing. Every directory entry is either read (``instances`` or ``skipped``
    with the header's problem) or listed in ``skipped`` with the reason it was not read.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.exists():
        raise RepositoryError(f"repository folder {root_path} does not exist (expected a folder of DICOM files)")
    if not root_path.is_dir():
        raise RepositoryError(f"repository path {root_path} is a file, expected a folder of DICOM files")
    if index_dir is not None:
        index_folder = Path(index_dir).expanduser().resolve()
    else:
        index_folder = default_cache_dir(root_path) / "index"
    index_path = index_folder / INDEX_FILE
    notes: list[str] = []
    inside = index_folder == root_path or root_path in index_folder.parents
    if use_index and inside and is_read_only(root_path):
        notes.append(
            f"repository {root_path} is read-only: the index was not written into it (index_dir {index_folder}); "
            "the next scan will read every file again"
        )
        use_index = False

    exclude = {str(index_folder)}
    # find lists the tree in another process while this one loads the cached tables (an unchanged re-scan
    # costs max(listing, load) on 2 cores); the cache is used only if its fingerprint matches the listing.
    finder = _start_find(str(root_path), exclude, follow_symlinks)
    read_cache = use_index and not verify
    secret = cache_secret(index_folder) if use_index else None
    raw_cache = (
        _read_cached_tables(index_folder, root_path, None, secret) if read_cache and finder is not None else None
    )
    listing = _list_files(root_path, exclude, finder, follow_symlinks)
    if listing.n_files == 0:
        raise RepositoryError(f"repository folder {root_path} contains no files (expected DICOM files, any nesting)")

    # The fingerprint follows the listing order (stable for unchanged folders); if a file system ever
    # lists an unchanged folder in another order, the scan merely takes the slower path below.
    params = cache_key(min_slices=min_slices, kernel_first=kernel_first)
    if read_cache:
        if raw_cache is None:  # Python walk: load the cache only now (loading it in a thread was slower: GIL)
            raw_cache = _read_cached_tables(index_folder, root_path, listing.token, secret)
        cached = _valid_cached_tables(raw_cache, listing.token, params)
        if cached is None:
            token = listing.token
            listing.entries()  # find output that cannot be parsed falls back to the Python walk: new token
            if listing.token != token:
                cached = _valid_cached_tables(
                    _read_cached_tables(index_folder, root_path, listing.token, secret), listing.token, params
                )
        if cached is not None:
            n = listing.n_files
            return _finish_scan(
                root_path, cached, n, 0, n, 0, index_path, notes, min_slices, kernel_first, mask_key(secret)
            )
        raw_cache = None  # free the memory of stale tables before reading headers
    found = listing.entries()
    problems = listing.problems()
    token = listing.token

    old, note = _load_index(index_path, secret) if use_index else (None, None)
    if note:
        notes.append(note)
    current = pd.DataFrame(found, columns=list(_KEY))
    reused = _SCHEMA.empty_table().to_pandas()
    n_removed = 0
    key = list(_KEY)
    if old is not None and not old.empty:
        merged = old.merge(current, on=key, how="inner")
        n_removed = int((~old["relpath"].isin(current["relpath"])).sum())
        if verify:
            todo = found
        else:
            reused = merged[list(FLAT_COLUMNS)]
            todo_mask = ~current.set_index(key).index.isin(merged.set_index(key).index)
            todo = [tuple(r) for r in current.loc[todo_mask].itertuples(index=False, name=None)]
    else:
        merged = None
        todo = found
    new = _read_all(str(root_path), todo, workers, show_progress).to_pandas()
    n_verify_changed = None
    if verify:
        n_verify_changed = 0
        if merged is not None and not merged.empty:
            both = merged[[*key, "header_hash"]].merge(new[[*key, "header_hash"]], on=key, suffixes=("_old", ""))
            n_verify_changed = int((both["header_hash_old"].fillna("") != both["header_hash"].fillna("")).sum())
        notes.append(
            f"verify: {len(todo)} header(s) re-read; {n_verify_changed} file(s) had changed on disk without a change "
            "of size, mtime or ctime"
        )
    files = pd.concat([reused, new], ignore_index=True) if len(reused) else new
    files = files.sort_values("relpath", kind="stable").reset_index(drop=True)

    saved_path: Path | None = index_path if use_index else None
    if use_index:
        if secret is None:
            secret = cache_secret(index_folder, create=True)
        err = _save_index(index_path, files, token, secret)
        if err:
            notes.append(err)
            saved_path = None

    instances, series, skipped = _build_tables(root_path, files, problems)
    tables = {"instances": instances, "series": series, "skipped": skipped}
    scan = _finish_scan(
        root_path,
        tables,
        len(files) + len(problems),
        len(todo),
        len(reused),
        n_removed,
        saved_path,
        notes,
        min_slices,
        kernel_first,
        mask_key(secret),
    )
    if n_verify_changed is not None:
        scan = dataclasses.replace(scan, n_verify_changed=n_verify_changed)
    if saved_path is not None and secret is not None:
        tables.update(selection=scan.selection, studies=scan.studies)
        err = _save_tables(index_folder, token, params, tables, secret)
        if err:
            notes.append(err)
            scan = dataclasses.replace(scan, warnings=tuple(notes))
    return scan


#: The identity of a file in the index: a file is read again when any of these changed.
_KEY = ("relpath", "size", "mtime_ns", "ctime_ns")


def _tree_token(found: list[Entry], problems: list[Problem], root: Path, method: str = "walk") -> str:
    """Fingerprint of the tree (root, relative paths in listing order, sizes, mtimes, ctimes, entries not read)
    and of the table format.

    ``pickle`` serialises the lists of tuples of our own ints and strings (never repository content) in one C
    call, deterministically, which makes this ~10x cheaper than joining the fields in Python.
    """
    listing = pickle.dumps((found, problems), protocol=5)
    return content_digest(INDEX_VERSION, method, str(root), str(len(found)), listing)


def _raw_token(raw: bytes, root: Path) -> str:
    """Fingerprint of the tree from find's output bytes (paths, sizes, mtimes, ctimes in listing order): ~2 ms."""
    return content_digest(INDEX_VERSION, "find-raw", str(root), raw)


#: Table cache (Arrow IPC / Feather: memory-mapped, the fastest format to load back into pandas).
_TABLES = ("instances", "series", "skipped", "selection", "studies")
#: Tables that depend on the selection parameters, not only on the files.
_PARAM_TABLES = ("selection", "studies")


def _read_cached_tables(
    folder: Path, root: Path, token: str | None = None, secret: bytes | None = None
) -> dict[str, tuple[dict, pd.DataFrame]] | None:
    """Every cached table with its metadata, or None when the cache is absent, broken, sealed under another
    secret or (when ``token`` is given) of another tree. Without ``token`` the tables are loaded unchecked (while
    find lists the tree): :func:`_valid_cached_tables` checks them afterwards (the fingerprint includes ``root``,
    from which the ``path`` columns are rebuilt: ``root/relpath``)."""
    if secret is None:
        return None
    try:
        index_meta = pq.read_schema(folder / INDEX_FILE).metadata or {}
        if index_meta.get(b"kicc_index_version") != INDEX_VERSION.encode():
            return None
        if token is not None and index_meta.get(b"kicc_tree_token") != token.encode():
            return None
        out: dict[str, tuple[dict, pd.DataFrame]] = {"index": (index_meta, pd.DataFrame())}
        for key in _TABLES:
            clear = feather.read_table(folder / f"{key}.arrow", memory_map=True)
            table = unseal_table(clear, (folder / f"{key}{SEALED_SUFFIX}").read_bytes(), secret)
            if table is None:
                return None
            if table.schema.metadata.get(b"kicc_path_from_root") == b"1":
                table = table.add_column(0, "path", _join_root(root, table.column("relpath")))
            mapper = _STRING_MAPPER if key == "instances" else None
            out[key] = (table.schema.metadata or {}, table.to_pandas(split_blocks=True, types_mapper=mapper))
        return out
    except Exception:  # noqa: BLE001 - missing or broken cache: rebuild the tables
        return None


def _join_root(root: Path, relpaths: pa.ChunkedArray) -> pa.ChunkedArray:
    """``os.path.join(root, relpath)`` for a column of relative paths, in Arrow (no Python loop)."""
    prefix = _text_name(str(root))
    prefix = prefix if prefix.endswith(os.sep) else prefix + os.sep
    if not (pa.types.is_string(relpaths.type) or pa.types.is_large_string(relpaths.type)):
        relpaths = relpaths.cast(pa.string())  # an empty table's column of nulls
    return pc.binary_join_element_wise(pa.scalar(prefix, relpaths.type), relpaths, pa.scalar("", relpaths.type))


def _valid_cached_tables(
    raw: dict[str, tuple[dict, pd.DataFrame]] | None, token: str, params: str
) -> dict[str, pd.DataFrame] | None:
    """The cached tables when they were built from this very tree (same fingerprint), else None.

    ``selection`` and ``studies`` are kept only when they were built with the same parameters.
    """
    if raw is None or any(meta.get(b"kicc_tree_token") != token.encode() for meta, _ in raw.values()):
        return None
    return {
        key: df
        for key, (meta, df) in raw.items()
        if key != "index" and (key not in _PARAM_TABLES or meta.get(b"kicc_params") == params.encode())
    }


def _save_tables(folder: Path, token: str, params: str, tables: dict[str, pd.DataFrame], secret: bytes) -> str | None:
    try:
        for key in _TABLES:
            table = pa.Table.from_pandas(tables[key], preserve_index=False)
            meta = dict(table.schema.metadata or {})
            if table.column_names[:2] == ["path", "relpath"]:  # path = root/relpath: rebuilt on load, not stored
                table = table.drop_columns(["path"])
                meta[b"kicc_path_from_root"] = b"1"
            meta[b"kicc_tree_token"] = token.encode()
            meta[b"kicc_params"] = params.encode()
            clear, sealed = seal_table(table.replace_schema_metadata(meta), secret)
            _write_sealed(folder, f"{key}{SEALED_SUFFIX}", sealed)
            tmp = _temp_path(folder, key)
            feather.write_feather(clear, tmp, compression="uncompressed")
            os.replace(tmp, folder / f"{key}.arrow")
    except (OSError, pa.ArrowException) as exc:
        return f"table cache not saved in {folder} ({exc}); the next scan rebuilds the tables"
    return None


#: Text columns of the instance table are Arrow-backed pandas strings (``string[pyarrow]``): a third of
#: the memory of Python ``str`` objects for 10^5-10^6 files, and a near zero-copy load from the cache.
_STRING = pd.StringDtype("pyarrow")
_STRING_MAPPER = {pa.string(): _STRING, pa.large_string(): _STRING}.get


def _arrow_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Convert the object (text) columns of ``df`` to ``string[pyarrow]``."""
    text = [c for c in df.columns if df[c].dtype == object]
    converted = {}
    for column in text:  # pyarrow converts a column of str/None/NaN in C; anything else goes through astype
        try:
            values = pa.array(df[column].to_numpy(), type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            converted[column] = df[column].astype(_STRING)
            continue
        converted[column] = pd.Series(pd.arrays.ArrowStringArray(values), index=df.index, name=column)
    return df.assign(**converted) if converted else df


def _build_tables(
    root: Path, files: pd.DataFrame, problems: list[Problem]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    bad = files["error"].notna()
    skipped = files.loc[bad, ["relpath", "size", "error"]].rename(columns={"error": "reason"})
    instances, duplicates = build_instances(files.loc[~bad], _text_name(str(root)))
    series = build_series(instances, duplicates)
    instances = _arrow_strings(instances)
    not_read = pd.DataFrame({"relpath": [p[0] for p in problems], "size": 0, "reason": [p[1] for p in problems]})
    skipped = pd.concat([skipped, duplicates[["relpath", "size", "reason"]], not_read], ignore_index=True)
    paths = [os.path.join(_text_name(str(root)), p) for p in skipped["relpath"]]
    skipped.insert(0, "path", pd.Series(paths, index=skipped.index, dtype=object))  # object also when empty
    skipped["kind"] = skipped["reason"].str.split(":").str[0]
    skipped = skipped.sort_values("relpath", kind="stable").reset_index(drop=True)
    skipped["size"] = skipped["size"].astype("int64")
    return instances, series, skipped


def _finish_scan(
    root: Path,
    tables: dict[str, pd.DataFrame],
    n_files: int,
    n_read: int,
    n_reused: int,
    n_removed: int,
    index_path: Path | None,
    notes: list[str],
    min_slices: int,
    kernel_first: bool,
    tag_key: bytes = b"",
) -> RepositoryScan:
    series = tables["series"]
    selection = tables.get("selection")
    if selection is None:
        selection = select_ct_series(series, min_slices=min_slices, kernel_first=kernel_first)
    studies = tables.get("studies")
    if studies is None or "selection" not in tables:
        studies = build_studies(series, selection)
    return RepositoryScan(
        root=root,
        instances=tables["instances"],
        series=series,
        studies=studies,
        skipped=tables["skipped"],
        selection=selection,
        n_files=n_files,
        n_read=n_read,
        n_reused=n_reused,
        n_removed=n_removed,
        index_path=index_path,
        warnings=tuple(notes),
        tag_key=tag_key,
    )


def _mask_paths(values: pd.Series, mask) -> pd.Series:
    """``mask`` (a :func:`kicc_analysis.privacy.mask_path`) of every path, computed once per folder and file name."""
    text = values.astype(object)
    folders: dict[str, str] = {}
    names: dict[str, str] = {}
    out = []
    for path in text:
        if not isinstance(path, str):
            out.append(path)
            continue
        head, _, tail = path.rpartition("/")
        masked_head = folders.get(head)
        if masked_head is None:
            masked_head = folders[head] = mask(head) if head else head
        masked_tail = names.get(tail)
        if masked_tail is None:
            masked_tail = names[tail] = mask(tail)
        out.append(f"{masked_head}/{masked_tail}" if head else masked_tail)
    return pd.Series(out, index=values.index, dtype=object)


def series_files(scan: RepositoryScan, series_uid: str) -> list[Path]:
    """Paths of one series' files, sorted along the slice normal (then by instance number).

    Raises
    ------
    RepositoryError
        ``series_uid`` is not in the scan, or the scan is of a DICOMweb server (see
        :func:`kicc_analysis.repository.dicomweb.series_source`).
    """
    if getattr(scan, "url", None):
        raise RepositoryError(
            f"series {series_uid!r} is on the DICOMweb server {scan.url}, not in local files: use "
            "kicc_analysis.repository.dicomweb.series_source(scan, series_uid) (fetched on demand)"
        )
    inst = scan.instances
    sub = inst[inst["series_uid"] == series_uid]
    if sub.empty:
        raise RepositoryError(
            f"series {series_uid!r} not found in the scan of {scan.root} ({len(scan.series)} series available; "
            "see scan.series['series_uid'])"
        )
    sub = sub.sort_values(["slice_position", "instance_number", "relpath"], kind="stable", na_position="last")
    return [Path(fs_path(p)) for p in sub["path"]]


def series_file_lists(scan: RepositoryScan, series_uids) -> dict[str, list[Path]]:
    """:func:`series_files` of many series in one pass over the scan's instances (one sort, one grouping) rather
    than one filter of the instance table per series; the same order within each series.

    Raises
    ------
    RepositoryError
        As :func:`series_files`: a DICOMweb scan, or a series UID that is not in the scan.
    """
    wanted = list(dict.fromkeys(series_uids))
    if not wanted:
        return {}
    if getattr(scan, "url", None):
        series_files(scan, wanted[0])  # raises the DICOMweb pointer
    inst = scan.instances
    sub = inst[inst["series_uid"].isin(set(wanted))]
    sub = sub.sort_values(
        ["series_uid", "slice_position", "instance_number", "relpath"], kind="stable", na_position="last"
    )
    lists = {uid: [Path(fs_path(p)) for p in paths] for uid, paths in sub.groupby("series_uid", sort=False)["path"]}
    missing = [uid for uid in wanted if uid not in lists]
    if missing:
        series_files(scan, missing[0])  # raises the one-line "not found" error
    return lists
