"""Shared set-up of the search tests: a tiny space, warm caches, a PostgreSQL server, a Ray cluster.

Warm caches: the host latency profile and the teacher are built once per session and copied
into each test's runs directory, as a second search on the same machine would find them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pytest

from autoc.latency.blocks import network_units
from autoc.latency.device import open_latency_model
from autoc.search.context import build_objective_context
from autoc.search.options import SearchOptions, StorageOptions, WorkerOptions
from autoc.errors import StorageError
from autoc.search.storage import default_storage_url, open_storage
from autoc.space import load_space, sample_candidate

TINY_SPACE = """
name: tiny
input_size: 16
activation: relu6
stem: {width: [8], stride: 1}
stages:
  - {depth: [1], width: [8], stride: 1, kernel: [3], expansion: [1], per_block: true}
  - {depth: [1, 2], width: [16], stride: 2, kernel: [3, 5], expansion: [3], per_block: true}
head: {width: [32]}
compression: {keep_ratio: [0.5, 1.0], precision: [fp32, int8], weight_bits: [8, 4]}
"""
# Small but real: every trial of the tiny space fits 50 ms on this host and is fine-tuned. One torch
# thread per worker: on a shared 2-core machine more threads than free cores is many times slower.
TINY_SETTINGS = dict(budget_ms=50.0, device="host", finetune_steps=3, teacher_steps=5, max_train=200, max_val=100,
                     progress=False)
TINY_FLAGS = ["--budget-ms", "50", "--device", "host", "--finetune-steps", "3", "--teacher-steps", "5",
              "--max-train", "200", "--max-val", "100", "--no-progress", "--cpus-per-worker", "1"]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def tiny_options(space: Path, runs_dir: Path, study: str, *, workers: int = 1, gpus: float | None = None,
                 url: str | None = None, **fields) -> SearchOptions:
    """The tiny search (TINY_SETTINGS, one thread a worker) of study ``study`` under ``runs_dir``."""
    return SearchOptions(space=str(space), storage=StorageOptions(runs_dir=runs_dir, study=study, url=url),
                         workers=WorkerOptions(count=workers, cpus=1, gpus=gpus), **{**TINY_SETTINGS, **fields})


def named(options: SearchOptions, study: str, **fields) -> SearchOptions:
    """``options`` for study ``study``, with ``fields`` changed."""
    return replace(options, storage=replace(options.storage, study=study), **fields)


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="session")
def warm_runs(tiny_space, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("warm") / "runs"
    build_objective_context(tiny_options(tiny_space, runs, "warm"))
    return runs


@pytest.fixture
def runs_dir(warm_runs, tmp_path) -> Path:
    runs = tmp_path / "runs"
    for cache in ("devices", "cache"):
        shutil.copytree(warm_runs / cache, runs / cache)
    return runs


def prior_priced(space_name_or_path, runs_dir: Path, *, pool: int):
    """(space, host model) with every unit of ``pool`` random candidates priced by the prior fitted
    on the units the host profile has measured, nothing measured here: one unchanging model."""
    space = load_space(space_name_or_path)
    host = open_latency_model("host", runs_dir=runs_dir, space=space, progress=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs = [(c.netspec(), c.policy) for c in (sample_candidate(space, study.ask(), num_classes=10) for _ in range(pool))]
    return space, host.without_measuring(u for spec, policy in specs for u in network_units(spec, policy))


@pytest.fixture
def tiny_latency(tiny_space, runs_dir):
    """The host model priced as the start prices it (units it lacks by its prior, nothing measured),
    so that every figure of a test comes from one unchanging model."""
    return prior_priced(tiny_space, runs_dir, pool=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def load(storage: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=open_storage(storage))


def trials_so_far(run_dir: Path, study: str) -> list | None:
    """The trials of a search still running in another process; None until its study exists."""
    if not (run_dir / "study.db").is_file():
        return None
    try:
        return load(default_storage_url(run_dir), study).trials
    except (KeyError, StorageError):  # the file exists, the study (or its tables) not yet
        return None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """A throw-away PostgreSQL server on a free loopback port, trust auth, run as the postgres
    user (the server refuses root). Skips where PostgreSQL is not installed, unless
    AUTOC_REQUIRE_POSTGRES=1 (CI) makes that a failure."""
    if not (PG_BIN / "postgres").is_file():
        if os.environ.get("AUTOC_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (AUTOC_REQUIRE_POSTGRES=1) but {PG_BIN}/postgres is missing; apt-get install postgresql")
        pytest.skip(f"PostgreSQL not installed ({PG_BIN}/postgres missing); apt-get install postgresql")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="autoc-pg-"))
    data = root / "data"
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log.txt"), "-w", "-o",
            f"-p {port} -h 127.0.0.1 -k {root} -F", "start")
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "autoc")
        yield f"postgresql://postgres@127.0.0.1:{port}/autoc"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RayCluster:
    address: str
    head_marker: str
    worker_marker: str

    def kill_worker_node(self) -> int:
        return kill_marked(self.worker_marker)

    def worker_node_pids(self) -> set[int]:
        return set(descendants(marked_pids(self.worker_marker)))


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries ``marker``: everything one `ray start` spawned."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"AUTOC_TEST_RAY={marker}".encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them (Ray starts its workers and agents with an
    environment of its own, so the marker alone does not find them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_marked(marker: str) -> int:
    pids = descendants(marked_pids(marker))
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return len(pids)


@pytest.fixture
def ray_cluster():
    """Two Ray nodes on loopback, one CPU each: a head and a worker node. Stopped by killing
    exactly the processes they started (never `ray stop`, which would stop every Ray here)."""
    port = free_port()
    head, worker = f"head-{uuid.uuid4().hex}", f"worker-{uuid.uuid4().hex}"
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    # normal priority for task workers (Ray's default niceness 15 starves them on a busy machine)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_worker_niceness": "0"}

    def start(*args: str, marker: str) -> None:
        done = subprocess.run([ray, "start", *args, *common], env={**env, "AUTOC_TEST_RAY": marker},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"ray start {' '.join(args)} failed: {done.stderr[-2000:]}"

    try:
        start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
              f"--ray-client-server-port={free_port()}", marker=head)
        start(f"--address=127.0.0.1:{port}", marker=worker)
        yield RayCluster(address=f"127.0.0.1:{port}", head_marker=head, worker_marker=worker)
    finally:
        kill_marked(worker)
        kill_marked(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
