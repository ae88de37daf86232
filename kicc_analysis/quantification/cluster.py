"""Quantification on an existing ``dask.distributed`` cluster: one task per CT series (issue 21, section 2).

:func:`kicc_analysis.quantification.batch.quantify_series_table` hands its uncached jobs to :func:`run_on_cluster`
when it is given a scheduler (``scheduler=`` / ``kicc quantify --scheduler tcp://host:8786`` / the environment
variable :data:`SCHEDULER_ENV`); without one the local process pool stays the default.

How a run works

* The **client** (the process that called ``quantify_series_table``) computes every series' cache key, loads the
  series already in its cache and submits only the others, one task per series, with ``retries=``. No scheduler
  is contacted when every series is cached.
* A **task** runs :func:`kicc_analysis.quantification.batch.quantify_series` on a worker and returns
  ``(job, table or None, error message)``. It writes nothing: the same series submitted twice (a retry, a worker
  that died mid-task, a second client) computes the same table, so tasks are idempotent. The task's Dask key is
  derived from the series' cache key (content of its files, options, algorithm version), so a series changed on
  disk is a new task.
* **Results and failures come back to the client**, which writes the per-series Parquet cache (its own disk; the
  workers need to read the series' files, not the client's cache) and the failure records exactly as the local
  pool does. A task that still raises after its retries, or that Dask gives up on (``KilledWorker`` after
  ``distributed.scheduler.allowed-failures`` worker deaths), becomes a failure record naming the exception; one
  bad series never stops the run. Dask counts a worker's death against every task running or queued on it, so
  series queued beside a series that keeps killing its worker may be given up with it (``KilledWorker``): they
  are failure records, and since failures are not cached the next run computes them. A worker whose package computes another algorithm version than the client's
  (:data:`~kicc_analysis.quantification.batch.CACHE_VERSION`) gives a failure record, never a mis-keyed cache
  file.
* The **progress bar** (``tqdm.auto``, silenceable) advances as the cluster completes tasks.

The workers must be able to import this package (same version as the client) and to read the series' files
(shared file system); ``docs/scaling.md`` shows how to start workers on an HPC batch system (dask-jobqueue) or on
Kubernetes.

Examples
--------
>>> resolve_scheduler(None, environ={}) is None
True
>>> resolve_scheduler(None, environ={SCHEDULER_ENV: "tcp://10.0.0.5:8786"})
'tcp://10.0.0.5:8786'
>>> resolve_scheduler("local", environ={SCHEDULER_ENV: "tcp://10.0.0.5:8786"}) is None
True
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ClusterError
from ..progress import progress_bar

__all__ = ["DEFAULT_RETRIES", "SCHEDULER_ENV", "TASK_PREFIX", "resolve_scheduler", "run_on_cluster", "task_key"]

#: Environment variable naming the scheduler (``tcp://host:8786``) when none is given.
SCHEDULER_ENV = "KICC_DASK_SCHEDULER"
#: Times a task that raised is resubmitted (``Client.submit(retries=)``); worker deaths are counted apart by the
#: scheduler (``distributed.scheduler.allowed-failures``, default 3).
DEFAULT_RETRIES = 2
#: Prefix of every task key (how the tasks appear in the Dask dashboard).
TASK_PREFIX = "kicc-quantify"
#: Tasks in flight at once (submitted, not yet returned): far more than any cluster has worker threads, far fewer
#: than a large cohort's series (each task carries its series' file list).
DEFAULT_IN_FLIGHT = 2000
#: Seconds to wait for the scheduler when connecting.
CONNECT_TIMEOUT_S = 30.0

Result = tuple[dict[str, Any], Any, str]


def resolve_scheduler(scheduler: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """The scheduler to use: ``scheduler`` when given, else ``$KICC_DASK_SCHEDULER``, else None (local pool).

    Parameters
    ----------
    scheduler : str, ``distributed.Client``, cluster object or None
        An address (``tcp://host:8786``), a connected client or a cluster object (``LocalCluster``,
        ``SLURMCluster``...). ``"local"`` (or ``""``) forces the local pool even when the variable is set.
    environ : mapping, optional
        Environment to read (default ``os.environ``).
    """
    if isinstance(scheduler, str):
        text = scheduler.strip()
        return None if text in ("", "local") else text
    if scheduler is not None:
        return scheduler
    value = (os.environ if environ is None else environ).get(SCHEDULER_ENV, "").strip()
    return value or None


def task_key(cache_key: str) -> str:
    """Dask key of a series' task: :data:`TASK_PREFIX` and the first 32 hex digits of its cache key (no UID, no
    path: the dashboard shows keys).

    >>> task_key("ab" * 32)
    'kicc-quantify-abababababababababababababababab'
    """
    return f"{TASK_PREFIX}-{cache_key[:32]}"


@contextlib.contextmanager
def _connected(scheduler: Any, timeout_s: float) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (used as is when it already is one; closed afterwards when it was
    opened here)."""
    try:
        from distributed import Client
    except ImportError as exc:  # the optional [cluster] extra
        raise ClusterError(
            "a Dask scheduler was given but dask.distributed is not installed; "
            "install the cluster extra: pip install 'kicc-analysis[cluster]'"
        ) from exc
    if isinstance(scheduler, Client):
        yield scheduler
        return
    where = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
    try:
        client = Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ClusterError(
            f"cannot connect to the Dask scheduler {where} (--scheduler / ${SCHEDULER_ENV}) within {timeout_s:g} s: "
            f"expected a running dask.distributed scheduler, got {type(exc).__name__}: {exc}"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def run_on_cluster(
    task: Callable[[dict[str, Any]], Result],
    todo: list[tuple[dict[str, Any], str]],
    scheduler: Any,
    *,
    show_progress: bool | None = None,
    retries: int = DEFAULT_RETRIES,
    connect_timeout_s: float | None = None,
    max_in_flight: int | None = DEFAULT_IN_FLIGHT,
) -> Iterator[Result]:
    """Run ``task(job)`` for every ``(job, cache key)`` of ``todo`` on a Dask cluster; yield results as they come.

    Parameters
    ----------
    task : callable
        Picklable function of one job returning ``(job, table or None, error)`` and writing nothing (a
        ``functools.partial`` of :func:`kicc_analysis.quantification.batch._run_job`).
    todo : list of (dict, str)
        Jobs and their cache keys (hex), in submission order; the keys name the tasks (:func:`task_key`), so
        they must be distinct.
    scheduler : str, ``distributed.Client`` or cluster object
        Where to run (:func:`resolve_scheduler`).
    show_progress : bool, optional
        Progress bar over the series, advanced as tasks complete (default: on unless ``KICC_NO_PROGRESS``).
    retries : int
        Resubmissions of a task that raised.
    connect_timeout_s : float
        Seconds to wait for the scheduler (s); default :data:`CONNECT_TIMEOUT_S`.
    max_in_flight : int or None
        Tasks submitted and not yet returned at any time (default :data:`DEFAULT_IN_FLIGHT`); the next series is
        submitted as one completes, so the scheduler never holds the file lists of a whole 10^5-series cohort.
        None submits everything at once.

    Yields
    ------
    tuple
        ``(job, table, "")`` for a series computed, ``(job, None, "<Exception>: message")`` for one that failed
        (its own error, an exception after ``retries``, or ``KilledWorker``), in completion order.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or ``dask.distributed`` is not installed.
    """
    if not todo:
        return
    keys = [task_key(key) for _, key in todo]
    if len(set(keys)) != len(keys):
        raise ClusterError(f"{len(keys) - len(set(keys))} job(s) share a task key; every series must be distinct")
    timeout_s = CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
    with _connected(scheduler, timeout_s) as client:
        from distributed import as_completed

        jobs = {k: job for k, (job, _) in zip(keys, todo, strict=True)}
        window = max(1, int(max_in_flight or len(keys)))
        pending = iter(keys)

        def submit(n: int) -> list[Any]:  # the next n series (a job carries its file list: bounded in flight)
            batch = [k for _, k in zip(range(n), pending, strict=False)]
            return client.map(task, [jobs[k] for k in batch], key=batch, retries=int(retries), pure=True)

        completed = as_completed(submit(window), loop=client.loop)
        with progress_bar(None, show=show_progress, total=len(keys), desc="CT series", unit="series") as bar:
            for future in completed:
                for more in submit(1):
                    completed.add(more)
                job = jobs[future.key]
                if future.status == "finished":
                    result = future.result()
                else:  # error after the retries, KilledWorker, cancelled (lost scheduler)
                    exc = future.exception() if future.status == "error" else None
                    error = (
                        f"{type(exc).__name__}: {exc}" if exc is not None else f"task {future.status} on the cluster"
                    )
                    result = (job, None, error)
                future.release()
                bar.update(1)
                yield result


def cluster_task(run_job: Callable[..., Result], **params: Any) -> Callable[[dict[str, Any]], Result]:
    """``run_job`` with the run's parameters bound and no cache folder (workers write nothing)."""
    return functools.partial(run_job, cache_dir=None, key=None, **params)
