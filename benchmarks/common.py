"""The one helper module of the benchmarks: data, supernet, candidate spreads, reference recipe and cache,
the MobileNetV2 baselines, and the result record every benchmark writes (``record_result``)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from autoc.arch.builder import build_model
from autoc.arch.config import BlockOp
from autoc.candidate import Candidate
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.training.compute import training_device
from autoc.data.datasets import DatasetSplit, load_dataset, resized
from autoc.evaluate.estimate import EstimateConfig, build_from_supernet
from autoc.evaluate.metrics import size_bytes, spec_macs
from autoc.evaluate.recipe import REFERENCE_FORMAT, reference_accuracy, scratch_recipe
from autoc.training.loop import TrainConfig, predict_logits, recalibrate_batchnorm
from autoc.latency.profile import cpu_model
from autoc.latency.validate import kendall_tau
from autoc.space import SearchSpace
from autoc.supernet import SupernetConfig, open_supernet, random_candidate

from benchmarks import RESULTS

BENCHMARKS = Path(__file__).resolve().parent
RESULT_SCHEMA = "autoc.benchmark-result/1"

# Reference trainings cost minutes each on a CPU; the ones behind the results pages are kept here.
COMMITTED_REFERENCES = BENCHMARKS / "reference-cache"


def add_common_args(parser) -> None:
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (needs --data) or digits (bundled)")
    parser.add_argument("--data", default=None, help="CIFAR-10 JPEG zip, extracted folder or cifar-10-batches-py")
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--max-val", type=int, default=500)
    parser.add_argument("--supernet-steps", type=int, default=60)
    parser.add_argument("--random-subnets", type=int, default=1)
    parser.add_argument("--supernet-largest-steps", type=int, default=0,
                        help="train the largest network alone this many steps before the sandwich steps")
    parser.add_argument("--supernet-lr", type=float, default=0.05, help="peak lr of the sandwich steps")
    parser.add_argument("--supernet-augment", action="store_true", help="random crop and flip in supernet training")
    parser.add_argument("--supernet-sort-channels", action="store_true",
                        help="reorder channels by importance after the largest-only steps")
    parser.add_argument("--supernet-progressive", action="store_true",
                        help="progressive shrinking: kernel, then depth, expansion, width elastic")
    parser.add_argument("--supernet-final-phase-share", type=float, default=None,
                        help="with --supernet-progressive: the all-elastic phase's share of the steps")
    parser.add_argument("--supernet-sampling", default="sandwich", choices=("sandwich", "uniform"),
                        help="uniform: each step trains random sub-networks only, on the labels (SPOS)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet-seed", type=int, default=None,
                        help="the supernet's training seed (default --seed, which also draws the data slices)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--train-device", default="cpu",
                        help="where reference and supernet training steps run: cpu, cuda, cuda:N or auto")


def add_max_eval_arg(parser) -> None:
    parser.add_argument("--max-eval", type=int, default=EstimateConfig().max_eval,
                        help="held-out images each estimate is scored on (0: all of them; figures transcribed as "
                             "measured at 256 images used the then-default)")


def estimate_config(args, **options) -> EstimateConfig:
    """The estimate of ``--max-eval`` images (0: all) and ``--seed``; ``options`` set the rest."""
    return EstimateConfig(seed=args.seed, max_eval=args.max_eval or None, **options)


def at_least_one(text: str) -> int:
    """argparse type of a count of recipe seeds: 0 would leave a comparison without seed 0's accuracies."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (recipe seeds per network), got {value}")
    return value


def seed_accuracies(candidate: Candidate, data: DatasetSplit, *, recipe: TrainConfig, cache: Path, seeds: int,
                    device=None, train_missing: bool = True) -> list[float | None]:
    """Held-out accuracies of ``candidate`` trained by ``recipe`` at seeds recipe.seed .. + seeds-1 (cached ones read;
    with ``train_missing=False`` a seed not in the cache is None)."""
    results = [reference_accuracy(candidate, data, config=dataclasses.replace(recipe, seed=recipe.seed + s),
                                  cache_dir=cache, train_missing=train_missing, device=device) for s in range(seeds)]
    return [None if r is None else r.accuracy for r in results]


