"""Bad inputs and faults across every command, as a careless or unlucky user would make them.

Each case runs `python -m autoc.cli ...` in a subprocess on a fresh copy of a small real run
(a 2-trial search of a tiny space: study.db, weights, best policy, host profile, teacher cache)
and is classed by what it did:

    clear error       exit 2 and one line on stderr (what autoc promises for bad input)
    traceback         a Python traceback on stderr
    silently accepted exit 0 for input that must be refused (or a password echoed)
    unclear           any other exit or a message of several lines
    stored changed    the study database, a profile, a cache or the weights changed (any class)

Cases marked ok=True are inputs autoc must accept (e.g. resuming a renamed run directory).

    python -m benchmarks.robustness.bad_input_sweep                       # every case (a few minutes)
    python -m benchmarks.robustness.bad_input_sweep --only export --limit 5
    python -m benchmarks.robustness.bad_input_sweep --warm-runs runs      # reuse runs/devices and runs/cache

The result (counts and every case) is written as JSON with the machine and date.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import RESULTS, record_result


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
TINY = ["--device", "host", "--finetune-steps", "2", "--teacher-steps", "5", "--max-train", "200", "--max-val", "100", "--no-progress",
        "--cpus-per-worker", "1"]
STUDY = "s"
PASSWORD = "s3cretPW"


@dataclass
class Ctx:
    """Paths of one case's fresh copy of the base run."""

    root: Path
    space: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def run(self) -> Path:
        return self.runs / STUDY

    @property
    def db(self) -> Path:
        return self.run / "study.db"

    def search(self, *extra: str, budget: str | None = "50") -> list[str]:
        return ["search", *(["--budget-ms", budget] if budget else []), "--space", str(self.space),
                "--runs-dir", str(self.runs), *TINY, *extra]


@dataclass
class Case:
    name: str
    argv: Callable[[Ctx], list[str]]
    setup: Callable[[Ctx], None] | None = None
    ok: bool = False  # must succeed rather than be refused
    as_user: bool = False  # run without root's override of file permissions
    result: dict = field(default_factory=dict)


# --- set-ups (faults) ------------------------------------------------------------------------

def damage_db(ctx: Ctx) -> None:
    data = bytearray(ctx.db.read_bytes())
    middle = (len(data) // 4096 // 2) * 4096
    data[middle:middle + 4096] = b"\xa5" * 4096
    ctx.db.write_bytes(bytes(data))


def random_db(ctx: Ctx) -> None:
    (ctx.root / "other.db").write_bytes(os.urandom(8192))


def other_programs_db(ctx: Ctx) -> None:
    with sqlite3.connect(ctx.root / "other.db") as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")


def read_only(path_of: Callable[[Ctx], Path]) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        root = path_of(ctx)
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    return setup


def runs_is_a_file(ctx: Ctx) -> None:
    (ctx.root / "runsfile").write_text("not a folder")


def rename_run(ctx: Ctx) -> None:
    ctx.run.rename(ctx.runs / "best")


def write(name: str, text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.root / name).write_text(text)
    return setup


def single_class(ctx: Ctx) -> None:
    from PIL import Image

    for split in ("train", "val"):
        folder = ctx.root / "one" / split / "apple"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (200, 30, 40)).save(folder / f"{i}.png")


def edited_policy(change: Callable[[dict], None]) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        data = json.loads((ctx.run / "best_policy.json").read_text())
        change(data)
        (ctx.root / "edited.json").write_text(json.dumps(data))
    return setup


def broken_profile(ctx: Ctx) -> None:
    (ctx.runs / "devices" / "broken.json").write_text("{not json")


HUGE_SPACE = TINY_SPACE.replace("width: [16], stride: 2", "width: [20000], stride: 2").replace("{width: [32]}",
                                                                                                 "{width: [30000]}")


# --- the cases --------------------------------------------------------------------------------

