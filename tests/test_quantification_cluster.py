"""Tests of kicc_analysis.quantification.cluster: quantification on a dask.distributed LocalCluster.

One LocalCluster of 2 worker processes (1 thread each) per module, on a 3-patient demo repository (128 x 128 CT
slices) plus one broken series: the cluster gives the same tables and failure records as the local run, a worker
killed mid-run loses nothing, the progress bar follows the tasks, the client writes the cache and a fully cached
run never contacts a scheduler.
"""

from __future__ import annotations

import io
import os
import signal
import sys

import pandas as pd
import pytest

from kicc_analysis.errors import ClusterError
from kicc_analysis.quantification import batch, cluster

distributed = pytest.importorskip("distributed", reason="dask.distributed (the [cluster] extra) is not installed")

pytestmark = pytest.mark.xdist_group("dask_local_cluster")

UNREACHABLE = "tcp://127.0.0.1:9"  # discard port: nothing listens, connections are refused


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> pd.DataFrame:
    """The demo's selected CT series (3 patients, 4 series) and one series whose file is not an image."""
    from kicc_analysis.cohort import build_cohort, ct_series_jobs
    from kicc_analysis.demo import generate_demo

    root = tmp_path_factory.mktemp("cluster_demo")
    generate_demo(root / "repository", n_patients=3, seed=19, show_progress=False)
    table = ct_series_jobs(build_cohort(root / "repository", workers=1, show_progress=False))
    broken = root / "broken.dcm"
    broken.write_text("not a DICOM file")
    extra = table.iloc[[0]].assign(series_uid="2.25.1", timepoint="follow-up", img_day=99, source=[[str(broken)]])
    table = pd.concat([table, extra], ignore_index=True)
    table.attrs["repository"] = root / "repository"
    return table


@pytest.fixture(scope="module")
def local_run(jobs) -> pd.DataFrame:
    """The reference: the same jobs quantified in this process (no cache)."""
    return batch.quantify_series_table(jobs, None, workers=1, show_progress=False)


@pytest.fixture(scope="module")
def client():
    """One LocalCluster per module: 2 worker processes, 1 thread each; a task whose worker dies twice is given up
    (``KilledWorker``; the default allows 3 deaths, which would make a test restart 4 workers)."""
    import dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="1GiB"
        ) as local_cluster,
        distributed.Client(local_cluster, timeout=120, set_as_default=False) as connected,
    ):
        connected.wait_for_workers(2, timeout=120)
        yield connected


class _RecordingBar:
    """A tqdm stand-in for cluster.progress_bar: records the count after each update and the number of cache
    files the client had written at that moment."""

    def __init__(self, cache_dir, total: int, **_: object) -> None:
        from tqdm.auto import tqdm

        self.cache_dir = cache_dir
        self.bar = tqdm(total=total, file=io.StringIO(), disable=False)
        self.counts: list[int] = []
        self.cached_files: list[int] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.counts.append(self.bar.n)
        self.cached_files.append(len(list(self.cache_dir.glob("series_*.parquet"))))


def _record_bars(monkeypatch, cache_dir) -> list[_RecordingBar]:
    bars: list[_RecordingBar] = []

    def factory(iterable=None, *, show=None, **kwargs):
        bars.append(_RecordingBar(cache_dir, **kwargs))
        return bars[-1]

    monkeypatch.setattr(cluster, "progress_bar", factory)
    return bars


