"""kill -9 of the driver in the middle of a trial, then the same command again: nothing lost."""
import os
import signal
import subprocess
import sys

from optuna.trial import TrialState

from autoc.search.storage import default_storage_url
from conftest import TINY_FLAGS, load, trials_so_far, wait_for

HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]


def test_kill_9_mid_trial_then_resume_keeps_completed_and_retries_the_lost_trial(tiny_space, runs_dir):
    # Longer fine-tunes than elsewhere, so that a trial is caught while it runs: at 40 steps a
    # trial on a quiet machine could finish between being seen running and the kill.
    command = [sys.executable, "-m", "autoc.cli", "search", *TINY_FLAGS, "--finetune-steps", "300",
               "--space", str(tiny_space), "--runs-dir", str(runs_dir), "--study", "k", "--trials", "4", *HEARTBEAT]
    storage = default_storage_url(runs_dir / "k")
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def completed_and_running():
            trials = trials_so_far(runs_dir / "k", "k") if driver.poll() is None else None
            if not trials:
                return None
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            # sampled and now training (its heartbeat started before sampling)
            running = [t for t in trials if t.state == TrialState.RUNNING and "candidate" in t.user_attrs]
            return (done, running[0]) if done and running else None

        done, running = wait_for(completed_and_running, timeout_s=240, what="a completed and a running trial")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
    killed = load(storage, "k").trials[running.number]
    assert killed.state == TrialState.RUNNING  # the kill left it behind, unfinished

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]

    trials = load(storage, "k").trials
    for before in done:  # completed trials are kept, unchanged
        assert trials[before.number].state == TrialState.COMPLETE and trials[before.number].values == before.values
    assert trials[running.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params  # the same candidate, run again
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert "4 trials" in again.stdout