def cases() -> list[Case]:
    out: list[Case] = []

    def add(name, argv, setup=None, **kw):
        out.append(Case(name, argv, setup, **kw))

    for value in ("inf", "nan", "-1", "0", "abc", "1e999"):
        add(f"search --budget-ms {value}", lambda c, v=value: c.search("--study", "n", budget=v))
    for value in ("inf", "0", "-1"):
        add(f"search --budget-mj {value}", lambda c, v=value: c.search("--study", "n", "--budget-mj", v))
    for flag, value in [("--trials", "0"), ("--trials", "-3"), ("--timeout", "0"), ("--timeout", "-1"),
                        ("--timeout", "inf"), ("--finetune-steps", "-5"), ("--teacher-steps", "-1"),
                        ("--teacher-steps", "0"), ("--max-train", "0"), ("--max-val", "-1"), ("--seed", "-1"),
                        ("--workers", "0"), ("--cpus-per-worker", "0"), ("--gpus-per-worker", "-1"),
                        ("--heartbeat-interval", "0"), ("--grace-period", "0"), ("--finalists", "-1"),
                        ("--finalist-steps", "0"), ("--supernet-steps", "-1"), ("--supernet-lr", "nan"),
                        ("--sampler", "bogus"), ("--train-device", "tpu")]:
        add(f"search {flag} {value}", lambda c, f=flag, v=value: c.search("--study", "n", f, v))
    for name in ("../escape", "a/b", "cache", "devices", ".hidden", ""):
        add(f"search --study {name!r}", lambda c, n=name: c.search("--study", n, "--trials", "1"))
    add("search --space missing", lambda c: [*c.search("--study", "n"), "--space", "no-such-space"])
    add("search --space malformed yaml", lambda c: [*c.search("--study", "n"), "--space", str(c.root / "bad.yaml")],
        write("bad.yaml", "name: [unclosed\n"))
    add("search --space too large for memory", lambda c: [*c.search("--study", "n"), "--space", str(c.root / "huge.yaml")],
        write("huge.yaml", HUGE_SPACE))
    add("search --dataset mnist", lambda c: c.search("--study", "n", "--dataset", "mnist"))
    add("search imagefolder without --data-dir", lambda c: c.search("--study", "n", "--dataset", "imagefolder"))
    add("search imagefolder of one class", lambda c: c.search("--study", "n", "--dataset", "imagefolder",
                                                             "--data-dir", str(c.root / "one")), single_class)
    add("search cifar10 missing dir", lambda c: c.search("--study", "n", "--dataset", "cifar10",
                                                         "--data-dir", str(c.root / "absent")))
    add("search --device unknown", lambda c: c.search("--study", "n", "--device", "nosuch"))
    add("search --device broken profile", lambda c: c.search("--study", "n", "--device", "broken"), broken_profile)
    add("search --device ../x", lambda c: c.search("--study", "n", "--device", "../x"))
    add("search --storage notaurl", lambda c: c.search("--study", "n", "--storage", "notaurl"))
    add("search --storage unreachable with password",
        lambda c: c.search("--study", "n", "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"))
    add("search --storage in a missing dir",
        lambda c: c.search("--study", "n", "--storage", f"sqlite:///{c.root / 'nowhere' / 'x.db'}"))
    add("search --storage random bytes", lambda c: c.search("--study", "n", "--storage", f"sqlite:///{c.root / 'other.db'}"),
        random_db)
    add("search --runs-dir is a file", lambda c: [*c.search("--study", "n"), "--runs-dir", str(c.root / "runsfile")],
        runs_is_a_file)
    add("search read-only --runs-dir", lambda c: c.search("--study", "n", "--trials", "1"),
        read_only(lambda c: c.runs), as_user=True)
    add("search --resume missing dir", lambda c: ["search", "--resume", str(c.root / "nope"), "--no-progress"])
    add("search --resume --trials below done", lambda c: ["search", "--resume", str(c.run), "--trials", "1", "--no-progress"])
    add("search --resume damaged db", lambda c: ["search", "--resume", str(c.run), "--no-progress"], damage_db)
    add("search --resume --budget-ms inf", lambda c: ["search", "--resume", str(c.run), "--budget-ms", "inf"])
    add("search --resume renamed run dir", lambda c: ["search", "--resume", str(c.runs / "best"), "--trials", "3",
                                                      "--no-progress"], rename_run, ok=True)
    for command in ("show", "report", "export"):
        add(f"{command} damaged db", lambda c, k=command: [k, str(c.run)], damage_db)
        add(f"{command} missing run dir", lambda c, k=command: [k, str(c.root / "nope")])
        add(f"{command} --storage another program's db",
            lambda c, k=command: [k, STUDY, "--storage", f"sqlite:///{c.root / 'other.db'}"], other_programs_db)
        add(f"{command} --storage password", lambda c, k=command: [k, STUDY, "--storage",
                                                                  f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"])
    for fmt in ("policy", "onnx", "torchscript", "state-dict", "nni", "csv"):
        add(f"export --format {fmt} -o study.db --force",
            lambda c, f=fmt: ["export", str(c.run), "--format", f, "-o", str(c.db), "--force"])
    add("export -o device profile --force", lambda c: ["export", str(c.run), "--format", "nni", "-o",
                                                       str(next((c.runs / "devices").glob("*.json"))), "--force"])
    add("export -o teacher cache --force", lambda c: ["export", str(c.run), "--format", "state-dict", "-o",
                                                      str(next((c.runs / "cache").glob("teacher-*.pt"))), "--force"])
    add("export -o trial weights --force", lambda c: ["export", str(c.run), "--format", "state-dict", "-o",
                                                      str(next((c.run / "weights").glob("*.pt"))), "--force"])
    add("export -o best_policy.json --force", lambda c: ["export", str(c.run), "-o", str(c.run / "best_policy.json"),
                                                         "--force"])
    add("export --trial 99", lambda c: ["export", str(c.run), "--trial", "99"])
    add("export --trial -1", lambda c: ["export", str(c.run), "--trial", "-1"])
    add("export --format zip", lambda c: ["export", str(c.run), "--format", "zip"])
    add("export into read-only run dir", lambda c: ["export", str(c.run)], read_only(lambda c: c.run), as_user=True)
    add("report --out study.db", lambda c: ["report", str(c.run), "--out", str(c.db), "--force"])
    add("report --out dir holding a study as pareto.png",
        lambda c: ["report", str(c.run), "--out", str(c.root / "rep"), "--force"],
        lambda c: ((c.root / "rep").mkdir(), shutil.copy(c.db, c.root / "rep" / "pareto.png")))
    add("calibrate --threads 0", lambda c: ["calibrate", "--device", "host", "--threads", "0", "--runs-dir", str(c.runs)])
    add("calibrate --networks 3", lambda c: ["calibrate", "--device", "host", "--networks", "3", "--runs-dir", str(c.runs)])
    add("calibrate --device ../x --export-pack", lambda c: ["calibrate", "--device", "../x", "--export-pack",
                                                            str(c.root / "pack"), "--runs-dir", str(c.runs)])
    add("calibrate --export-pack existing dir", lambda c: ["calibrate", "--device", "pi", "--export-pack", str(c.run),
                                                           "--space", str(c.space), "--runs-dir", str(c.runs)])
    add("calibrate --import missing csv", lambda c: ["calibrate", "--device", "pi", "--import", str(c.root / "no.csv"),
                                                     "--runs-dir", str(c.runs)])
    add("latency predict missing policy", lambda c: ["latency", "predict", str(c.root / "no.json"), "--runs-dir", str(c.runs)])
    add("latency predict policy with a layer missing", lambda c: ["latency", "predict", str(c.root / "edited.json"),
                                                                  "--runs-dir", str(c.runs)],
        edited_policy(lambda d: d["policy"].pop(sorted(d["policy"])[0])))
    add("latency predict policy outside its space", lambda c: ["latency", "predict", str(c.root / "edited.json"),
                                                               "--runs-dir", str(c.runs)],
        edited_policy(lambda d: d["arch"].update(stem_width=17)))
    add("latency validate --measure 0", lambda c: ["latency", "validate", "--measure", "0", "--runs-dir", str(c.runs)])
    add("supernet train --lr inf", lambda c: ["supernet", "train", "--lr", "inf", "--runs-dir", str(c.runs)])
    add("supernet train --steps 0", lambda c: ["supernet", "train", "--steps", "0", "--runs-dir", str(c.runs)])
    return out


# --- running and classing ---------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Hashes of the stored data under the runs directory: databases, profiles, caches, weights."""
    stored = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part in ("export", "report") for part in path.relative_to(root).parts):
            stored[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return stored


def without_write_override() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def writable_again(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        try:
            path.chmod(path.stat().st_mode | 0o200)
        except OSError:
            pass


def classify(case: Case, code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if PASSWORD in err:
        return "silently accepted"  # the password was echoed
    if case.ok:
        return "accepted as it must" if code == 0 else "unclear"
    if code == 0:
        return "silently accepted"
    if code == 2 and len(lines) == 1:
        return "clear error"
    return "unclear"


def run_case(case: Case, base: Path, space: Path, *, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="autoc-sweep-") as tmp:
        ctx = Ctx(root=Path(tmp), space=space)
        shutil.copytree(base, ctx.runs)
        if case.setup is not None:
            case.setup(ctx)
        before = snapshot(ctx.runs)
        command = [*(without_write_override() if case.as_user else []), sys.executable, "-m", "autoc.cli",
                   *case.argv(ctx)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            code, err = done.returncode, done.stderr
        except subprocess.TimeoutExpired:
            code, err = -1, f"timed out after {timeout:.0f} s"
        seconds = time.perf_counter() - start
        writable_again(ctx.root)
        after = snapshot(ctx.runs)
        # stored data: what was there before may not change (new files of an accepted run may appear)
        changed = any(after.get(name) != digest for name, digest in before.items()
                      if not (case.ok and name.startswith("best/")))
        kind = classify(case, code, err)
        return {"case": case.name, "class": kind, "exit": code, "stored_changed": changed,
                "seconds": round(seconds, 1), "stderr_tail": err.strip()[-400:]}


def build_base(root: Path, space: Path, *, warm: Path | None) -> Path:
    runs = root / "runs"
    if warm is not None:
        for folder in ("devices", "cache"):
            if (warm / folder).is_dir():
                shutil.copytree(warm / folder, runs / folder)
    done = subprocess.run([sys.executable, "-m", "autoc.cli", "search", "--budget-ms", "50", "--space", str(space),
                           "--runs-dir", str(runs), "--study", STUDY, "--trials", "2", *TINY],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"the base search failed:\n{done.stderr[-3000:]}")
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    parser.add_argument("--limit", type=int, default=None, help="run at most this many cases")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--warm-runs", type=Path, default=None,
                        help="a runs directory whose devices/ and cache/ the base run reuses (skips calibration)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the result record is written")
    args = parser.parse_args()

    selected = [c for c in cases() if args.only is None or args.only in c.name][: args.limit]
    results = []
    with tempfile.TemporaryDirectory(prefix="autoc-sweep-base-") as tmp:
        space = Path(tmp) / "tiny.yaml"
        space.write_text(TINY_SPACE)
        base = build_base(Path(tmp), space, warm=args.warm_runs)
        for i, case in enumerate(selected, 1):
            result = run_case(case, base, space, timeout=args.timeout)
            results.append(result)
            print(f"[{i}/{len(selected)}] {result['class']:<19} {'STORED CHANGED ' if result['stored_changed'] else ''}"
                  f"{case.name} ({result['seconds']} s)", flush=True)

    counts = {
        "tried": len(results),
        "clear errors": sum(r["class"] == "clear error" for r in results),
        "accepted as they must be": sum(r["class"] == "accepted as it must" for r in results),
        "tracebacks": sum(r["class"] == "traceback" for r in results),
        "silently accepted": sum(r["class"] == "silently accepted" for r in results),
        "unclear": sum(r["class"] == "unclear" for r in results),
        "stored data changed": sum(r["stored_changed"] for r in results),
    }
    print("; ".join(f"{k}: {v}" for k, v in counts.items()))
    whole = args.only is None and args.limit is None  # a subset records apart, never over the whole sweep's figure
    record_result("robustness.bad_input_sweep", "all" if whole else f"only-{args.only or 'any'}-limit-{args.limit}",
                  title="Does bad input get a one-line error and leave stored data alone?"
                        + ("" if whole else f" (subset: {len(results)} cases)"), figures=counts,
                  results_dir=args.results_dir, goal="0 tracebacks, 0 silently accepted, 0 stored data changed",
                  cases=results)
    return 0 if counts["tracebacks"] == counts["silently accepted"] == counts["stored data changed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