def train_device(args) -> torch.device:
    return training_device(args.train_device)


def add_latency_dump_args(parser) -> None:
    """The sampled networks and timing rounds of the latency dump benchmarks (same defaults as calibration's
    benchmark, benchmarks.latency.accuracy: 40 fitting + 100 held-out mbv2-cifar networks of seed 2026)."""
    parser.add_argument("--space", default="mbv2-cifar")
    parser.add_argument("--fit", type=int, default=40)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)


def add_recipe_args(parser, *, default_steps: int) -> None:
    """The reference recipe every compared model is trained by (see autoc.evaluate.recipe)."""
    parser.add_argument("--proper-steps", type=int, default=default_steps, help="SGD steps of batch 32, lr 0.05 cosine")
    parser.add_argument("--proper-augment", action=argparse.BooleanOptionalAction, default=False,
                        help="random crop and flip in the reference recipe (CIFAR-10; not for digits)")
    parser.add_argument("--reference-cache", type=Path, default=COMMITTED_REFERENCES,
                        help="where reference results are kept (default: the ones behind the results pages, "
                             "kept in the repository so the figures can be re-checked without retraining)")


def reference_recipe(args) -> TrainConfig:
    return scratch_recipe(steps=args.proper_steps, seed=args.seed, augment=args.proper_augment)


def reference_cache(args) -> Path:
    return args.reference_cache


def load_data(args, space: SearchSpace) -> DatasetSplit:
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, data_dir=args.data, input_size=space.input_size, seed=args.seed,
                        max_train=args.max_train, max_val=args.max_val, max_selection=getattr(args, "selection", None))
    # Channels-last inputs keep every conv in that layout, where CPU depthwise backward is ~4x faster.
    names = ("train_x", "val_x") + (("selection_x",) if data.selection_x is not None else ())
    return dataclasses.replace(data, **{name: getattr(data, name).contiguous(memory_format=torch.channels_last)
                                        for name in names})


def trained_supernet(args, space: SearchSpace, data: DatasetSplit):
    config = SupernetConfig(steps=args.supernet_steps, random_subnets=args.random_subnets,
                            seed=args.seed if args.supernet_seed is None else args.supernet_seed,
                            lr=args.supernet_lr, largest_steps=args.supernet_largest_steps,
                            augment=args.supernet_augment, sort_channels=args.supernet_sort_channels,
                            progressive=args.supernet_progressive,
                            final_phase_share=args.supernet_final_phase_share, sampling=args.supernet_sampling)
    run = open_supernet(space, data, cache_dir=args.runs_dir / "cache", config=config, progress=True,
                        device=train_device(args))
    return run, config


def spread_by_macs(space: SearchSpace, count: int, *, num_classes: int, seed: int, pool: int = 400) -> list[Candidate]:
    """``count`` random candidates at evenly spaced quantiles of the MAC range of a random pool."""
    rng = random.Random(seed)
    sampled = sorted((random_candidate(space, rng, num_classes=num_classes) for _ in range(pool)),
                     key=lambda c: spec_macs(c.netspec()))
    picks = [round(i * (len(sampled) - 1) / (count - 1)) for i in range(count)]
    return [sampled[i] for i in picks]


def candidate_key(candidate: Candidate) -> str:
    """One string per candidate, to match candidates across benchmark outputs and the reference cache."""
    return json.dumps(candidate.to_dict(), sort_keys=True)


