"""Trials run as Ray tasks: four local workers on one SQLite file, and a two-node cluster on
loopback that loses a node mid-search."""
import pytest
import os
import subprocess
import sys

from optuna.trial import TrialState

from autoc.search.driver import run_search
from autoc.search.storage import default_storage_url
from autoc.search.worker import SURPLUS_ATTR, WORKER_ATTR
from conftest import TINY_FLAGS, load, tiny_options, trials_so_far, wait_for

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def test_four_local_workers_share_one_sqlite_file_without_lock_errors(tiny_space, runs_dir):
    options = tiny_options(tiny_space, runs_dir, "w4", trials=8, workers=4)
    result = run_search(options)  # a "database is locked" in any worker would raise here
    trials = load(default_storage_url(runs_dir / "w4"), "w4").trials
    assert result.trials_total == 8
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8  # exactly the target, none surplus
    # a worker that raced past the target ends its trial at once, marked, before training
    assert all(t.state == TrialState.FAIL and t.user_attrs[SURPLUS_ATTR] for t in trials if t.state != TrialState.COMPLETE)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({t.user_attrs[WORKER_ATTR] for t in complete}) >= 2  # trials ran concurrently in several workers
    assert len({tuple(sorted(t.params.items())) for t in complete}) >= 4  # workers do not replay one sampler


def _node(trial) -> str:
    return trial.user_attrs.get(WORKER_ATTR, "").rsplit("node=", 1)[-1]


def _pid(trial) -> int:
    return int(trial.user_attrs[WORKER_ATTR].split(":")[1])  # label: host:pid:node=...


def test_two_node_cluster_loses_a_node_and_still_finishes(ray_cluster, tiny_space, runs_dir):
    command = [sys.executable, "-m", "autoc.cli", "search", *TINY_FLAGS, "--finetune-steps", "60",
               "--space", str(tiny_space), "--runs-dir", str(runs_dir), "--study", "c", "--trials", "8",
               "--workers", "2", "--ray-address", ray_cluster.address, "--heartbeat-interval", "1", "--grace-period", "3"]
    storage = default_storage_url(runs_dir / "c")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        def completed_trial_and_worker_node_busy():
            if driver.poll() is not None:  # finished before the kill could happen: say why, at once
                seen = [(t.number, t.state.name, _node(t)) for t in trials_so_far(runs_dir / "c", "c") or []]
                raise AssertionError(f"search ended (exit {driver.returncode}) before a trial was seen running on "
                                     f"the worker node; trials (number, state, node): {seen}; "
                                     f"stderr: {driver.stderr.read()[-2000:]}")
            trials = trials_so_far(runs_dir / "c", "c")
            if not trials:
                return None
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            worker_pids = ray_cluster.worker_node_pids()
            busy = any(t.state == TrialState.RUNNING and WORKER_ATTR in t.user_attrs and _pid(t) in worker_pids
                       for t in trials)
            return done if done and busy else None

        # killed while it runs a trial, so that trial is lost mid-way and must be retried
        done = wait_for(completed_trial_and_worker_node_busy, timeout_s=300,
                        what="a completed trial and a trial running on the worker node")
        assert ray_cluster.kill_worker_node() > 0
        try:
            out, err = driver.communicate(timeout=300)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"search did not finish after the node died: {exc.stdout!s:.3000}") from None
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]
    trials = load(storage, "c").trials
    for before in done:  # nothing completed before the node died is lost
        assert trials[before.number].state == TrialState.COMPLETE and trials[before.number].values == before.values
    assert sum(t.state in FINISHED for t in trials) == 8
    assert "8 trials" in out
    # the trial the dead node held went stale and was re-run on the other node, with the parameters
    # it had drawn (all of them, unless the node died while it was still sampling)
    lost = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR)]
    assert lost
    for trial in lost:
        retry = next(t for t in trials if t.system_attrs.get("failed_trial") == trial.number)
        assert retry.state == TrialState.COMPLETE and trial.params.items() <= retry.params.items()
        assert _node(retry) != _node(trial)


def test_a_local_ray_instance_runs_tasks_at_normal_priority():
    """Ray's default niceness 15 starves trials whenever anything else on the machine is busy."""
    import ray

    from autoc.search.ray_workers import _connect

    _connect(None, num_cpus=1)
    try:
        assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == 0
    finally:
        ray.shutdown()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_workers_asking_for_a_gpu_the_ray_instance_lacks_are_refused_not_queued_forever(tiny_space, runs_dir):
    from autoc.errors import ComputeError

    options = tiny_options(tiny_space, runs_dir, "gpu", trials=2, workers=2, gpus=0.5)
    with pytest.raises(ComputeError, match=r"asks for 0.5 GPU .* has 0; .*set workers.gpus to 0"):
        run_search(options)
    assert load(default_storage_url(runs_dir / "gpu"), "gpu").trials == []  # the study stays, ready to resume
