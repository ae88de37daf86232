"""DICOMweb as a repository source, against a real Orthanc server (fixture ``orthanc`` in conftest.py).

The server holds the DICOM files of a tiny demo repository; the filesystem scan of the same files is the reference.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from kicc_analysis.errors import RepositoryError
from kicc_analysis.repository import scan_repository
from kicc_analysis.repository.dicomweb import (
    HEADER_ENV,
    TOKEN_ENV,
    DicomwebSeries,
    SeriesCache,
    is_dicomweb_url,
    scan_dicomweb,
    series_source,
    service_url,
)

#: One Orthanc server per test run: with ``pytest -n 2 --dist loadgroup`` (the Makefile) this module runs on one worker.
pytestmark = pytest.mark.xdist_group("orthanc")

#: Columns that describe where an instance is, not what it is, or that QIDO-RS does not carry:
#: file location and times, the parser, the transfer syntax (file meta group 0002), and Pixel Padding Value
#: (Orthanc does not return it from QIDO-RS).
LOCATION_COLUMNS = {"path", "relpath", "size", "mtime_ns", "mtime", "parser", "folder"}
NOT_IN_QIDO = {"transfer_syntax", "pixel_padding_value"}
KEYS = {"instances": "sop_uid", "series": "series_uid", "studies": "study_uid", "selection": "study_uid"}


@pytest.fixture()
def server(orthanc, monkeypatch):
    """The session's Orthanc, with its credentials in $KICC_DICOMWEB_HEADER (as a user would set them)."""
    monkeypatch.setenv(HEADER_ENV, orthanc.auth_header)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return orthanc


class RequestLog:
    """A requests session that records the path and query of every request (never the headers)."""

    def __init__(self, after=None) -> None:
        import requests

        self.urls: list[str] = []
        self.session = requests.Session()
        self.after = after
        self.session.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs):
        self.urls.append(response.request.url)
        if self.after is not None:
            self.after(self)
        return response

    def instance_queries(self) -> list[str]:
        return [u for u in self.urls if "/instances" in u]


def _file_scan(orthanc, tmp_path):
    return scan_repository(orthanc.repository / "dicom", index_dir=tmp_path / "fs-index", workers=1)


def _assert_same_tables(web, files) -> None:
    for name, key in KEYS.items():
        a, b = getattr(web, name), getattr(files, name)
        assert list(a.columns) == list(b.columns), name
        assert dict(a.dtypes) == dict(b.dtypes), name
        compared = [c for c in a.columns if c not in LOCATION_COLUMNS | NOT_IN_QIDO]
        a = a.sort_values(key, kind="stable").reset_index(drop=True)[compared]
        b = b.sort_values(key, kind="stable").reset_index(drop=True)[compared]
        pd.testing.assert_frame_equal(a, b, obj=name)


def test_address_parsing():
    assert is_dicomweb_url("dicomweb+http://127.0.0.1:8042/dicom-web")
    assert not is_dicomweb_url("/data/dicom")
    assert service_url("dicomweb+https://host/dicom-web/") == "https://host/dicom-web"
    with pytest.raises(RepositoryError, match="user name or password") as info:
        service_url("dicomweb+https://alice:hunter2@host/dicom-web")
    assert "hunter2" not in str(info.value)
    with pytest.raises(RepositoryError, match="expected dicomweb"):
        service_url("dicomweb+ftp://host/x")


def test_credentials_come_from_the_environment_only(monkeypatch):
    pytest.importorskip("dicomweb_client")
    from kicc_analysis.repository.dicomweb import _Server

    monkeypatch.setenv(TOKEN_ENV, "tok-123")
    monkeypatch.setenv(HEADER_ENV, "X-Api-Key: key-456")
    headers = _Server("http://127.0.0.1:9/dicom-web").client._session.headers
    assert headers["Authorization"] == "Bearer tok-123" and headers["X-Api-Key"] == "key-456"
    monkeypatch.setenv("MY_TOKEN", "other-789")
    monkeypatch.delenv(TOKEN_ENV)
    monkeypatch.delenv(HEADER_ENV)
    headers = _Server("http://127.0.0.1:9/dicom-web", token_env="MY_TOKEN").client._session.headers
    assert headers["Authorization"] == "Bearer other-789"
    monkeypatch.setenv(HEADER_ENV, "no-colon-secret-000")
    with pytest.raises(RepositoryError, match="one header line") as info:
        _Server("http://127.0.0.1:9/dicom-web")
    assert "secret-000" not in str(info.value)