def _same_as_local(result: pd.DataFrame, local_run: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        result.drop(columns="cached").reset_index(drop=True), local_run.drop(columns="cached").reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(result.attrs["failures"], local_run.attrs["failures"])


def test_cluster_run_equals_local_run_cache_and_progress(jobs, local_run, client, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    bars = _record_bars(monkeypatch, cache)
    with distributed.get_task_stream(client) as stream:
        result = batch.quantify_series_table(jobs, cache, scheduler=client, show_progress=True)
    _same_as_local(result, local_run)
    assert not result.cached.any()
    failures = result.attrs["failures"]
    assert list(failures.series_uid) == ["2.25.1"] and failures.error.iloc[0].startswith("ImagingError: ")
    # one task per series ran on the cluster's workers, under keys that name neither UIDs nor paths
    ran = [t["key"] for t in stream.data if str(t["key"]).startswith(cluster.TASK_PREFIX)]
    assert len(set(ran)) == len(jobs) and all("2.25" not in str(key) for key in ran)
    assert {t["worker"] for t in stream.data} <= set(client.scheduler_info()["workers"])
    # the progress bar advanced once per finished task, the first time before all results were in
    (bar,) = bars
    assert bar.bar.total == len(jobs) and bar.counts == list(range(1, len(jobs) + 1))
    assert bar.cached_files[0] == 0 < bar.cached_files[-1]
    # the client wrote one cache file per computed series (failures are not cached) ...
    assert len(list(cache.glob("series_*.parquet"))) == len(jobs) - 1
    assert not list(cache.glob(".*partial"))
    # ... so the next run loads everything and never contacts a scheduler (this one does not exist)
    again = batch.quantify_series_table(jobs.iloc[:-1], cache, scheduler=UNREACHABLE, show_progress=False)
    assert again.cached.all() and again.attrs["failures"].empty
    computed = local_run[local_run.series_uid != "2.25.1"].drop(columns="cached").reset_index(drop=True)
    pd.testing.assert_frame_equal(again.drop(columns="cached"), computed)


class _KillOnce(distributed.WorkerPlugin):
    """Kills the worker process (SIGKILL, no clean-up) when the chosen task starts executing, once: the first
    worker to start it creates the marker file and dies."""

    name = "kicc-test-kill-once"

    def __init__(self, key: str, marker: str) -> None:
        self.key, self.marker = key, marker

    def transition(self, key, start, finish, **kwargs) -> None:
        if key == self.key and finish == "executing":
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)


def test_worker_killed_mid_run_loses_no_series(jobs, local_run, client, tmp_path, monkeypatch):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    victim = jobs.iloc[1].to_dict()
    key = cluster.task_key(batch.job_cache_key(victim, bins="default", core_periphery=True))
    marker = tmp_path / "killed.pid"
    client.register_plugin(_KillOnce(key, str(marker)))
    pids_before = set(client.run(os.getpid).values())
    cache = tmp_path / "cache"
    bars = _record_bars(monkeypatch, cache)
    try:
        result = batch.quantify_series_table(jobs, cache, scheduler=client, show_progress=True)
    finally:
        client.unregister_worker_plugin(_KillOnce.name)
    assert marker.exists(), "the plugin did not kill a worker: the test proved nothing"
    assert int(marker.read_text()) in pids_before
    client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker
    assert int(marker.read_text()) not in set(client.run(os.getpid).values())
    _same_as_local(result, local_run)  # no series lost, none changed, the same single failure
    assert bars[0].counts == list(range(1, len(jobs) + 1))  # the retried task is counted once
    assert len(list(cache.glob("series_*.parquet"))) == len(jobs) - 1


class _KillAlways(distributed.WorkerPlugin):
    """Kills the worker process whenever the chosen task starts executing: the scheduler gives the task up."""

    name = "kicc-test-kill-always"

    def __init__(self, key: str) -> None:
        self.key = key

    def transition(self, key, start, finish, **kwargs) -> None:
        if key == self.key and finish == "executing":
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_series_that_kills_every_worker_is_a_failure_record(jobs, local_run, client, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    victim = jobs.iloc[0].to_dict()
    key = cluster.task_key(batch.job_cache_key(victim, bins="default", core_periphery=True))
    client.register_plugin(_KillAlways(key))
    try:
        result = batch.quantify_series_table(jobs, tmp_path / "cache", scheduler=client, show_progress=False)
    finally:
        client.unregister_worker_plugin(_KillAlways.name)
    client.wait_for_workers(2, timeout=120)
    failures = result.attrs["failures"].set_index("series_uid")
    assert failures.loc[victim["series_uid"], "error"].startswith("KilledWorker: ")
    assert failures.loc["2.25.1", "error"].startswith("ImagingError: ")  # the broken series fails as before
    # series queued on the same dying workers may be given up with it (Dask counts every task of a dead worker) ...
    collateral = failures.drop(index=[victim["series_uid"], "2.25.1"])
    assert collateral["error"].str.startswith("KilledWorker: ").all()
    computed = local_run[~local_run.series_uid.isin(failures.index)].drop(columns="cached").reset_index(drop=True)
    pd.testing.assert_frame_equal(result.drop(columns="cached").reset_index(drop=True), computed)
    assert len(list((tmp_path / "cache").glob("series_*.parquet"))) == len(jobs) - len(failures)
    # ... and failures are not cached: the next run computes them and reuses the rest
    again = batch.quantify_series_table(jobs, tmp_path / "cache", scheduler=client, show_progress=False)
    _same_as_local(again, local_run)
    assert set(again.loc[~again.cached, "series_uid"]) == set(failures.index) - {"2.25.1"}


def test_cli_quantify_on_the_cluster_from_the_environment(jobs, local_run, client, tmp_path, monkeypatch):
    from kicc_analysis.cli import main

    monkeypatch.setenv(cluster.SCHEDULER_ENV, client.scheduler.address)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with distributed.get_task_stream(client) as stream:
        status = main(
            ["quantify", "--repository", str(jobs.attrs["repository"]), "--cache", str(cache), "--out", str(out)]
        )
    assert status == 0
    table = pd.read_csv(out / "ct_quantification_by_region.csv")
    expected = local_run[local_run.series_uid != "2.25.1"]
    assert len({t["key"] for t in stream.data if str(t["key"]).startswith(cluster.TASK_PREFIX)}) == len(
        expected.series_uid.unique()
    )
    pd.testing.assert_series_equal(
        table.set_index(["series_uid", "region"]).opacity_pct.sort_index(),
        expected.set_index(["series_uid", "region"]).opacity_pct.sort_index(),
        check_exact=False,
        rtol=1e-12,
    )


def test_unreachable_scheduler_is_a_one_line_error(jobs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(ClusterError, match=r"cannot connect to the Dask scheduler tcp://127\.0\.0\.1:9 .* within 2 s"):
        batch.quantify_series_table(jobs.iloc[:1], tmp_path / "cache", scheduler=UNREACHABLE, show_progress=False)
    from kicc_analysis.cli import main

    status = main(["quantify", "--repository", str(jobs.attrs["repository"]), "--scheduler", UNREACHABLE])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("kicc quantify: error: cannot connect") and err.count("\n") == 1


def test_scheduler_resolution(monkeypatch):
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    assert cluster.resolve_scheduler(None) is None
    monkeypatch.setenv(cluster.SCHEDULER_ENV, " tcp://10.1.2.3:8786 ")
    assert cluster.resolve_scheduler(None) == "tcp://10.1.2.3:8786"
    assert cluster.resolve_scheduler("tcp://other:8786") == "tcp://other:8786"
    assert cluster.resolve_scheduler("local") is None
    with pytest.raises(ClusterError, match="share a task key"):
        list(cluster.run_on_cluster(print, [({}, "a" * 64), ({}, "a" * 64)], UNREACHABLE))


def _echo_slowly(job: dict) -> tuple:
    import time

    time.sleep(0.05 * (6 - int(job["series_uid"])))  # later series are faster: completion order shows the window
    return job, None, f"echo {job['series_uid']}"


def test_submission_window_bounds_the_tasks_in_flight(client):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    todo = [({"series_uid": str(i)}, f"{i + 1:x}" * 64) for i in range(6)]
    results = list(cluster.run_on_cluster(_echo_slowly, todo, client, max_in_flight=1, show_progress=False))
    assert [job["series_uid"] for job, _, _ in results] == [str(i) for i in range(6)]  # one at a time: in order
    assert [error for _, _, error in results] == [f"echo {i}" for i in range(6)]
    wide = list(cluster.run_on_cluster(_echo_slowly, todo[:4], client, max_in_flight=None, show_progress=False))
    assert sorted(job["series_uid"] for job, _, _ in wide) == ["0", "1", "2", "3"]
