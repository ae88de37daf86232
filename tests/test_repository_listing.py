"""Listing the tree: GNU find vs the Python walk (same files, sizes, mtime_ns), and what a re-scan must notice."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import checked_scan as scan_repository

from kicc_analysis.repository import scan as scan_mod
from kicc_analysis.repository.scan import INDEX_DIRNAME
from kicc_analysis.repository.synthetic import write_scanner_like_tree

needs_find = pytest.mark.skipif(scan_mod._find_program() is None, reason="no `find` program (or not Linux)")


def _find_listing(root: Path, exclude: set[str]) -> tuple[list, list]:
    proc = scan_mod._start_find(str(root), exclude)
    assert proc is not None
    raw = scan_mod._collect_find(proc)
    assert raw is not None, "find failed"
    listing = scan_mod._Listing(root, exclude, raw)
    assert listing.method == "find"
    return listing.entries(), listing.problems()


def _frame(entries: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    df = pd.DataFrame(entries, columns=["relpath", "size", "mtime_ns", "ctime_ns"])
    return df.sort_values("relpath").reset_index(drop=True)


def _awkward_tree(tmp_path: Path) -> tuple[Path, set[str]]:
    """Nesting, names with spaces/newline/glob characters/non-UTF-8 bytes, index folders, symlinks, a FIFO."""
    root = tmp_path / "repo [1]*"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "IM0001").write_bytes(b"x" * 10)
    (root / "a" / "b" / "two words.dcm").write_bytes(b"y" * 2000)
    (root / "a" / "b" / "c" / "new\nline").write_bytes(b"")
    (root / "a" / "b" / "c" / "l-starts").write_bytes(b"z" * 3)
    (root / "top.dcm").write_bytes(b"t" * 7)
    os.makedirs(os.path.join(os.fsencode(root), b"caf\xe9"))  # not UTF-8: decoded with surrogateescape
    with open(os.path.join(os.fsencode(root), b"caf\xe9", b"\xff.dcm"), "wb") as fh:
        fh.write(b"w" * 5)
    (root / "empty").mkdir()
    # index folders: the default name anywhere is pruned, a custom index folder inside the tree too
    (root / INDEX_DIRNAME).mkdir()
    (root / INDEX_DIRNAME / "files.parquet").write_bytes(b"p")
    (root / "a" / INDEX_DIRNAME).mkdir()
    (root / "a" / INDEX_DIRNAME / "x").write_bytes(b"p")
    (root / "my cache[1]").mkdir()
    (root / "my cache[1]" / "instances.arrow").write_bytes(b"p")
    (root / "my cache[2]").mkdir()  # same glob as the custom folder unescaped: must stay listed
    (root / "my cache[2]" / "kept.dcm").write_bytes(b"k")
    # a file named like the index folder is kept; symlinks: to a file (listed, target's size), to a folder
    # (not followed), dangling (skipped); a FIFO is not a regular file
    (root / "a" / "b" / INDEX_DIRNAME).write_bytes(b"f" * 4)
    (root / "link.dcm").symlink_to(root / "a" / "b" / "two words.dcm")
    (root / "linkdir").symlink_to(root / "a", target_is_directory=True)
    (root / "dangling").symlink_to(root / "nope")
    os.mkfifo(root / "a" / "fifo")
    # an mtime with a fraction that a float would round, and one exactly on a second
    os.utime(root / "top.dcm", ns=(0, 1_700_000_000_123_456_789))
    os.utime(root / "a" / "IM0001", ns=(0, 1_600_000_000_000_000_000))
    return root, {str(root / "my cache[1]")}


@needs_find
def test_find_and_python_walk_list_the_same_files(tmp_path):
    root, exclude = _awkward_tree(tmp_path)
    found, problems = _find_listing(root, exclude)
    walked, walk_problems = scan_mod._walk(str(root), exclude)
    by_find = _frame(found)
    by_walk = _frame(walked)
    pd.testing.assert_frame_equal(by_find, by_walk)
    # every entry not read is listed, with the same reason by both
    assert sorted(problems) == sorted(walk_problems)
    assert dict(problems) == {
        INDEX_DIRNAME: scan_mod.REASON_INDEX_FOLDER,
        "a/" + INDEX_DIRNAME: scan_mod.REASON_INDEX_FOLDER,
        "my cache[1]": scan_mod.REASON_INDEX_FOLDER,
        "linkdir": scan_mod.REASON_LINKED_FOLDER,
        "dangling": scan_mod.REASON_BROKEN_LINK,
        "a/fifo": scan_mod.REASON_NOT_REGULAR,
    }
    rel = set(by_find["relpath"])
    assert "link.dcm" in rel and "a/b/" + INDEX_DIRNAME in rel and "my cache[2]/kept.dcm" in rel
    # names that are not UTF-8 are kept losslessly as UTF-8-safe text, and map back to the real path
    esc = scan_mod._text_name("caf\udce9/\udcff.dcm")
    assert esc in rel and "a/b/c/new\nline" in rel
    assert esc.encode("utf-8") and scan_mod.fs_path(esc) == "caf\udce9/\udcff.dcm"
    assert not any(INDEX_DIRNAME + "/" in r or r.startswith("my cache[1]") or r.startswith("linkdir") for r in rel)
    assert {"dangling", "a/fifo"}.isdisjoint(rel)
    got = by_find.set_index("relpath")
    assert got.loc["top.dcm", "mtime_ns"] == 1_700_000_000_123_456_789
    assert got.loc["a/IM0001", "mtime_ns"] == 1_600_000_000_000_000_000
    assert got.loc["link.dcm", "size"] == 2000


@needs_find
def test_find_listing_on_the_synthetic_tree_matches_walk(tmp_path):
    root = tmp_path / "repo"
    write_scanner_like_tree(root, 40, seed=2, slices_per_series=(10, 12))
    found, problems = _find_listing(root, set())
    by_find = _frame(found)
    assert len(by_find) >= 40 and problems == []
    walked, walk_problems = scan_mod._walk(str(root), set())
    pd.testing.assert_frame_equal(by_find, _frame(walked))
    assert walk_problems == []


def test_parse_find_output_exactly():
    raw = (
        b"ffa/b.dcm\x0012\x001700000000.1234567890\x001700000001.0000000010\x00"
        b"ffc\x000\x000.0000000010\x000.0000000020\x00"
        b"ppq\x000\x001.0000000000\x001.0000000000\x00"
        b"ldd\x004\x001.0000000000\x001.0000000000\x00"
        b"lNe\x004\x001.0000000000\x001.0000000000\x00"
        b"dd.kicc_index\x004096\x001.0000000000\x001.0000000000\x00"
    )
    assert scan_mod._parse_find(raw, "/nonexistent") == (
        [("a/b.dcm", 12, 1_700_000_000_123_456_789, 1_700_000_001_000_000_001), ("c", 0, 1, 2)],
        [
            ("q", scan_mod.REASON_NOT_REGULAR),
            ("d", scan_mod.REASON_LINKED_FOLDER),
            ("e", scan_mod.REASON_BROKEN_LINK),
            (".kicc_index", scan_mod.REASON_INDEX_FOLDER),
        ],
    )
    assert scan_mod._parse_find(b"", "/x") == ([], [])
    # not as expected -> None (the scan then uses the Python walk)
    ok = b"\x001700000000.0000000000"
    assert scan_mod._parse_find(b"ffa\x001\x00-5.0000000000" + ok + b"\x00", "/x") is None  # before 1970
    assert scan_mod._parse_find(b"ffa\x001\x001700000000.5" + ok + b"\x00", "/x") is None  # low precision
    assert scan_mod._parse_find(b"ffa\x001\x00", "/x") is None  # truncated record
    assert scan_mod._parse_find(b"xxa\x001" + ok + ok + b"\x00", "/x") is None  # unexpected type


def _small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_scanner_like_tree(root, 40, seed=1, slices_per_series=(12, 14), radiograph_fraction=0.0)
    return root


@pytest.mark.parametrize("walker", ["find", "python"])
def test_rescan_notices_same_size_in_place_rewrite(tmp_path, monkeypatch, walker):
    if walker == "find" and scan_mod._find_program() is None:
        pytest.skip("no `find` program (or not Linux)")
    monkeypatch.setenv("KICC_SCAN_WALK", walker)
    root = _small_tree(tmp_path)
    first = scan_repository(root, workers=1)
    assert first.n_read == first.n_files
    assert scan_repository(root, workers=1).n_read == 0

    # overwrite one file with another file of the same size, in place, then put back its old mtime + 1 ns
    sizes = first.instances.groupby("size")["path"].apply(list)
    a, b = (Path(p) for p in next(p for p in sizes if len(p) >= 2)[:2])
    st = a.stat()
    a.write_bytes(b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert a.stat().st_size == st.st_size
    if a.stat().st_mtime_ns != st.st_mtime_ns + 1:
        pytest.skip("this file system does not keep nanosecond mtimes")
    again = scan_repository(root, workers=1)
    assert again.n_read == 1 and again.n_reused == first.n_files - 1
    # the rewritten file now duplicates b's SOP instance: the report says so
    assert again.skipped["kind"].tolist() == ["duplicate SOP instance"]
    assert len(again.instances) == len(first.instances) - 1
    assert scan_repository(root, workers=1).n_read == 0

    # same bytes and mtime again but a different size is noticed too (append, then restore the mtime)
    st = b.stat()
    with open(b, "ab") as fh:
        fh.write(b"\0\0")
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    grown = scan_repository(root, workers=1)
    assert grown.n_read == 1


@needs_find
def test_switching_between_find_and_python_walk_reuses_the_index(tmp_path, monkeypatch):
    root = _small_tree(tmp_path)
    monkeypatch.setenv("KICC_SCAN_WALK", "find")
    by_find = scan_repository(root, workers=1)
    monkeypatch.setenv("KICC_SCAN_WALK", "python")
    by_walk = scan_repository(root, workers=1)  # other fingerprint: tables rebuilt, but no file read
    assert by_walk.n_read == 0 and by_walk.n_reused == by_find.n_files
    pd.testing.assert_frame_equal(by_walk.instances, by_find.instances)
    pd.testing.assert_frame_equal(by_walk.series, by_find.series)
    pd.testing.assert_frame_equal(by_walk.selection, by_find.selection)


def test_failing_find_falls_back_to_the_python_walk(tmp_path, monkeypatch):
    false = "/bin/false" if os.path.exists("/bin/false") else None
    if false is None or not scan_mod.sys.platform.startswith("linux"):
        pytest.skip("needs /bin/false on Linux")
    root = _small_tree(tmp_path)
    monkeypatch.setattr(scan_mod, "_find_program", lambda: false)
    first = scan_repository(root, workers=1)
    assert first.n_read == first.n_files > 0
    again = scan_repository(root, workers=1)
    assert again.n_read == 0 and again.n_files == first.n_files
    pd.testing.assert_frame_equal(again.instances, first.instances)
