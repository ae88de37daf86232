"""Shared fixtures.

Tests that need the project's shared reference material (``../shared``) go
through the ``shared_dir`` fixture, which skips them with a clear reason when
that folder is absent (as on a user's machine).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

os.environ.setdefault("KICC_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("KICC_SHARED_DIR", PROJECT_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Return a path inside ``../shared``, skipping the test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference material not found at {path} (only available beside the project checkout)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` folder; skips the test with the reason when it is absent."""
    return shared_path()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def demo_repository(tmp_path_factory) -> Path:
    """A small demo repository (8 patients), generated once per test session."""
    from kicc_analysis.demo import generate_demo

    root = tmp_path_factory.mktemp("demo") / "repository"
    generate_demo(root, n_patients=8, seed=19, show_progress=False)
    return root


@pytest.fixture(scope="session")
def default_demo_plan():
    """The default demo (522 patients, 17 sites, seed 19) as a plan: clinical table and patients -> studies -> series,
    no pixel data (~2 s; writing its DICOM takes minutes)."""
    from kicc_analysis.demo.generator import DEFAULT_PATIENTS, plan_demo

    return plan_demo(DEFAULT_PATIENTS, seed=19)


@pytest.fixture(scope="session", autouse=True)
def _derived_files_in_tmp(tmp_path_factory) -> Path:
    """Derived files (scan index, quantification cache...) of every test go to a temporary ``$KICC_CACHE``,
    never to ``~/.cache`` nor into an input repository (see ``kicc_analysis._cache.default_cache_dir``)."""
    folder = tmp_path_factory.mktemp("kicc_cache")
    os.environ["KICC_CACHE"] = str(folder)
    return folder


def _entries_on_disk(root: Path, index_dir: Path | None) -> set[str]:
    """Every directory entry under ``root`` that a scan must account for, found independently of the scanner
    (``os.lstat``, symlinks not followed): regular files, symlinks, FIFOs..., and folders that cannot be
    entered or are index folders (one entry each, their content is not the scan's)."""
    out: set[str] = set()
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            rel = prefix + name
            if stat.S_ISDIR(st.st_mode):
                if name == ".kicc_index" or (index_dir is not None and Path(path) == index_dir):
                    out.add(rel)
                    continue
                try:
                    os.listdir(path)
                except OSError:
                    out.add(rel)
                    continue
                stack.append((path, rel + "/"))
            else:
                out.add(rel)
    return out


def _inodes(paths) -> set[tuple[int, int]]:
    return {(s.st_dev, s.st_ino) for s in (os.stat(p) for p in paths)}


def assert_scan_accounts_for_every_entry(scan, *, follow_symlinks: bool = False, index_dir=None) -> None:
    """The scan invariant: files on disk = indexed + skipped (each once), whatever the tree holds.

    Without ``follow_symlinks`` the relative paths of ``instances`` and ``skipped`` are exactly the entries on
    disk; with it, every regular file reachable through symlinked folders is indexed or skipped once.
    """
    from kicc_analysis.repository import fs_path

    rel = [fs_path(r) for r in list(scan.instances["relpath"]) + list(scan.skipped["relpath"])]
    assert len(rel) == len(set(rel)), "an entry is listed twice"
    assert len(rel) == scan.n_files, (len(rel), scan.n_files)
    index = Path(index_dir).expanduser().resolve() if index_dir is not None else None
    on_disk = _entries_on_disk(scan.root, index)
    if not follow_symlinks:
        assert set(rel) == on_disk, {
            "not accounted for": sorted(on_disk - set(rel))[:5],
            "extra": sorted(set(rel) - on_disk)[:5],
        }
        return
    # following links: every regular file reachable (loop-safe) is accounted for once, by inode
    reachable: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(scan.root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if d != ".kicc_index"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p):
                reachable.add((os.stat(p).st_dev, os.stat(p).st_ino))
    listed = _inodes(os.path.join(scan.root, r) for r in rel if os.path.isfile(os.path.join(scan.root, r)))
    assert reachable == listed


def checked_scan(root, **kwargs):
    """``scan_repository`` followed by :func:`assert_scan_accounts_for_every_entry` (used by every scan test)."""
    from kicc_analysis.repository import scan_repository

    scan = scan_repository(root, **kwargs)
    assert_scan_accounts_for_every_entry(
        scan, follow_symlinks=kwargs.get("follow_symlinks", False), index_dir=kwargs.get("index_dir")
    )
    return scan
