"""How steady is an estimate whose block weights are distilled block by block from the teacher?

An experiment toward issue 30 on spaces that choose an op per block (``fbnet-cifar``), not a
product path: the search's teacher path inherits each candidate's blocks from the teacher's
(largest) blocks, which fits badly where the op differs (a stage's first ``skip`` is a 1x1 conv
the teacher lacks). Here an *op bank* holds, for every op of the space, a network of that op at
every block, inherited from the teacher and then trained block-wise (as in DNA, Li et al. 2020):
each block, fed the teacher's input to that block, regresses the teacher's output of it (mean
squared error over the target's variance; Adam). A candidate takes each block from the bank of
its op, the stem, head and classifier from the teacher; then BatchNorm is re-estimated and, with
``--finetune-steps``, it is fine-tuned with KD as the search does. Same candidates, seeds and
figures as ``benchmarks.estimate.seeds``:

    python -m benchmarks.estimate.op_bank --space fbnet-cifar --seeds 3 --candidates 8 --bank-steps 40
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn import functional as F

from autoc.arch.builder import AutocNet
from autoc.candidate import Candidate
from autoc.evaluate.estimate import build_candidate_model, estimate_accuracy
from autoc.search.context import build_objective_context, load_inputs
from autoc.search.options import SearchOptions, StorageOptions, WorkerOptions
from autoc.space import SearchSpace, parameter_plan
from autoc.space.assemble import assemble
from autoc.supernet.subnets import extreme_choices

from benchmarks.common import RESULTS, spread_by_macs
from benchmarks.estimate.seeds import write_result

NOTE = ("Not the search's estimate: each candidate's blocks come from per-op networks distilled block-wise from "
        "the teacher (see the benchmark's docstring), then BatchNorm is re-estimated (and KD fine-tuned where the "
        "title says so). Same candidates, seeds and figures as the search's own estimate above: per-candidate "
        "spread over the seeds, spread between candidates' means, Kendall tau between two seeds' estimates.")


def uniform_candidates(space: SearchSpace, *, num_classes: int) -> dict[str, Candidate]:
    """Per op name of the space: the largest network with that op at every block that offers it."""
    plan = parameter_plan(space)
    base = extreme_choices(space, largest=True)
    ops = sorted({str(op) for p in plan if p.kind == "op" for op in p.choices})
    return {op: assemble(space, {**base, **{p.name: op for p in plan if p.kind == "op" and op in map(str, p.choices)}},
                         num_classes=num_classes) for op in ops}


def blocks(model: AutocNet) -> list[torch.nn.Module]:
    return [block for stage in model.stages for block in stage]


def train_op_bank(teacher: AutocNet, uniform: dict[str, Candidate], train_x: torch.Tensor, *, steps: int,
                  lr: float, batch_size: int, seed: int) -> dict[str, AutocNet]:
    """The bank: per op, its uniform network inherited from ``teacher`` and trained block-wise on
    the teacher's block inputs and outputs."""
    bank = {op: build_candidate_model(candidate, source=teacher) for op, candidate in uniform.items()}
    optimizer = torch.optim.Adam([p for net in bank.values() for p in net.parameters()], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    teacher.eval()
    start = time.perf_counter()
    for step in range(steps):
        x = train_x[torch.randint(len(train_x), (batch_size,), generator=generator)]
        with torch.no_grad():  # the teacher's (input, output) of every block
            pairs, h = [], teacher.stem(x)
            for block in blocks(teacher):
                out = block(h)
                pairs.append((h, out))
                h = out
        loss = torch.zeros(())
        for net in bank.values():
            net.train()
            for block, (h_in, h_out) in zip(blocks(net), pairs):
                if any(True for _ in block.parameters()):  # an identity skip has nothing to learn
                    loss = loss + F.mse_loss(block(h_in), h_out) / (h_out.var() + 1e-6)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0 or step == steps - 1:
            print(f"  bank step {step + 1}/{steps}: loss {float(loss.detach()):.2f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return bank


def from_bank(candidate: Candidate, *, teacher: AutocNet, bank: dict[str, AutocNet]) -> AutocNet:
    """The candidate's model: stem, head, classifier (and any block whose op has no bank) from the
    teacher, every other block's weights from the bank network of its op."""
    model = build_candidate_model(candidate, source=teacher)
    stage_ops = [op.name for stage in candidate.arch.stages for op in stage.ops]
    for index, (block, op) in enumerate(zip(blocks(model), stage_ops)):
        source = bank.get(op)
        if source is None:
            continue
        own = block.state_dict()
        donor = blocks(source)[index].state_dict()
        own.update({k: v for k, v in donor.items() if k in own and own[k].shape == v.shape})
        block.load_state_dict(own)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SearchOptions(budget_ms=1.0)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data", default=None)
    parser.add_argument("--space", default="fbnet-cifar")
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-val", type=int, default=None)
    parser.add_argument("--teacher-steps", type=int, default=defaults.teacher_steps)
    parser.add_argument("--bank-steps", type=int, default=40)
    parser.add_argument("--bank-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-steps", type=int, default=0, help="KD steps after inheriting (0: none)")
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="data split and candidate draw")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--label", default="op-bank")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()

    options = SearchOptions(budget_ms=1.0, space=args.space, device="host", dataset=args.dataset, data_dir=args.data,
                            max_train=args.max_train, max_val=args.max_val, teacher_steps=args.teacher_steps,
                            finetune_steps=args.finetune_steps, seed=args.seed, progress=False,
                            storage=StorageOptions(runs_dir=args.runs_dir, study="estimate-op-bank"),
                            workers=WorkerOptions(cpus=args.threads))
    inputs = load_inputs(options)
    data = inputs.data
    candidates = spread_by_macs(inputs.space, args.candidates, num_classes=data.num_classes, seed=args.seed)
    uniform = uniform_candidates(inputs.space, num_classes=data.num_classes)
    recipe = (f"teacher {args.teacher_steps} steps, op bank {args.bank_steps} block-wise steps, "
              f"{args.finetune_steps} KD steps")
    estimates, seconds, contexts = [], [], []
    for seed in range(args.seeds):
        start = time.perf_counter()
        ctx = build_objective_context(options, inputs=inputs, threads=args.threads, training_seed=seed)
        bank = train_op_bank(ctx.teacher, uniform, data.train_x, steps=args.bank_steps, lr=args.bank_lr,
                             batch_size=options.batch_size, seed=seed)
        contexts.append({"seed": seed, "teacher_accuracy": ctx.teacher_accuracy,
                         "seconds": time.perf_counter() - start})
        row = []
        for n, candidate in enumerate(candidates):
            model = from_bank(candidate, teacher=ctx.teacher, bank=bank)
            estimate = estimate_accuracy(model, train_x=data.train_x, train_y=data.train_y, val_x=data.val_x,
                                         val_y=data.val_y, teacher_logits=ctx.teacher_logits,
                                         config=replace(ctx.finetune, seed=seed + n),
                                         calibration_batches=args.calibration_batches)
            row.append(estimate.accuracy)
            seconds.append(estimate.seconds)
        estimates.append(row)
        print(f"seed {seed}: teacher {ctx.teacher_accuracy:.4f}, teacher + bank {contexts[-1]['seconds']:.0f} s; "
              "estimates " + " ".join(f"{a:.3f}" for a in row), flush=True)
        if 1 < len(estimates):
            write_result(args, options=options, inputs=inputs, candidates=candidates, estimates=estimates,
                         seconds=seconds, contexts=contexts, final=len(estimates) == args.seeds, recipe=recipe,
                         benchmark="estimate.op_bank", note=NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
