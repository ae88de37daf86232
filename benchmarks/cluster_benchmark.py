"""Quantification throughput: the local process pool vs a 2-worker dask.distributed LocalCluster (issue 21 §2).

On a demo repository (default 12 patients, 128 x 128 CT slices), every selected CT series is quantified without
cache (``quantify_series_table(cache_dir=None)``) by

* ``serial``: one process (``workers=1``), the per-series cost on one core;
* ``pool``: today's default, a ``ProcessPoolExecutor`` of 2 processes (``workers=2``; new processes every run);
* ``cluster``: ``scheduler=`` a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` started once
  (persistent workers; one unmeasured warm-up run first, so worker imports are not counted; the cluster's start-up
  and the first run are reported apart).

The three are alternated ``--repeats`` times; medians are reported as series per minute. Then the overhead per
task of each executor on an empty task (returns its argument): the round trip of one task at a time
(submit -> result, median over ``--tasks``), and the amortised cost per task of ``--tasks`` tasks submitted at
once (map -> gather). Each run's CPU time is summed over this process, the pool's finished processes and the cluster's worker processes
(``cpu_s_per_series``: what a run costs in CPU, which a shared machine's load does not inflate the way it inflates
wall time). Prints one JSON object with the machine, the date and the load average before/after.

Usage::

    python benchmarks/cluster_benchmark.py [--patients 12 --repeats 3 --tasks 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor


def _noop(x: int) -> int:
    return x


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _empty_task_overhead(submit_one, map_all, n: int) -> dict:
    """Median round trip of one task (ms) and amortised cost per task of n at once (ms)."""
    submit_one(0)  # warm
    trips = []
    for i in range(n):
        t0 = time.perf_counter()
        assert submit_one(i) == i
        trips.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    assert map_all(list(range(n))) == list(range(n))
    bulk = time.perf_counter() - t0
    return {"round_trip_ms": 1000 * statistics.median(trips), "bulk_per_task_ms": 1000 * bulk / n}


def _worker_cpu_s() -> float:
    """CPU seconds (user + system, all threads) of the calling process."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children (the local pool's processes, once it has shut down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    os.environ["KICC_NO_PROGRESS"] = "1"

    from distributed import Client, LocalCluster

    from kicc_analysis.cohort import build_cohort, ct_series_jobs
    from kicc_analysis.demo import generate_demo
    from kicc_analysis.quantification.batch import quantify_series_table

    load_before = os.getloadavg()
    folder = tempfile.mkdtemp(prefix="kicc_cluster_bench_")
    os.environ["KICC_CACHE"] = os.path.join(folder, "cache")
    generate_demo(os.path.join(folder, "repository"), n_patients=args.patients, seed=19, show_progress=False)
    jobs = ct_series_jobs(build_cohort(os.path.join(folder, "repository"), workers=1, show_progress=False))
    n = len(jobs)

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    startup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = quantify_series_table(jobs, None, scheduler=client, show_progress=False)
    first_cluster_run_s = time.perf_counter() - t0

    runs = {
        "serial": lambda: quantify_series_table(jobs, None, workers=1, show_progress=False, scheduler="local"),
        "pool": lambda: quantify_series_table(jobs, None, workers=2, show_progress=False, scheduler="local"),
        "cluster": lambda: quantify_series_table(jobs, None, scheduler=client, show_progress=False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}

    def cpu_now() -> float:  # this process + finished children + the cluster's worker processes
        workers = client.run(_worker_cpu_s)
        return time.process_time() + _children_cpu_s() + sum(workers.values())

    for _ in range(args.repeats):
        for name, run in runs.items():
            c0, t0 = cpu_now(), time.perf_counter()
            result = run()
            seconds[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_now() - c0)
            assert result.drop(columns="cached").equals(reference.drop(columns="cached")), name
    throughput = {
        name: {
            "median_s": statistics.median(s),
            "series_per_min": 60 * n / statistics.median(s),
            "runs_s": [round(x, 2) for x in s],
            "cpu_s_per_series": statistics.median(cpu[name]) / n,
            "cpu_runs_s": [round(x, 2) for x in cpu[name]],
        }
        for name, s in seconds.items()
    }

    overhead = {
        "cluster": _empty_task_overhead(
            lambda i: client.submit(_noop, i, pure=False).result(),
            lambda xs: client.gather(client.map(_noop, xs, pure=False)),
            args.tasks,
        )
    }
    with ProcessPoolExecutor(max_workers=2) as pool:
        overhead["pool"] = _empty_task_overhead(
            lambda i: pool.submit(_noop, i).result(), lambda xs: list(pool.map(_noop, xs)), args.tasks
        )
    client.close()
    cluster.close()

    import dask
    import distributed

    print(
        json.dumps(
            {
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
                "dask": dask.__version__,
                "distributed": distributed.__version__,
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                "patients": args.patients,
                "series": n,
                "failures": len(reference.attrs["failures"]),
                "cluster_startup_s": round(startup_s, 2),
                "first_cluster_run_s": round(first_cluster_run_s, 2),
                "throughput": throughput,
                "overhead_per_empty_task": overhead,
                "ratio_cluster_over_pool_series_per_min": throughput["cluster"]["series_per_min"]
                / throughput["pool"]["series_per_min"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
