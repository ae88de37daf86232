"""Shared fixtures.

Tests that need the project's shared reference material (``../shared``) go
through the ``shared_dir`` fixture, which skips them with a clear reason when
that folder is absent (as on a user's machine).
"""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def _derived_files_in_tmp(tmp_path_factory) -> Path:
    """Derived files (scan index, quantification cache...) of every test go to a temporary ``$KICC_CACHE``,
    never to ``~/.cache`` nor into an input repository (see ``kicc_analysis._cache.default_cache_dir``)."""
    folder = tmp_path_factory.mktemp("kicc_cache")
    os.environ["KICC_CACHE"] = str(folder)
    return folder
