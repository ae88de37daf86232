"""Parallel, incremental scan of a DICOM repository folder.

A scan walks the folder tree (any nesting, any file names), reads the header of every file that is new
or changed since the last scan (key: relative path + size in bytes + ``st_mtime_ns``) in a process pool,
and keeps one row per file in a Parquet index (``<root>/.kicc_index/files.parquet`` or ``index_dir``).
Files that are not DICOM or are corrupt are indexed too (with the reason), so an unchanged tree is
re-scanned without opening any file. On Linux the tree is listed by GNU ``find`` in a separate process
(while this one loads the cached tables), elsewhere by a Python walk; both give the same
(relative path, size, mtime_ns) records.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
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
from stat import S_ISREG
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ..errors import RepositoryError
from ..progress import progress_bar
from .header import read_header
from .selection import select_ct_series
from .tables import FLAT_COLUMNS, INT_INDEX_COLUMNS, TEXT_COLUMNS, build_instances, build_series, build_studies

__all__ = ["INDEX_DIRNAME", "INDEX_VERSION", "RepositoryScan", "scan_repository", "series_files"]

#: Default index folder name, created inside the scanned root.
INDEX_DIRNAME = ".kicc_index"
INDEX_FILE = "files.parquet"
#: Bump when the index columns or the parser's output change: older indexes are then rebuilt.
INDEX_VERSION = "2"
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

    def summary(self) -> str:
        """A short text report (no patient identifiers or dates)."""
        lines = [
            f"Repository scan of {self.root}",
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


def _walk(root: str, exclude: set[str]) -> list[tuple[str, int, int]]:
    """(relative path, size in bytes, mtime_ns) of every regular file under ``root``, in walk order.

    Symlinked folders are not followed (no cycles); index folders (``exclude``, any ``.kicc_index``) are
    skipped; unreadable folders and files that vanish during the walk are ignored. This loop is the floor
    of an unchanged re-scan (one ``stat`` per file), so it is kept lean.
    """
    out: list[tuple[str, int, int]] = []
    append = out.append
    scandir = os.scandir
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            it = scandir(folder)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.name != INDEX_DIRNAME and e.path not in exclude:
                            stack.append((e.path, f"{prefix}{e.name}/"))
                    else:
                        st = e.stat()
                        if S_ISREG(st.st_mode):
                            append((prefix + e.name, st.st_size, st.st_mtime_ns))
                except OSError:
                    continue
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Listing the tree with GNU find (Linux): the same (relpath, size, mtime_ns) as :func:`_walk`, at C speed, in a
# separate process, so the main process loads the cached tables meanwhile. An unchanged re-scan is bounded by one
# ``stat`` per file; find does it ~1.5x faster than the Python loop and the table load is hidden behind it.

#: One record per file: type (f regular, l symlink to a regular file), relative path, size (bytes), mtime
#: (seconds since the epoch with a 10-digit fraction in GNU find >= 4.3, i.e. exact nanoseconds + a "0").
_FIND_FORMAT = "%y%P\\0%s\\0%T@\\0"
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


@functools.lru_cache(maxsize=1)
def _find_program() -> str | None:
    """Path of the ``find`` program on Linux (GNU findutils there), else None (the Python walk is used)."""
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("find")


def _find_command(root: str, exclude: set[str]) -> list[str] | None:
    """The ``find`` command listing what :func:`_walk` lists (same pruning, symlinked folders not followed)."""
    prog = _find_program()
    if prog is None or os.environ.get("KICC_SCAN_WALK", "").lower() == "python":
        return None
    prune = ["-name", INDEX_DIRNAME]
    for ex in sorted(exclude):
        if ex.startswith(root.rstrip(os.sep) + os.sep):  # an index folder inside the tree (not under another name)
            prune += ["-o", "-path", ex.translate(_GLOB_SPECIAL)]
    # -mindepth 1: the root itself is never pruned (as in _walk); -P: symbolic links are not followed, but
    # links to regular files are listed (type "l") and stat-ed by Python, as os.scandir's DirEntry.stat() does.
    return [
        prog, "-P", root, "-mindepth", "1",
        "(", "-type", "d", "(", *prune, ")", "-prune", ")",
        "-o", "(", "-type", "f", "-o", "-type", "l", "-xtype", "f", ")", "-printf", _FIND_FORMAT,
    ]  # fmt: skip


def _start_find(root: str, exclude: set[str]) -> subprocess.Popen[bytes] | None:
    """Start listing ``root`` with find in the background; None where find is unavailable."""
    cmd = _find_command(root, exclude)
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


def _parse_find(raw: bytes, root: str) -> list[tuple[str, int, int]] | None:
    """(relative path, size in bytes, mtime_ns) records from find's output, or None if it is not as expected.

    ``%T@`` is converted to integer nanoseconds exactly from its string parts (no float). Negative or
    lower-precision timestamps (pre-1970 files, other find versions) return None: the Python walk is used.
    Symbolic links to regular files are stat-ed here (size and mtime of the target, like ``_walk``).
    """
    parts = raw.split(b"\0")
    if len(parts) % 3 != 1 or parts[-1]:
        return None
    out: list[tuple[str, int, int]] = []
    append = out.append
    fsdecode = os.fsdecode
    for rec, size, stamp in zip(parts[0:-1:3], parts[1::3], parts[2::3], strict=True):
        sec, dot, frac = stamp.partition(b".")
        if not (dot and len(frac) >= 9 and sec.isdigit() and frac.isdigit() and size.isdigit()):
            return None
        kind, rel = rec[:1], fsdecode(rec[1:])
        if kind == b"f":
            append((rel, int(size), int(sec) * 1_000_000_000 + int(frac[:9])))
        elif kind == b"l":
            try:
                st = os.stat(os.path.join(root, rel))
            except OSError:
                continue
            if S_ISREG(st.st_mode):
                append((rel, st.st_size, st.st_mtime_ns))
        else:
            return None
    return out


class _Listing:
    """The files of the tree: count and fingerprint at once, the (relpath, size, mtime_ns) list on demand.

    From find's raw output the fingerprint is a hash of the bytes (no parsing), so an unchanged re-scan never
    builds the list. When the output cannot be parsed, :meth:`entries` falls back to the Python walk and
    updates ``token`` (the caller then checks the cache again with it).
    """

    def __init__(self, root: Path, exclude: set[str], raw: bytes | None) -> None:
        self.root = root
        self.exclude = exclude
        self._raw = raw
        self._entries: list[tuple[str, int, int]] | None = None
        if raw is not None and (raw.startswith(b"l") or b"\0l" in raw):
            # symbolic links: their targets' size/mtime are not in the output, so fingerprint the parsed list
            self._raw = None
            self._entries = _parse_find(raw, str(root))
            if self._entries is not None:
                self.method = "find"
                self.token = _tree_token(self._entries, root, self.method)
                self.n_files = len(self._entries)
                return
        if self._raw is not None:
            self.method = "find"
            self.token = _raw_token(self._raw, root)
            self.n_files = self._raw.count(b"\0") // 3
        else:
            self._python_walk()

    def _python_walk(self) -> None:
        self._raw = None
        self._entries = _walk(str(self.root), self.exclude)
        self.method = "walk"
        self.token = _tree_token(self._entries, self.root, self.method)
        self.n_files = len(self._entries)

    def entries(self) -> list[tuple[str, int, int]]:
        if self._entries is None and self._raw is not None:
            parsed = _parse_find(self._raw, str(self.root))
            if parsed is None:
                self._python_walk()
            else:
                self._entries = parsed
        assert self._entries is not None
        return self._entries


def _list_files(root: Path, exclude: set[str], proc: subprocess.Popen[bytes] | None) -> _Listing:
    return _Listing(root, exclude, _collect_find(proc) if proc is not None else None)


def _flatten(rel: str, size: int, mtime_ns: int, rec: dict[str, Any] | None, error: str | None) -> tuple:
    """One index row (in :data:`FLAT_COLUMNS` order) from a header record."""
    if rec is None:
        return (rel, size, mtime_ns, error) + (None,) * (len(FLAT_COLUMNS) - 4)
    ipp = rec["image_position"] or ()
    iop = rec["image_orientation"] or ()
    ps = rec["pixel_spacing"] or ()
    ips = rec["imager_pixel_spacing"] or ()
    ipp = ipp if len(ipp) == 3 else (None, None, None)
    iop = iop if len(iop) == 6 else (None,) * 6
    ps = ps if len(ps) == 2 else (ps[0], ps[0]) if len(ps) == 1 else (None, None)
    ips = ips if len(ips) == 2 else (ips[0], ips[0]) if len(ips) == 1 else (None, None)
    g = rec.get
    return (
        rel,
        size,
        mtime_ns,
        None,
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


def _read_chunk(root: str, items: Sequence[tuple[str, int, int]]) -> pa.RecordBatch:
    """Worker: read the headers of a chunk of files; never raises for a bad file."""
    out = []
    for rel, size, mtime_ns in items:
        res = read_header(os.path.join(root, rel), size=size)
        out.append(_flatten(rel, size, mtime_ns, res.record, res.error))
    return _batch(out)


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _read_all(root: str, todo: list[tuple[str, int, int]], workers: int, show: bool | None) -> pa.Table:
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


def _load_index(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    if not path.exists():
        return None, None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - a broken cache is rebuilt, never fatal
        return None, f"index {path} unreadable ({type(exc).__name__}); rebuilt"
    meta = table.schema.metadata or {}
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


def _save_index(path: Path, df: pd.DataFrame, token: str) -> str | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(df[list(FLAT_COLUMNS)], schema=_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata({"kicc_index_version": INDEX_VERSION, "kicc_tree_token": token})
        tmp = _temp_path(path.parent, "files")
        pq.write_table(table, tmp, compression="zstd")
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
) -> RepositoryScan:
    """Scan a folder tree of DICOM files into instance, series and study tables.

    Parameters
    ----------
    root
        Folder to scan (any nesting; names with or without ``.dcm``; DICOMDIR and non-DICOM files allowed).
    index_dir
        Folder of the incremental Parquet index (default ``<root>/.kicc_index``). When it cannot be
        written (read-only media), the scan still succeeds and says so in ``warnings``.
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

    Returns
    -------
    RepositoryScan

    Raises
    ------
    RepositoryError
        ``root`` does not exist, is not a folder, or contains no file at all. Problems of single files are
        reported in ``RepositoryScan.skipped``, never raised.

    Notes
    -----
    A file is re-read when its size or ``mtime_ns`` changed (even by 1 ns). On Linux the tree is listed by
    GNU ``find``; where it is missing or fails the Python walk is used (``KICC_SCAN_WALK=python`` forces it).
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.exists():
        raise RepositoryError(f"repository folder {root_path} does not exist (expected a folder of DICOM files)")
    if not root_path.is_dir():
        raise RepositoryError(f"repository path {root_path} is a file, expected a folder of DICOM files")
    index_folder = Path(index_dir).expanduser().resolve() if index_dir is not None else root_path / INDEX_DIRNAME
    index_path = index_folder / INDEX_FILE
    notes: list[str] = []

    exclude = {str(index_folder)}
    # find lists the tree in another process while this one loads the cached tables (an unchanged re-scan
    # costs max(listing, load) on 2 cores); the cache is used only if its fingerprint matches the listing.
    finder = _start_find(str(root_path), exclude)
    raw_cache = _read_cached_tables(index_folder) if use_index and finder is not None else None
    listing = _list_files(root_path, exclude, finder)
    if listing.n_files == 0:
        raise RepositoryError(f"repository folder {root_path} contains no files (expected DICOM files, any nesting)")

    # The fingerprint follows the listing order (stable for unchanged folders); if a file system ever
    # lists an unchanged folder in another order, the scan merely takes the slower path below.
    params = f"min_slices={min_slices};kernel_first={kernel_first}"
    if use_index:
        if raw_cache is None:  # Python walk: load the cache only now (loading it in a thread was slower: GIL)
            raw_cache = _read_cached_tables(index_folder, listing.token)
        cached = _valid_cached_tables(raw_cache, listing.token, params)
        if cached is None:
            token = listing.token
            listing.entries()  # find output that cannot be parsed falls back to the Python walk: new token
            if listing.token != token:
                cached = _valid_cached_tables(_read_cached_tables(index_folder, listing.token), listing.token, params)
        if cached is not None:
            n = listing.n_files
            return _finish_scan(root_path, cached, n, 0, n, 0, index_path, notes, min_slices, kernel_first)
        raw_cache = None  # free the memory of stale tables before reading headers
    found = listing.entries()
    token = listing.token

    old, note = _load_index(index_path) if use_index else (None, None)
    if note:
        notes.append(note)
    current = pd.DataFrame(found, columns=["relpath", "size", "mtime_ns"])
    reused = _SCHEMA.empty_table().to_pandas()
    n_removed = 0
    if old is not None and not old.empty:
        key = ["relpath", "size", "mtime_ns"]
        merged = old.merge(current, on=key, how="inner")
        reused = merged[list(FLAT_COLUMNS)]
        n_removed = int((~old["relpath"].isin(current["relpath"])).sum())
        todo_mask = ~current.set_index(key).index.isin(merged.set_index(key).index)
        todo = [tuple(r) for r in current.loc[todo_mask].itertuples(index=False, name=None)]
    else:
        todo = found
    new = _read_all(str(root_path), todo, workers, show_progress).to_pandas()
    files = pd.concat([reused, new], ignore_index=True) if len(reused) else new
    files = files.sort_values("relpath", kind="stable").reset_index(drop=True)

    saved_path: Path | None = index_path if use_index else None
    if use_index:
        err = _save_index(index_path, files, token)
        if err:
            notes.append(err)
            saved_path = None

    instances, series, skipped = _build_tables(root_path, files)
    tables = {"instances": instances, "series": series, "skipped": skipped}
    scan = _finish_scan(
        root_path, tables, len(files), len(todo), len(reused), n_removed, saved_path, notes, min_slices, kernel_first
    )
    if saved_path is not None:
        tables.update(selection=scan.selection, studies=scan.studies)
        err = _save_tables(index_folder, token, params, tables)
        if err:
            notes.append(err)
            scan = dataclasses.replace(scan, warnings=tuple(notes))
    return scan


