"""Run search workers as Ray tasks: on a local instance autoc starts, or on an existing cluster.

Each task is one :func:`autoc.search.worker.run_worker` loop with its CPU share reserved in Ray
and its torch thread count set to match. Workers share the study through the storage and the
cached teacher and device profile through the run directory (on several machines it must be a
shared filesystem, and the storage a server such as PostgreSQL). A task on a node that dies is
retried by Ray; the trial it held goes stale and another worker re-runs it.
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace
from typing import Callable

from autoc.errors import AutocError, ComputeError, first_line
from autoc.search.worker import WorkerReport, WorkerSpec, run_worker

# Ray starts task workers at niceness 15, so a trial starves whenever any other process on the
# machine is busy (a 2-worker test spent minutes at ~10% CPU per worker under load): autoc's own
# local instance runs them at normal priority. Nodes of an existing cluster keep their setting
# (start them with RAY_worker_niceness=0 where they share the machine with other work).
WORKER_NICENESS = 0
TASK_RETRIES = 3  # Ray restarts a task this often when its worker process or node dies
DRAIN_S = 5.0  # after the target is met, how long leftover tasks get to notice and return


class WorkerError(AutocError):
    """The Ray workers could not run or all died before the study was done."""


def run_ray_workers(
    spec: WorkerSpec,
    *,
    workers: int,
    address: str | None,
    cpus_per_worker: int,
    on_poll: Callable[[], bool],
    poll_s: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> list[WorkerReport]:
    """Run ``workers`` tasks until each returns. ``on_poll()`` is called every ``poll_s`` and
    returns True once the study is done (then tasks still queued are dropped after DRAIN_S).
    ``gpus_per_worker`` > 0 reserves that share of a GPU for each task (Ray then makes only
    its GPU visible to it); a cluster without that much GPU is refused at once, not waited on."""
    import ray

    _connect(address, num_cpus=None if address else workers * cpus_per_worker)
    try:
        if gpus_per_worker > 0:
            _check_gpus(ray.cluster_resources().get("GPU", 0.0), gpus_per_worker=gpus_per_worker, address=address)
        task = ray.remote(_run_task).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                             max_retries=TASK_RETRIES)
        pending = [task.remote(replace(spec, index=i, threads=cpus_per_worker)) for i in range(workers)]
        reports: list[WorkerReport] = []
        lost: list[str] = []
        done_since: float | None = None
        while pending:
            finished, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
            for ref in finished:
                try:
                    reports.append(ray.get(ref))
                except ray.exceptions.RayTaskError as exc:
                    raise exc.cause if isinstance(exc.cause, AutocError) else exc
                except ray.exceptions.RayError as exc:  # worker or node died more than TASK_RETRIES times
                    lost.append(first_line(exc))
            if on_poll():
                done_since = done_since or time.monotonic()
                if time.monotonic() - done_since > DRAIN_S:
                    # Left are tasks Ray still retries (e.g. a dead node's, queued for a CPU). No
                    # ray.cancel: cancelling a task of a dead node can block; ending the job drops them.
                    break
        if not reports and lost:
            raise WorkerError(
                f"all {workers} Ray workers died ({lost[0]}); completed trials are stored: "
                "check the cluster, then re-run the same command to resume"
            )
        return reports
    finally:
        ray.shutdown()


def _check_gpus(available: float, *, gpus_per_worker: float, address: str | None) -> None:
    """Ray would queue a task that asks for more GPU than any node has forever: fail with the fix instead."""
    if available < gpus_per_worker:
        where = f"the Ray cluster at {address!r}" if address else "the local Ray instance"
        raise ComputeError(
            f"each worker asks for {gpus_per_worker:g} GPU (workers.gpus, or 1 with train_device on a GPU) but "
            f"{where} has {available:g}; start its nodes with their GPUs (ray start --num-gpus N), set "
            f"workers.gpus to 0, or train on the CPU (train_device cpu)", fields=("workers.gpus", "train_device")
        )


def _run_task(spec: WorkerSpec) -> WorkerReport:
    import ray

    node = ray.get_runtime_context().get_node_id()
    return run_worker(replace(spec, label=f"node={node[:12]}"))


def _connect(address: str | None, *, num_cpus: int | None) -> None:
    import ray

    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local" always starts a fresh instance, never joins a cluster that happens to run here
            ray.init(address="local", num_cpus=num_cpus, _system_config={"worker_niceness": WORKER_NICENESS}, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        reason = first_line(exc)
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        fix = "check the address (ray start --head prints it) and that the cluster runs" if address else "check `ray` works here"
        raise WorkerError(f"cannot connect to {where}: {reason}; {fix}") from None


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail in seconds on a wrong host:port; ray.init itself retries for minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://, "auto" and the like: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise WorkerError(
            f"cannot connect to the Ray cluster at {address!r}: {exc.strerror or exc}; check the address "
            "(ray start --head prints it) and that the cluster runs"
        ) from None
