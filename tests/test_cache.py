"""Tests for kicc_analysis._cache: where derived files go and how they are named."""

from __future__ import annotations

import pytest

from kicc_analysis._cache import default_cache_dir


@pytest.mark.parametrize(
    "folder, planted",
    [("Hong_Gildong", "Hong"), ("홍길동_20419573", "20419573"), ("20419573", "20419573"), ("Kim^Minsu", "Kim")],
)
def test_cache_folder_name_never_carries_an_identifying_repository_name(tmp_path, folder, planted):
    cache = default_cache_dir(tmp_path / folder)
    assert planted not in cache.name and cache.name.startswith("repository-")


def test_cache_folder_keeps_an_ordinary_name_and_separates_repositories(tmp_path):
    a, b = default_cache_dir(tmp_path / "kicc19_upload"), default_cache_dir(tmp_path / "other" / "kicc19_upload")
    assert a.name.startswith("kicc19_upload-") and a != b
    assert default_cache_dir(tmp_path / "Hong_Gildong") != default_cache_dir(tmp_path / "Kim_Minsu")
