"""A trial stopped by Ctrl-C or by a full disk is failed cleanly (one line, no temp file left) and
run again on resume, as the heartbeat retries the trial of a killed worker."""
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
from optuna.trial import TrialState

from autoc.search.storage import default_storage_url
from conftest import TINY_FLAGS, load, trials_so_far, wait_for


def _command(tiny_space, runs_dir, study, *extra):
    return [sys.executable, "-m", "autoc.cli", "search", *TINY_FLAGS, "--space", str(tiny_space),
            "--runs-dir", str(runs_dir), "--study", study, *extra]


def _unexpected(stderr: str) -> list[str]:
    """stderr's lines but the warning that the tiny budget (every candidate fits) does not constrain the search."""
    return [line for line in stderr.splitlines() if "does not constrain the search" not in line]


def _retries_of(trials, number):
    return [t for t in trials if t.system_attrs.get("failed_trial") == number]


def test_a_ctrl_c_trial_is_retried_on_resume(tiny_space, runs_dir):
    command = _command(tiny_space, runs_dir, "c", "--trials", "3", "--finetune-steps", "300")
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def running():
            trials = trials_so_far(runs_dir / "c", "c") if driver.poll() is None else None
            busy = [t for t in trials or [] if t.state == TrialState.RUNNING and "candidate" in t.user_attrs]
            return busy[0] if busy else None

        interrupted = wait_for(running, timeout_s=240, what="a running trial")
        os.kill(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    storage = default_storage_url(runs_dir / "c")
    assert load(storage, "c").trials[interrupted.number].state == TrialState.FAIL

    again = subprocess.run(command[:-2], capture_output=True, text=True, timeout=300)  # shorter fine-tunes now
    assert again.returncode == 0 and _unexpected(again.stderr) == [], again.stderr[-2000:]  # no library warnings either
    trials = load(storage, "c").trials
    [retry] = _retries_of(trials, interrupted.number)
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params


@pytest.fixture
def full_weights_folder(runs_dir):
    """runs/f/weights on a tmpfs of 1 MiB filled to the last byte: the first weights written hit ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    weights = runs_dir / "f" / "weights"
    weights.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"autoc-test-{uuid.uuid4().hex[:8]}",
                              str(weights)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        filler = os.open(weights / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(filler)
        yield weights
    finally:
        subprocess.run(["umount", "-l", str(weights)], capture_output=True)


def test_a_full_disk_fails_the_trial_cleanly_and_it_is_retried(tiny_space, runs_dir, full_weights_folder):
    command = _command(tiny_space, runs_dir, "f", "--trials", "2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(_unexpected(err)) == 1 and "Traceback" not in err, err[-3000:]
    assert "the disk is full" in err and str(full_weights_folder) in err
    assert os.listdir(full_weights_folder) == ["filler"]  # no temp file left behind
    storage = default_storage_url(runs_dir / "f")
    failed = [t for t in load(storage, "f").trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and not [t for t in load(storage, "f").trials if t.state == TrialState.RUNNING]

    (full_weights_folder / "filler").unlink()  # space freed: the same command resumes
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and _unexpected(again.stderr) == [], again.stderr[-2000:]  # no library warnings either
    [retry] = _retries_of(load(storage, "f").trials, failed[0].number)
    assert retry.state == TrialState.COMPLETE and retry.params == failed[0].params