def parameter_count(candidate: Candidate) -> int:
    """Parameters of the candidate's pruned network (the size proxy the accuracy benchmarks compare with)."""
    return sum(p.numel() for p in build_model(candidate.netspec()).parameters())


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` of a ``--shard`` option: this process takes every N-th item from the K-th."""
    shard, shards = (int(part) for part in text.split("/"))
    return shard, shards


def interleaved(count: int) -> list[int]:
    """0..count-1 in an order whose every prefix spans the range (ends first, then midpoints),
    so a run cut short still covers the whole range."""
    order, seen = [], set()
    step = count - 1
    while step >= 1 and len(order) < count:
        for i in range(0, count, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
        step //= 2
    return order + [i for i in range(count) if i not in seen]


def machine_identity() -> dict:
    """What a benchmark result records of the machine it was measured on."""
    return {"node": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bench-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def command_line() -> str:
    """The command that runs this benchmark again, as typed from the repository root."""
    module = sys.modules["__main__"].__spec__
    runner = f"python -m {module.name}" if module is not None else f"python {Path(sys.argv[0]).as_posix()}"
    return " ".join([runner, *map(shlex.quote, sys.argv[1:])])


def result_path(benchmark: str, key: str, *, results_dir: Path = RESULTS) -> Path:
    """One file per benchmark and dataset/configuration: a re-run overwrites its own figure and no other."""
    safe_key = "".join(c if c.isalnum() or c in "-_." else "-" for c in key)
    return results_dir / f"{benchmark}--{safe_key}.json"


# Options that change where or how fast a benchmark runs, not which figure it measures.
NOT_CONFIG = frozenset({"threads", "runs_dir", "out", "train_device", "reference_cache", "shard", "merge", "label"})


def config_key(args, *, extra: str = "") -> str:
    """The dataset and a digest of the options that define a benchmark's figure: a re-run with the same
    options overwrites its own result record, one with other options writes its own."""
    options = {k: str(v) for k, v in sorted(vars(args).items()) if k not in NOT_CONFIG}
    digest = hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    dataset = getattr(args, "dataset", None)
    sizes = "".join(f"-{name}{getattr(args, name)}" for name in ("max_train", "max_val")
                    if getattr(args, name, None) is not None)
    return "-".join(part for part in (dataset, extra) if part) + sizes + f"-{digest}"


def record_result(benchmark: str, key: str, *, title: str, figures: dict, results_dir: Path = RESULTS,
                  complete: bool = True, **detail) -> Path:
    """Write one benchmark's figures with the machine, date and command (``benchmark``: its module under
    benchmarks, e.g. "estimate.seeds"; ``key``: the dataset/configuration the figures belong to; ``detail``:
    anything else worth keeping, e.g. per-candidate values). The results pages are rendered from these."""
    path = result_path(benchmark, key, results_dir=results_dir)
    write_json(path, {"schema": RESULT_SCHEMA, "benchmark": benchmark, "key": key, "title": title,
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "machine": machine_identity(), "command": command_line(), "complete": complete,
                      "figures": figures, **detail})
    print(f"wrote {path}")
    return path


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# MobileNetV2 width-multiplier baselines (benchmarks.search.baselines trains them; search.quality and
# search.space_vs_baselines compare with them).
MULTIPLIERS = (0.35, 0.5, 0.75, 1.0)
# The search-quality comparisons' budgets: these baselines' predicted latencies.
BUDGET_BASELINES = ("MobileNetV2-0.5 fp32", "MobileNetV2-0.75 fp32", "MobileNetV2-1 fp32")
BASELINES_SCHEMA = "autoc.baselines/1"


def mobilenet_v2(space: SearchSpace, *, multiplier: float, int8: bool, num_classes: int) -> Candidate:
    largest = space.largest_arch(num_classes=num_classes)
    stages = tuple(
        replace(stage, ops=tuple(BlockOp(kernel=3, expansion=1 if s == 0 else 6) for _ in stage.ops))
        for s, stage in enumerate(largest.stages)
    )
    arch = replace(largest, stages=stages)
    quant = {"precision": "int8", "weight_bits": 8, "act_bits": 8} if int8 else {}
    layer = LayerPolicy(keep_ratio=multiplier, **quant)
    names = Candidate(arch, CompressionPolicy()).full_netspec().layer_names()
    return Candidate(arch, CompressionPolicy.from_mapping({name: layer for name in names}))


def baseline_family(space: SearchSpace, *, num_classes: int) -> list[tuple[str, Candidate]]:
    return [
        (f"MobileNetV2-{m:g} {'int8' if int8 else 'fp32'}", mobilenet_v2(space, multiplier=m, int8=int8,
                                                                         num_classes=num_classes))
        for m in MULTIPLIERS for int8 in (False, True)
    ]


def train_baselines(space, data, latency, *, recipe: TrainConfig, cache_dir: Path | None,
                    selection: DatasetSplit | None = None, log=print, shard: tuple[int, int] = (0, 1),
                    device: torch.device | None = None, seeds: int = 1) -> list[dict]:
    """Each baseline's held-out accuracy, and its accuracy on ``selection`` when given (the split
    a comparison chooses the best baseline on, as the search chooses its finalist). ``shard``
    (K, N): only every N-th baseline from the K-th (processes sharing the cache). ``seeds``:
    recipe seeds from the recipe's on, trained seed by seed across the family (a run cut short leaves
    equal counts); "accuracy" stays seed 0's, "seed_accuracies" holds them all."""
    family = baseline_family(space, num_classes=data.num_classes)[shard[0]::shard[1]]
    rows = [{"name": name, "latency_ms": latency.predict(c.netspec(), c.policy),
             "size_bytes": size_bytes(c.netspec(), c.policy), "seed_accuracies": [],
             "seed_selection_accuracies": []} for name, c in family]
    for seed in range(seeds):
        for row, (name, candidate) in zip(rows, family):
            trained = reference_accuracy(candidate, data, config=replace(recipe, seed=recipe.seed + seed),
                                         cache_dir=cache_dir, selection=selection, device=device)
            row["seed_accuracies"].append(trained.accuracy)
            chosen_on = ""
            if trained.selection_accuracy is not None:
                row["seed_selection_accuracies"].append(trained.selection_accuracy)
                chosen_on = f"  selection {trained.selection_accuracy:.4f}"
            if seed == 0:
                row["accuracy"], row["train_seconds"] = trained.accuracy, trained.seconds
                if trained.selection_accuracy is not None:
                    row["selection_accuracy"] = trained.selection_accuracy
            log(f"{name:<24} seed {recipe.seed + seed} accuracy {trained.accuracy:.4f}{chosen_on}  "
                f"{row['latency_ms']:.3f} ms  {row['size_bytes'] / 1024:.0f} kB  "
                f"({trained.seconds:.0f} s{', cached' if trained.cached else ''})", flush=True)
    return rows


def write_baselines(path: Path, rows: list[dict], *, recipe: TrainConfig) -> Path:
    """``recipe`` is recorded so a comparison can check its own models were trained the same way."""
    keep = ("name", "accuracy", "selection_accuracy", "latency_ms", "size_bytes", "seed_accuracies",
            "seed_selection_accuracies")
    write_json(path, {"schema": BASELINES_SCHEMA, "recipe": dataclasses.asdict(recipe),
                      "baselines": [{k: row[k] for k in keep if k in row} for row in rows]})
    return path


def expected_accuracies(observed, *, noise: float) -> np.ndarray:
    """``observed`` shrunk toward its mean to the spread left after removing its own noise (stdev ``noise``):
    a stand-in for the candidates' expected accuracies in the ceiling simulations."""
    x = np.asarray(observed)
    true_var = max(x.var() - noise**2, 0.0)
    return x.mean() + (x - x.mean()) * (true_var / x.var()) ** 0.5 if x.var() > 0 else x


def ranking_ceiling(observed: list[float], *, noise: float, draws: int = 2000) -> dict[str, float]:
    """Expected Kendall tau of the truth, and of a second run, against one run with seed noise ``noise``."""
    x = np.asarray(observed)
    truth = expected_accuracies(x, noise=noise)
    rng = np.random.default_rng(0)
    perfect, two_runs = [], []
    for _ in range(draws):
        run_a, run_b = truth + rng.normal(0, noise, len(x)), truth + rng.normal(0, noise, len(x))
        perfect.append(kendall_tau(truth, run_a))
        two_runs.append(kendall_tau(run_a, run_b))
    return {"perfect": float(np.mean(perfect)), "two_runs": float(np.mean(two_runs))}


def correct_per_image(candidate, supernet, data, *, calibration_batches: int) -> torch.Tensor:
    """Bool per held-out image: the inherited, recalibrated sub-network's top-1 is right (at its resolution)."""
    data = resized(data, candidate.arch.input_size)
    model = build_from_supernet(candidate, supernet=supernet)
    recalibrate_batchnorm(model, data.train_x, batches=calibration_batches)
    model.eval()
    with torch.inference_mode():
        return predict_logits(model, data.val_x).argmax(1) == data.val_y


def seed_means(args, data, candidates: list[Candidate]) -> dict[str, float]:
    """Each candidate's accuracy averaged over every recipe seed the cache holds for it (seed 0 at least)."""
    recipe = reference_recipe(args)
    by_key: dict[str, list[float]] = {candidate_key(c): [] for c in candidates}
    for seed in range(args.max_seeds):
        rows = cached_references(reference_cache(args), data_fingerprint=data.fingerprint,
                                 recipe=dataclasses.asdict(dataclasses.replace(recipe, seed=seed)))
        for candidate, accuracy in rows:
            if candidate_key(candidate) in by_key:
                by_key[candidate_key(candidate)].append(accuracy)
    return {k: statistics.mean(v) for k, v in by_key.items()}


@dataclasses.dataclass(frozen=True)
class TrainedNetwork:
    """One network the reference recipe has trained: its seed-0 accuracy and the mean of its cached seeds."""

    candidate: Candidate
    accuracy: float
    mean_accuracy: float
    in_spread: bool  # one of the ranking benchmark's 20 candidates


def add_trained_networks_args(parser) -> None:
    parser.add_argument("--max-seeds", type=int, default=8, help="recipe seeds looked up in the cache per network")


def trained_networks(args, space, data) -> list[TrainedNetwork]:
    """Every network in the reference cache trained by this recipe on this data (seed 0 at least)."""
    references = cached_references(reference_cache(args), data_fingerprint=data.fingerprint,
                                   recipe=dataclasses.asdict(reference_recipe(args)))
    if len(references) < 4:
        raise SystemExit(f"{len(references)} networks trained by this recipe in {reference_cache(args)}; "
                         "train the ranking spread first (estimate.ranking_fidelity --reference-only)")
    means = seed_means(args, data, [c for c, _ in references])
    spread = {candidate_key(c) for c in spread_by_macs(space, 20, num_classes=data.num_classes, seed=args.seed)}
    return [TrainedNetwork(c, accuracy, means[candidate_key(c)], candidate_key(c) in spread)
            for c, accuracy in references]


def cached_entries(cache_dir: Path, *, data_fingerprint: str) -> list[dict]:
    """Every reference result cached for this data, whatever its recipe."""
    entries = (json.loads(path.read_text()) for path in sorted(cache_dir.glob("reference-*.json")))
    return [e for e in entries if e.get("format") == REFERENCE_FORMAT and e["data"] == data_fingerprint]


def cached_references(cache_dir: Path, *, data_fingerprint: str, recipe: dict) -> list[tuple[Candidate, float]]:
    return [(Candidate.from_dict(e["candidate"]), float(e["accuracy"]))
            for e in cached_entries(cache_dir, data_fingerprint=data_fingerprint) if e["recipe"] == recipe]