def _tree_token(found: list[tuple[str, int, int]], root: Path, method: str = "walk") -> str:
    """Fingerprint of the tree (root, relative paths in listing order, sizes, mtimes) and of the table format.

    ``pickle`` serialises the list of (str, int, int) tuples in one C call, deterministically (no value
    repeats, so no memo references), which makes this ~10x cheaper than joining the fields in Python.
    """
    h = hashlib.sha1(f"{INDEX_VERSION}\x1f{method}\x1f{root}\x1f{len(found)}\x1f".encode())
    h.update(pickle.dumps(found, protocol=5))
    return h.hexdigest()


def _raw_token(raw: bytes, root: Path) -> str:
    """Fingerprint of the tree from find's output bytes (paths, sizes, mtimes in listing order): ~1 ms."""
    h = hashlib.sha1(f"{INDEX_VERSION}\x1ffind-raw\x1f{root}\x1f".encode())
    h.update(raw)
    return h.hexdigest()


#: Table cache (Arrow IPC / Feather: memory-mapped, the fastest format to load back into pandas).
_TABLES = ("instances", "series", "skipped", "selection", "studies")
#: Tables that depend on the selection parameters, not only on the files.
_PARAM_TABLES = ("selection", "studies")


def _read_cached_tables(folder: Path, token: str | None = None) -> dict[str, tuple[dict, pd.DataFrame]] | None:
    """Every cached table with its metadata, or None when the cache is absent, broken or (when ``token`` is
    given) of another tree. Without ``token`` the tables are loaded unchecked (while find lists the tree):
    :func:`_valid_cached_tables` checks them afterwards."""
    try:
        index_meta = pq.read_schema(folder / INDEX_FILE).metadata or {}
        if index_meta.get(b"kicc_index_version") != INDEX_VERSION.encode():
            return None
        if token is not None and index_meta.get(b"kicc_tree_token") != token.encode():
            return None
        out: dict[str, tuple[dict, pd.DataFrame]] = {"index": (index_meta, pd.DataFrame())}
        for key in _TABLES:
            table = feather.read_table(folder / f"{key}.arrow", memory_map=True)
            mapper = _STRING_MAPPER if key == "instances" else None
            out[key] = (table.schema.metadata or {}, table.to_pandas(split_blocks=True, types_mapper=mapper))
        return out
    except Exception:  # noqa: BLE001 - missing or broken cache: rebuild the tables
        return None


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


