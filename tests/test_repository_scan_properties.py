"""Property test: scans of generated hostile repositories never raise and account for every entry on disk.

Each example mixes the bad inputs of issue 11 (truncated and empty files, EUC-KR file and folder names, FIFOs,
symlinks to files/folders/nowhere/the root, a deflate bomb, index folders, deep nesting, duplicates, unreadable
folders) with odd files from the data folder of the installed pydicom wheel (listed on disk; pydicom's
``get_testdata_file`` would download missing files and is never called). For every scan, first and re-scan, with
GNU find or the Python walk, following symlinks or not: no exception, files on disk = indexed + skipped
(:func:`conftest.assert_scan_accounts_for_every_entry`), nothing written into the repository, and every check of
:data:`DERIVED_FILE_CHECKS` holds on every derived file.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from conftest import PROJECT_ROOT, checked_scan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kicc_analysis.repository.synthetic import write_deflated_bomb, write_scanner_like_tree

PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
WHEEL_FILES = sorted(p for p in PYDICOM_DATA.rglob("*") if p.is_file()) if PYDICOM_DATA.is_dir() else []

#: Checks run on the derived files of every generated scan: ``check(derived_files, repository_root)`` raises
#: AssertionError on a problem. Other areas add theirs here (e.g. no planted identifier in any derived file).
DERIVED_FILE_CHECKS: list[Callable[[list[Path], Path], None]] = []


def _derived_outside_repository(derived: list[Path], root: Path) -> None:
    assert derived, "a scan with an index writes derived files"
    assert not any(root in p.parents for p in derived), "derived file inside the repository"


DERIVED_FILE_CHECKS.append(_derived_outside_repository)


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, Path | list[Path]]:
    folder = tmp_path_factory.mktemp("material")
    paths = write_scanner_like_tree(folder / "ct", 30, seed=11, slices_per_series=(10, 11), radiograph_fraction=0.1)
    bomb = write_deflated_bomb(folder / "bomb.dcm", 24 << 20)
    return {"ct": sorted(paths), "bomb": bomb}


def _put(dst: Path | bytes, src: Path) -> None:
    shutil.copyfile(src, dst)


def _build(root: Path, case: str, k: int, material: dict) -> None:
    """Write one hostile case ``k`` under ``root``."""
    ct: list[Path] = material["ct"]
    src = ct[k % len(ct)]
    here = root / f"c{k:02d}"
    here.mkdir()
    broot = os.fsencode(here)
    if case == "ct":
        _put(here / src.name, src)
    elif case == "duplicate":
        _put(here / "a.dcm", src)
        _put(here / "b.dcm", src)
    elif case == "truncated":
        data = src.read_bytes()
        (here / "cut.dcm").write_bytes(data[: max(1, len(data) * (k % 7 + 1) // 9)])
    elif case == "empty":
        (here / "empty.dcm").write_bytes(b"")
    elif case == "text":
        (here / "notes.txt").write_text("환자 메모", encoding="cp949")
    elif case == "euc_kr_name":
        _put(os.path.join(broot, f"환자_{k}.dcm".encode("euc-kr")), src)
    elif case == "euc_kr_folder":
        sub = os.path.join(broot, "흉부 CT".encode("euc-kr"))
        os.mkdir(sub)
        _put(os.path.join(sub, b"IM0001"), src)
    elif case == "fifo":
        os.mkfifo(here / "pipe")
    elif case == "link_file":
        (here / "link.dcm").symlink_to(src)
    elif case == "link_folder":
        (here / "linked").symlink_to(src.parent, target_is_directory=True)
    elif case == "broken_link":
        (here / "gone.dcm").symlink_to(here / "nothing")
    elif case == "loop":
        (here / "up").symlink_to(root, target_is_directory=True)
        (here / "self").symlink_to(here / "self")
    elif case == "bomb":
        _put(here / "bomb.dcm", material["bomb"])
    elif case == "index_folder":
        (here / ".kicc_index").mkdir()
        (here / ".kicc_index" / "files.parquet").write_bytes(b"old")
    elif case == "deep":
        deep = here.joinpath(*[f"d{i}" for i in range(25)])
        deep.mkdir(parents=True)
        _put(deep / "x", src)
    elif case == "unreadable_folder":
        (here / "locked").mkdir()
        _put(here / "locked" / "x.dcm", src)
        (here / "locked").chmod(0)  # root still reads it; other users get the "unreadable folder" entry
    else:  # pragma: no cover
        raise AssertionError(case)


CASES = (
    "ct duplicate truncated empty text euc_kr_name euc_kr_folder fifo link_file link_folder broken_link loop bomb "
    "index_folder deep unreadable_folder"
).split()


def _unlock(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(st.sampled_from(CASES), min_size=1, max_size=10),
    wheel=st.lists(st.sampled_from(WHEEL_FILES or [Path(__file__)]), max_size=8, unique=True),
    walker=st.sampled_from(["find", "python"]),
    follow=st.booleans(),
)
def test_hostile_repositories_are_scanned_and_fully_accounted_for(material, monkeypatch, cases, wheel, walker, follow):
    monkeypatch.setenv("KICC_SCAN_WALK", walker)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for k, case in enumerate(cases):
            _build(root, case, k, material)
        (root / "wheel").mkdir()
        for i, f in enumerate(wheel):
            _put(root / "wheel" / f"{i}_{f.name}", f)
        before = sorted(os.fsencode(p) for p in root.rglob("*"))
        index = Path(tmp) / "index"
        try:
            first = checked_scan(root, workers=1, index_dir=index, follow_symlinks=follow)
            again = checked_scan(root, workers=1, index_dir=index, follow_symlinks=follow)
        finally:
            _unlock(root)
        assert again.n_read == 0
        pd.testing.assert_frame_equal(first.instances, again.instances)
        pd.testing.assert_frame_equal(first.skipped, again.skipped)
        assert sorted(os.fsencode(p) for p in root.rglob("*")) == before  # nothing written into the repository
        if "bomb" in cases:
            assert first.skipped["reason"].str.contains("decompression bomb").any()
        derived = sorted(p for p in index.rglob("*") if p.is_file())
        for check in DERIVED_FILE_CHECKS:
            check(derived, root)


# ----------------------------------------------------------------------------------------------------------------------
# Existing protections, kept under test: no unpickling or eval of repository content, hashed output names.

_FORBIDDEN_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("marshal", "loads"),
    ("yaml", "load"),
    ("shelve", "open"),
    (None, "eval"),
    (None, "exec"),
}


def test_package_never_unpickles_or_evals():
    found = []
    for path in sorted((PROJECT_ROOT / "kicc_analysis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = (
                (f.value.id if isinstance(f.value, ast.Name) else None, f.attr)
                if isinstance(f, ast.Attribute)
                else (None, f.id)
                if isinstance(f, ast.Name)
                else None
            )
            if name in _FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} {name}")
            if name in {("np", "load"), ("numpy", "load")} and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords
            ):
                found.append(f"{path.name}:{node.lineno} np.load(allow_pickle)")
    assert found == []


def test_cache_file_names_are_hashes_not_repository_text(tmp_path):
    from kicc_analysis.quantification import batch

    hostile = "../../../etc/passwd\x00환자"
    job = {"subjid": "KICC-S01-0001", "series_uid": hostile, "timepoint": "baseline", "img_day": 0, "source": "x"}
    path = batch._cache_path(tmp_path, batch.job_cache_key(job, bins="default"))
    assert path.parent == tmp_path and path.name.startswith("series_") and path.name.endswith(".parquet")
    assert all(c in "0123456789abcdef" for c in path.stem.removeprefix("series_"))