def test_a_study_is_requeried_when_its_counts_or_modification_attribute_change():
    from kicc_analysis.repository.dicomweb import _same_state, _study_state

    def study(n_series, n_instances, modified):
        element = {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00201206": {"vr": "IS", "Value": [n_series]}}
        element["00201208"] = {"vr": "IS", "Value": [n_instances]}
        element["00091001"] = {"vr": "DT", "Value": [modified]}
        return element

    old = pd.Series(
        dict(
            zip(
                ("study_uid", "n_series", "n_instances", "modified"),
                _study_state(study(2, 40, "20261206"), "00091001"),
                strict=True,
            )
        )
    )
    assert _same_state(old, _study_state(study(2, 40, "20261206"), "00091001"))
    assert not _same_state(old, _study_state(study(2, 41, "20261206"), "00091001"))
    assert not _same_state(old, _study_state(study(3, 40, "20261206"), "00091001"))
    assert not _same_state(old, _study_state(study(2, 40, "20261207"), "00091001"))
    # a server without the counts: unknown equals unknown (the blind spot docs/dicomweb.md names)
    bare = {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}
    unknown = pd.Series(
        dict(zip(("study_uid", "n_series", "n_instances", "modified"), _study_state(bare, None), strict=True))
    )
    assert _same_state(unknown, _study_state(bare, None))


def test_paging_survives_a_server_that_cuts_pages_short():
    """PS3.18 lets a server return fewer results than ``limit`` (with a warning): paging must not stop there."""
    pytest.importorskip("dicomweb_client")
    from kicc_analysis.repository.dicomweb import _Server

    results = [{"n": k} for k in range(10)]
    calls = []

    def capped_search(limit, offset):  # the server's own maximum is 3 per page
        calls.append((limit, offset))
        return results[offset : offset + min(limit, 3)]

    server = _Server("http://127.0.0.1:9/dicom-web")
    assert list(server.paged("x", capped_search, 5, expected=10)) == results
    assert list(server.paged("x", capped_search, 5, until_empty=True)) == results
    calls.clear()
    assert list(server.paged("x", capped_search, 5)) == results[:3]  # no count known: a short page ends it
    assert calls == [(5, 0)]
    calls.clear()
    assert list(server.paged("x", lambda limit, offset: results[offset : offset + limit], 5, expected=10)) == results
    # requests: 4 (the 10th result ends it), 5 (an empty page ends it), 1, 3 (full, full, empty)
    assert server.n_requests == 4 + 5 + 1 + 3


def test_scan_tables_equal_the_filesystem_scan(server, tmp_path):
    log = RequestLog()
    web = scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "index", page_size=7, session=log.session)
    files = _file_scan(server, tmp_path)
    _assert_same_tables(web, files)
    assert len(web.instances) == len(files.instances) > 100
    assert web.selection["series_uid"].notna().sum() >= 1  # the same CT series selected, by the same rules
    # paging: the study list and every study's instances came in pages of 7 (limit/offset)
    assert any("offset=7" in u for u in log.urls if "/instances" not in u)
    assert any("offset=14" in u for u in log.instance_queries())
    # no pixel data: only QIDO-RS searches were made
    assert all("/instances" in u or u.split("?")[0].endswith("/studies") for u in log.urls)
    # the skipped files of the tree are not DICOM; the server refused exactly those
    assert sorted(Path(p).name for p in files.skipped["path"]) == sorted(p.name for p in server.rejected)
    assert "DICOMweb scan of" in web.summary()