def _save_tables(folder: Path, token: str, params: str, tables: dict[str, pd.DataFrame]) -> str | None:
    try:
        for key in _TABLES:
            table = pa.Table.from_pandas(tables[key], preserve_index=False)
            meta = dict(table.schema.metadata or {})
            meta[b"kicc_tree_token"] = token.encode()
            meta[b"kicc_params"] = params.encode()
            table = table.replace_schema_metadata(meta)
            tmp = _temp_path(folder, key)
            feather.write_feather(table, tmp, compression="uncompressed")
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
    return df.astype(dict.fromkeys(text, _STRING)) if text else df


def _build_tables(root: Path, files: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    bad = files["error"].notna()
    skipped = files.loc[bad, ["relpath", "size", "error"]].rename(columns={"error": "reason"})
    instances, duplicates = build_instances(files.loc[~bad], str(root))
    series = build_series(instances, duplicates)
    instances = _arrow_strings(instances)
    skipped = pd.concat([skipped, duplicates[["relpath", "size", "reason"]]], ignore_index=True)
    skipped.insert(0, "path", [str(root / p) for p in skipped["relpath"]])
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
    )


def series_files(scan: RepositoryScan, series_uid: str) -> list[Path]:
    """Paths of one series' files, sorted along the slice normal (then by instance number).

    Raises
    ------
    RepositoryError
        ``series_uid`` is not in the scan.
    """
    inst = scan.instances
    sub = inst[inst["series_uid"] == series_uid]
    if sub.empty:
        raise RepositoryError(
            f"series {series_uid!r} not found in the scan of {scan.root} ({len(scan.series)} series available; "
            "see scan.series['series_uid'])"
        )
    sub = sub.sort_values(["slice_position", "instance_number", "relpath"], kind="stable", na_position="last")
    return [Path(p) for p in sub["path"]]
