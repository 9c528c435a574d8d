"""Do training-free (zero-cost) proxies rank candidates like the reference recipe does?

Every candidate already trained by the reference recipe (the reference cache, same data and
recipe) is scored at initialisation by several proxies from the literature, each computed
on the candidate's pruned network (random init, float) with one training minibatch:

- ``macs``, ``params``: size alone;
- ``naswot``: log-determinant of the activation-pattern kernel (Mellor et al. 2021);
- ``synflow``: sum |theta * dR/dtheta| of the linearised network on an all-ones input (Tanaka et al. 2020);
- ``grad_norm``, ``snip``: gradient norm, sum |theta * dL/dtheta| on a labelled minibatch (Abdelfattah et al. 2021);
- ``tse``: the sum of the first ``--tse-steps`` training losses of the reference recipe
  itself, negated (training-speed estimation, Ru et al. 2021) — costs those steps.

It prints each proxy's Kendall tau against the reference accuracy over all cached
candidates, and its median cost per candidate.

    python -m benchmarks.estimate.proxy_ranking --data ../shared/data/cifar10-jpeg.zip --max-train 10000 \\
        --max-val 2500 --proper-steps 900 --proper-augment
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoc.arch.builder import build_model
from autoc.candidate import Candidate
from autoc.evaluate.metrics import spec_macs
from autoc.training.loop import train
from autoc.latency.validate import kendall_tau
from autoc.space import load_space

from benchmarks.common import (add_common_args, add_recipe_args, cached_references, config_key, load_data,
                               parameter_count, record_result, reference_cache, reference_recipe, write_json)


def fresh_model(candidate: Candidate, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(candidate.netspec())


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: codes.append((out > 0).flatten(1).float()))
             for m in model.modules() if isinstance(m, (nn.ReLU6, nn.ReLU))]
    model.eval()
    with torch.no_grad():
        model(images)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, dim=1).double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(kernel)[1])


def synflow(model: nn.Module, shape: tuple[int, ...]) -> float:
    model = model.double().eval()
    signs = {}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            signs[name] = torch.sign(p)
            p.abs_()
    model.zero_grad()
    model(torch.ones(1, *shape[1:], dtype=torch.float64)).sum().backward()
    score = sum(float((p * p.grad).detach().abs().sum()) for p in model.parameters() if p.grad is not None)
    return float(np.log(score + 1e-30))


def gradient_scores(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    grads = [(p, p.grad) for p in model.parameters() if p.grad is not None]
    grad_norm = sum(float(g.norm()) for _, g in grads)
    snip = sum(float((p.detach() * g).abs().sum()) for p, g in grads)
    return grad_norm, snip


def training_losses(candidate: Candidate, data, *, recipe, steps: int) -> list[float]:
    """The first ``steps`` training losses of the reference run itself (same seed, same batches)."""
    torch.manual_seed(recipe.seed)
    model = build_model(candidate.netspec())
    losses: list[float] = []
    train(model, data.train_x, data.train_y, config=recipe, stop_after=steps, on_step=lambda _s, loss: losses.append(loss))
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    add_recipe_args(parser, default_steps=900)
    parser.add_argument("--batch", type=int, default=64, help="minibatch of the data-dependent proxies")
    parser.add_argument("--inits", type=int, default=3, help="random initialisations averaged per proxy")
    parser.add_argument("--tse-steps", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/proxy_ranking.json"))
    args = parser.parse_args()
    space = load_space(args.space)
    data = load_data(args, space)
    recipe = reference_recipe(args)
    rows = cached_references(reference_cache(args), data_fingerprint=data.fingerprint, recipe=dataclasses.asdict(recipe))
    if len(rows) < 3:
        print(f"only {len(rows)} cached references match this data and recipe; train some first (estimate.ranking_fidelity)")
        return 1
    generator = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(data.train_x.shape[0], generator=generator)[: args.batch]
    images, labels = data.train_x[pick].contiguous(), data.train_y[pick]
    scores: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}

    def record(name: str, value: float, seconds: float) -> None:
        scores.setdefault(name, []).append(value)
        costs.setdefault(name, []).append(seconds)

    for n, (candidate, acc) in enumerate(rows):
        spec = candidate.netspec()
        record("macs", float(spec_macs(spec)), 0.0)
        record("params", float(parameter_count(candidate)), 0.0)
        for names, fn in (
            (("naswot",), lambda m: (naswot(m, images),)),
            (("synflow",), lambda m: (synflow(m, tuple(images.shape)),)),
            (("grad_norm", "snip"), lambda m: gradient_scores(m, images, labels)),  # one backward pass for both
        ):
            start = time.perf_counter()
            per_init = [fn(fresh_model(candidate, seed)) for seed in range(args.inits)]
            seconds = (time.perf_counter() - start) / args.inits
            for i, name in enumerate(names):
                record(name, statistics.fmean(values[i] for values in per_init), seconds)
        if args.tse_steps:
            start = time.perf_counter()
            losses = training_losses(candidate, data, recipe=recipe, steps=max(args.tse_steps))
            per_step = (time.perf_counter() - start) / len(losses)
            for steps in args.tse_steps:  # one run: each TSE is a prefix of it, costed by its steps
                record(f"tse{steps}", -sum(losses[:steps]), per_step * steps)
        print(f"{n + 1}/{len(rows)} acc {acc:.4f} " + " ".join(f"{k} {v[-1]:.4g}" for k, v in scores.items()), flush=True)

    accuracy = [acc for _, acc in rows]
    print(f"\n{len(rows)} cached references (accuracy {min(accuracy):.3f}-{max(accuracy):.3f})")
    summary = {}
    for name, values in scores.items():
        tau = kendall_tau(values, accuracy)
        summary[name] = {"kendall_tau": tau, "seconds_median": statistics.median(costs[name])}
        print(f"  {name:10s} tau {tau:+.3f}   {statistics.median(costs[name]):.2f} s per candidate")
    write_json(args.out, {"summary": summary, "accuracy": accuracy, "scores": scores,
                          "candidates": [c.to_dict() for c, _ in rows]})
    record_result("estimate.proxy_ranking", config_key(args),
                  title=f"Training-free proxies vs the reference recipe over {len(rows)} trained networks",
                  figures={f"{name} (Kendall tau)": s["kendall_tau"] for name, s in summary.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