def test_incremental_rescan_queries_only_what_was_added(server, tmp_path):
    index = tmp_path / "index"
    first = scan_dicomweb(server.dicomweb_url, index_dir=index)
    assert len(first.queried_studies) == len(first.studies)

    log = RequestLog()
    again = scan_dicomweb(server.dicomweb_url, index_dir=index, session=log.session)
    assert again.queried_studies == () and log.instance_queries() == []
    _assert_same_tables(again, first)

    # a new study (one radiograph of the demo under new UIDs) and a new series in an existing study
    source = sorted(first.instances[first.instances["modality"] == "DX"]["sop_uid"])[0]
    path = _file_scan(server, tmp_path).instances.set_index("sop_uid").loc[source, "path"]
    new_study = _copy_with_new_uids(path, tmp_path / "new_study.dcm", study=True)
    new_series = _copy_with_new_uids(path, tmp_path / "new_series.dcm", study=False)
    answers = server.upload([new_study.filename, new_series.filename])
    try:
        log = RequestLog()
        third = scan_dicomweb(server.dicomweb_url, index_dir=index, session=log.session)
        changed_study = new_series.StudyInstanceUID
        assert set(third.queried_studies) == {new_study.StudyInstanceUID, changed_study}
        assert third.queried_series == (new_series.SeriesInstanceUID,)  # the study's other series were not asked for
        queries = log.instance_queries()
        assert len(queries) == 2
        assert any(new_study.StudyInstanceUID in u for u in queries)
        assert any(new_series.SeriesInstanceUID in u for u in queries)
        assert len(third.instances) == len(first.instances) + 2
        assert third.n_read == 2 and third.n_reused == len(first.instances)
        assert {new_study.SeriesInstanceUID, new_series.SeriesInstanceUID} <= set(third.series["series_uid"])
    finally:
        server.delete("studies", answers[0]["ParentStudy"])
        server.delete("series", answers[1]["ParentSeries"])
    fourth = scan_dicomweb(server.dicomweb_url, index_dir=index)
    assert fourth.n_removed == 1 and fourth.queried_studies == (changed_study,) and fourth.queried_series == ()
    _assert_same_tables(fourth, first)


def _copy_with_new_uids(path, out: Path, *, study: bool):
    """A copy of a DICOM file with a new SOP Instance UID and Series Instance UID (and Study Instance UID)."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(path)
    if study:
        ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(out, enforce_file_format=True)
    ds.filename = str(out)
    return ds


def test_server_stopping_mid_scan_gives_one_line_error_and_a_resumable_index(server, tmp_path):
    index = tmp_path / "index"

    def stop_after_three_studies(log: RequestLog) -> None:
        if len(log.instance_queries()) == 3 and server.process is not None:
            server.stop()

    log = RequestLog(after=stop_after_three_studies)
    try:
        with pytest.raises(RepositoryError) as info:
            scan_dicomweb(
                server.dicomweb_url, index_dir=index, session=log.session, retries=2, backoff_s=0.01, save_every=0
            )
    finally:
        if server.process is None:
            server.start()
    message = str(info.value)
    files = _file_scan(server, tmp_path)
    n = len(files.studies)
    assert "\n" not in message
    assert f"3 of {n} studies are saved in the index" in message, message
    assert "run the scan again to resume" in message
    assert "Traceback" not in message
    resumed = scan_dicomweb(server.dicomweb_url, index_dir=index)
    assert len(resumed.queried_studies) == n - 3 and resumed.n_studies_reused == 3
    _assert_same_tables(resumed, files)


def test_a_server_restarting_mid_scan_is_waited_for_with_backoff(server, tmp_path):
    import threading

    timers: list[threading.Timer] = []

    def restart_after_two_studies(log: RequestLog) -> None:
        if len(log.instance_queries()) == 2 and not timers:
            server.stop()
            timers.append(threading.Timer(0.5, server.start))
            timers[0].start()

    log = RequestLog(after=restart_after_two_studies)
    try:
        scan = scan_dicomweb(
            server.dicomweb_url, index_dir=tmp_path / "index", session=log.session, retries=8, backoff_s=0.1
        )
    finally:
        for timer in timers:
            timer.join()
        if server.process is None:
            server.start()
    assert timers, "the server was not stopped"
    assert scan.n_requests > len(log.urls)  # attempts without an answer were retried
    _assert_same_tables(scan, _file_scan(server, tmp_path))


def test_credentials_are_needed_and_never_leak(server, tmp_path, monkeypatch, caplog, capsys):
    from kicc_analysis.cli import main
    from tests.conftest import ORTHANC_SECRET

    caplog.set_level(logging.DEBUG)
    index = tmp_path / "index"
    scan = scan_dicomweb(server.dicomweb_url, index_dir=index)
    assert (
        main(["scan", server.dicomweb_url, "--index", str(tmp_path / "cli-index"), "--out", str(tmp_path / "out")]) == 0
    )
    wrong = server.auth_header[:-4] + "AAA="
    monkeypatch.setenv(HEADER_ENV, wrong)
    with pytest.raises(RepositoryError, match="refused the credentials") as info:
        scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "other")
    monkeypatch.delenv(HEADER_ENV)
    with pytest.raises(RepositoryError, match="HTTP 401"):
        scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "other")
    import pickle

    token = server.auth_header.split()[-1]
    captured = capsys.readouterr()
    job_source = pickle.dumps(series_source(scan, scan.series["series_uid"].iloc[0])).decode("latin-1")
    texts = [caplog.text, captured.out, captured.err, str(info.value), repr(scan), scan.summary(), job_source]
    for folder in (index, tmp_path / "cli-index", tmp_path / "out"):
        texts += [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]
    for text in texts:
        assert token not in text and ORTHANC_SECRET not in text and wrong.split()[-1] not in text
    assert "DICOMweb scan of" in captured.out


def test_series_from_dicomweb_quantifies_like_the_files(server, tmp_path):
    from kicc_analysis.quantification.batch import quantify_series, quantify_series_table

    web = scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "index")
    files = _file_scan(server, tmp_path)
    uid = web.selection["series_uid"].dropna().iloc[0]
    cache = tmp_path / "series-cache"
    remote = series_source(web, uid, cache_dir=cache, max_bytes=50 << 20)
    assert isinstance(remote, DicomwebSeries)
    jobs = pd.DataFrame(
        {"subjid": ["P"], "series_uid": [uid], "timepoint": ["baseline"], "img_day": [0.0], "source": [remote]}
    )
    results = quantify_series_table(jobs, cache_dir=tmp_path / "results", workers=1)
    assert results.attrs["failures"].empty
    expected = quantify_series(series_source(files, uid))
    got = results.drop(columns=["subjid", "series_uid", "timepoint", "img_day", "cached"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    assert SeriesCache(cache).total_bytes() > 0
    # the result cache is keyed on the server's metadata: a re-run neither recomputes nor fetches
    for entry in cache.iterdir():
        if entry.is_dir():
            import shutil

            shutil.rmtree(entry)
    again = quantify_series_table(jobs, cache_dir=tmp_path / "results", workers=1)
    assert again["cached"].all() and SeriesCache(cache).total_bytes() == 0


def test_series_cache_stays_within_its_bound(server, tmp_path):
    web = scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "index")
    multi = web.series[web.series["n_instances"] > 1].sort_values("series_uid")
    assert len(multi) >= 3
    first = series_source(web, multi["series_uid"].iloc[0], cache_dir=tmp_path / "c", max_bytes=1 << 40)
    assert Path(os.fspath(first)).name == "dicom"
    one = SeriesCache(first.cache_dir).total_bytes()
    bound = int(2.2 * one)
    sources = [
        series_source(web, uid, cache_dir=tmp_path / "lru", max_bytes=bound) for uid in multi["series_uid"].iloc[:4]
    ]
    cache = SeriesCache(tmp_path / "lru", bound)
    for k, source in enumerate(sources):
        folder = Path(os.fspath(source))
        assert len([p for p in folder.iterdir() if p.suffix == ".dcm"]) == source.n_instances
        assert cache.total_bytes() <= bound, (k, cache.total_bytes(), bound)
    names = set(cache.entries()["name"])
    assert sources[-1].cache_name() in names and sources[0].cache_name() not in names


def test_series_cache_evicts_the_least_recently_used(tmp_path):
    import time

    cache = SeriesCache(tmp_path / "cache", max_bytes=3000)

    def writer(size):
        def fetch(folder: Path) -> None:
            (folder / "x.dcm").write_bytes(b"\0" * size)

        return fetch

    for name in ("a", "b", "c"):
        cache.get(name, writer(1000))
        time.sleep(0.02)
    cache.get("a", writer(1000))  # a used again: b is now the least recently used
    time.sleep(0.02)
    cache.get("d", writer(1000))
    assert set(cache.entries()["name"]) == {"a", "c", "d"}
    assert cache.total_bytes() <= 3000
    cache.get("e", writer(2500))
    assert list(cache.entries()["name"]) == ["e"] and cache.total_bytes() <= 3000
    with pytest.raises(RepositoryError, match="positive number of bytes"):
        SeriesCache(tmp_path, 0)


def test_cohort_from_dicomweb_equals_the_cohort_from_files(server, tmp_path, capsys):
    from kicc_analysis.cli import main
    from kicc_analysis.cohort import build_cohort, ct_series_jobs

    web = scan_dicomweb(server.dicomweb_url, index_dir=tmp_path / "index")
    from_web = build_cohort(server.repository, scan=web, write_snapshot=False)
    from_files = build_cohort(server.repository, index_dir=tmp_path / "fs-index", write_snapshot=False, workers=1)
    pd.testing.assert_frame_equal(from_web.table, from_files.table)
    assert from_web.cohort_version == from_files.cohort_version
    jobs = ct_series_jobs(from_web, series_cache_bytes=1 << 30)
    assert len(jobs) == len(ct_series_jobs(from_files)) > 0
    assert all(isinstance(s, DicomwebSeries) and s.max_bytes == 1 << 30 for s in jobs["source"])
    with pytest.raises(RepositoryError, match="series_source"):
        from kicc_analysis.repository import series_files

        series_files(web, jobs["series_uid"].iloc[0])
    # a teaching case from the DICOMweb series shows the same images as from the repository's files
    from kicc_analysis.teaching.case import build_case

    subject = from_web.table.dropna(subset=["baseline_ct_series_uid"])["subjid"].iloc[0]
    uid = from_web.table.set_index("subjid").loc[subject, "baseline_ct_series_uid"]
    remote = series_source(web, uid, cache_dir=tmp_path / "series-cache")
    case_web = build_case(from_web.table, subject, repository=server.repository, ct_source=remote, stack_step=8)
    case_files = build_case(from_files.table, subject, repository=server.repository, stack_step=8)
    assert len(case_web.stack) == len(case_files.stack) > 0
    assert all((a == b).all() for a, b in zip(case_web.stack, case_files.stack, strict=True))
    assert Path(os.fspath(remote)).is_dir()
    # the comparison studies of a DICOMweb build: the same CT series (fetched on demand), radiographs said left out
    from kicc_analysis.teaching.case import case_studies

    ct = from_files.inventory[from_files.inventory["modality"] == "CT"]
    followed = ct.groupby("subjid")["img_day"].nunique().loc[lambda n: n >= 2].index[0]
    web_studies, web_left = case_studies(from_web, followed, server.repository)
    file_studies, _ = case_studies(from_files, followed, server.repository)
    file_cts = [s for s in file_studies if s.modality == "CT"]
    assert [(s.day, s.image.GetSize()) for s in web_studies] == [(s.day, s.image.GetSize()) for s in file_cts]
    assert all("DICOMweb" in reason for reason in web_left)
    assert len(web_left) == len(file_studies) - len(file_cts)
    assert main(["cohort", str(server.repository), "--dicomweb", server.dicomweb_url]) == 0
    assert f"cohort_version {from_files.cohort_version}" in capsys.readouterr().out


def test_kicc_quantify_from_dicomweb_with_two_workers_and_a_small_cache(server, tmp_path, capsys):
    from kicc_analysis.cli import main
    from kicc_analysis.repository.dicomweb import default_series_cache_dir

    bound_gb = 0.003  # ~3.2 MB: about two demo CT series, fewer than the cohort's
    out = tmp_path / "out"
    status = main(
        ["quantify", "--repository", str(server.repository), "--dicomweb", server.dicomweb_url, "--workers", "2",
         "--series-cache-gb", str(bound_gb), "--cache", str(tmp_path / "results"), "--out", str(out)]
    )  # fmt: skip
    assert status == 0, capsys.readouterr()
    results = pd.read_csv(out / "ct_quantification_by_region.csv")
    assert pd.read_csv(out / "ct_failures.csv").empty
    web = scan_dicomweb(server.dicomweb_url)
    n_selected = web.selection["series_uid"].notna().sum()
    assert results["series_uid"].nunique() == n_selected >= 3
    cache = SeriesCache(default_series_cache_dir(server.dicomweb_url), int(bound_gb * (1 << 30)))
    assert 0 < cache.total_bytes() <= cache.max_bytes
    assert len(cache.entries()) < n_selected  # least recently used series were evicted while the workers ran


def test_the_dicomweb_index_holds_no_identifier_in_clear(server, tmp_path):
    """PatientIDs and descriptions are sealed (repository.sealed), as in the file scan's cache; re-scans unseal them."""
    import pyarrow.parquet as pq

    index = tmp_path / "index"
    first = scan_dicomweb(server.dicomweb_url, index_dir=index)
    clear = pq.read_table(index / "files.parquet")
    assert {"patient_id", "relpath", "series_description"}.isdisjoint(clear.column_names)
    assert (index / ".kicc-secret").stat().st_mode & 0o777 == 0o600
    values = set(first.instances["patient_id"].dropna()) | set(first.instances["series_description"].dropna())
    values = {v for v in values if len(str(v)) >= 4}
    assert values
    for f in (p for p in index.rglob("*") if p.is_file()):
        data = f.read_bytes()
        assert not any(str(v).encode() in data for v in values), f.name  # pseudonyms too: nothing in clear
    again = scan_dicomweb(server.dicomweb_url, index_dir=index)
    assert again.queried_studies == ()
    _assert_same_tables(again, first)
