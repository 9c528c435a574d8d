"""`autoc compress` against uniform baselines on a user's trained torchvision model.

The "user's model" is a torchvision network (num_classes=10) trained here by one fixed recipe on a
CIFAR-10 slice (nothing is downloaded). The budgets are fractions of its measured fp32 latency on
this host. Per budget, each method's model is fine-tuned by the same distillation recipe and step
count from the original, exported to ONNX and scored on the held-out images in torch and in ONNX
Runtime; its latency is that program's, timed as `autoc export` times one (two interleaved
sessions, their spread kept):

- autoc: the policy `autoc compress` chooses (keep ratio per channel group, fp32/int8 per conv);
- uniform int8: every conv int8, nothing pruned (whatever its latency);
- uniform L1: one keep ratio for every group, the largest whose measured latency fits (and int8
  everywhere where that fits a larger ratio);
- Torch-Pruning global: global group-magnitude pruning, ratio raised until the measured latency fits.

Every method rounds its channel counts to the multiple autoc's table found (this host runs counts
between multiples of 16 up to 2.5x slower), so no baseline pays for an unlucky count.

    python -m benchmarks.compress.user_models --model resnet18 --data ../shared/data/cifar10-jpeg.zip
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch_pruning as tp

from autoc.arch.policy import LayerPolicy
from autoc.data.datasets import load_dataset
from autoc.latency.check import measure_exported
from autoc.modelspace import ModelPolicy, analyse, load_model
from autoc.modelspace.driver import CompressOptions, run_compress
from autoc.modelspace.estimate import estimate_policy, original_logits
from autoc.modelspace.export import export_compressed, onnx_accuracy
from autoc.modelspace.latency import LayerTable, model_layers, network_program, policy_layers
from autoc.modelspace.policy_file import load_model_policy
from autoc.onnx.export import export_onnx
from autoc.training.loop import TrainConfig, accuracy, recalibrate_batchnorm, train

from benchmarks import RESULTS
from benchmarks.common import config_key, record_result

METHODS = ("autoc", "uniform int8", "uniform L1", "Torch-Pruning global")
INT8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)
UNIFORM_GRID = tuple(round(0.05 * i, 2) for i in range(20, 1, -1))  # 1.0 down to 0.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision classification model name")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/cifar10-jpeg.zip")
    parser.add_argument("--max-train", type=int, default=10000)
    parser.add_argument("--max-val", type=int, default=1000)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--pretrain-steps", type=int, default=1500, help="the user's model's training recipe: steps")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.6, 0.4, 0.25],
                        help="budgets as fractions of the original's measured fp32 latency")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--finetune-steps", type=int, default=40, help="per candidate, inside the search")
    parser.add_argument("--final-steps", type=int, default=300, help="the same KD fine-tune for every method's model")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/autoc-bench-compress"))
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the result record is written")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reference = f"torchvision:{args.model}"
    data_dir = None if args.dataset == "digits" else args.data
    data = load_dataset(args.dataset, data_dir=data_dir, input_size=args.input_size, seed=0,
                        max_train=args.max_train, max_val=args.max_val)
    weights = _user_model(reference, data, args)
    model = load_model(reference, num_classes=data.num_classes, weights=weights)
    example = data.train_x[:1]
    original_ms = _measured(model, [ModelPolicy.of()], example, args.threads)[0]
    original_acc = accuracy(model, data.val_x, data.val_y)
    print(f"{reference}: accuracy {original_acc:.3f}, {original_ms:.3f} ms fp32 on this host")
    budgets = [round(f * original_ms, 4) for f in args.budgets]
    logits = original_logits(model, data)
    final = TrainConfig(steps=args.final_steps, lr=0.01)
    rows = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        result = run_compress(CompressOptions(
            model=reference, weights=weights, budgets_ms=tuple(budgets), dataset=args.dataset, data_dir=data_dir,
            input_size=args.input_size, max_train=args.max_train, max_val=args.max_val, trials=args.trials,
            seed=seed, finetune_steps=args.finetune_steps, runs_dir=args.runs_dir, study=f"{args.model}-seed{seed}",
            threads=args.threads))
        search_s = time.perf_counter() - start
        structure = analyse(model, example)
        table = LayerTable.from_dict(json.loads((result.run_dir / "layer_latency.json").read_text()))
        layers = model_layers(model, example)
        multiple = table.channel_multiple or 1  # every method's channel counts round as autoc's do: a fair start
        for chosen in result.chosen:
            policies = {"autoc": load_model_policy(chosen.policy_path).policy if chosen.policy_path else None,
                        "uniform int8": ModelPolicy.of(layers=_all_int8(structure)),
                        "uniform L1": _uniform(structure, model, example, chosen.budget_ms, args.threads, multiple)}
            for method, policy in ((k, v) for k, v in policies.items() if v is not None):
                shaped = policy_layers(layers, structure, policy)
                table.measure(shaped, threads=args.threads)
                tuned = estimate_policy(model, policy, data, config=final, teacher_logits=logits)
                program = export_compressed(tuned.model, calibration=data.train_x[:64].numpy())
                rows.append(_row(seed, chosen.budget_ms, method, tuned.model, program, data, args.threads,
                                 predicted_ms=table.predict_ms(shaped)))
                if method == "autoc":
                    rows[-1]["int8_slower_layers"] = _int8_slower(table, shaped)
            global_model = _torch_pruning_global(model, example, chosen.budget_ms, args.threads, multiple)
            recalibrate_batchnorm(global_model, data.train_x)
            train(global_model, data.train_x, data.train_y, config=final, teacher_logits=logits)
            program = export_onnx(global_model.eval(), input_shape=tuple(example.shape), dynamic_batch=True)
            rows.append(_row(seed, chosen.budget_ms, "Torch-Pruning global", global_model, program, data,
                             args.threads, predicted_ms=None))
            print(f"budget {chosen.budget_ms:.3f} ms:", *(
                f"{r['method']}: {r['accuracy']:.3f} (ONNX {r['onnx_accuracy']:.3f}) at {r['measured_ms']:.3f} ms"
                + (f" (predicted {r['predicted_ms']:.3f})" if r["predicted_ms"] else "")
                for r in rows if r.get("budget_ms") == chosen.budget_ms and r.get("seed") == seed), sep="\n  ")
        rows.append({"seed": seed, "search_seconds": search_s, "seconds_per_trial": result.seconds_per_trial,
                     "floor_ms": result.floor_ms, "held_out_errors": list(result.held_out_errors),
                     "below_floor": [c.budget_ms for c in result.chosen if c.below_floor]})
    figures = {}
    for budget, fraction in zip(budgets, args.budgets):
        means = {}
        for method in METHODS:
            found = [r for r in rows if r.get("budget_ms") == budget and r.get("method") == method]
            if found:
                means[method] = (statistics.mean(r["accuracy"] for r in found),
                                 statistics.mean(r["measured_ms"] for r in found))
                figures[f"{fraction:g}x {method}: accuracy / measured ms"] = (
                    f"{means[method][0]:.3f} / {means[method][1]:.3f}"
                    + ("" if all(r["measured_ms"] <= budget for r in found) else " (over budget)"))
        chosen = [r for r in rows if r.get("budget_ms") == budget and r.get("method") == "autoc"]
        if chosen:
            figures[f"{fraction:g}x autoc: measured vs predicted (%)"] = " / ".join(
                f"{100 * (r['measured_ms'] - r['predicted_ms']) / r['predicted_ms']:+.1f}" for r in chosen)
        fitting = {m: v for m, v in means.items() if m != "autoc" and all(
            r["measured_ms"] <= budget for r in rows if r.get("budget_ms") == budget and r.get("method") == m)}
        if "autoc" in means and fitting:
            best = max(fitting, key=lambda m: fitting[m][0])
            figures[f"{fraction:g}x autoc lead over the best baseline within budget (points)"] = (
                f"{100 * (means['autoc'][0] - fitting[best][0]):+.1f} ({best})")
    slower = [layer for r in rows if r.get("method") == "autoc" for layer in r.get("int8_slower_layers", [])]
    if slower:
        figures["convs of the chosen models where int8 is slower than fp32 here: kept fp32"] = (
            f"{sum(layer['chosen'] == 'fp32' for layer in slower)} of {len(slower)} "
            f"({', '.join(sorted({layer['layer'] for layer in slower})[:6])})")
    figures["original accuracy"], figures["original ms"] = round(original_acc, 4), round(original_ms, 4)
    figures["floor ms (most compressed policy, predicted)"] = round(min(r["floor_ms"] for r in rows if "floor_ms" in r), 4)
    record_result("compress.user_models", config_key(args, extra=args.model),
                  title=f"autoc compress vs uniform baselines on {args.model}", figures=figures, rows=rows,
                  results_dir=args.results_dir)
    return 0


def _user_model(reference: str, data, args) -> Path:
    """The user's trained model: one fixed recipe, cached."""
    path = args.runs_dir / f"user-{args.model}-{data.fingerprint[:12]}-{args.pretrain_steps}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = load_model(reference, num_classes=data.num_classes)
        train(model, data.train_x, data.train_y,
              config=TrainConfig(steps=args.pretrain_steps, batch_size=64, lr=0.05, augment=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return path


def _all_int8(structure) -> dict:
    return {n: INT8 for n in structure.convs}


def _uniform(structure, model, example, budget_ms, threads, multiple):
    """The largest single keep ratio whose exported model measures within the budget, fp32 or
    all-int8 (whichever keeps more channels)."""
    best = None
    for int8 in (False, True):
        for ratio in UNIFORM_GRID:
            if best is not None and ratio <= best[0]:
                break
            policy = ModelPolicy.of(keep={g.name: ratio for g in structure.groups if ratio < 1.0}, multiple=multiple,
                                    layers=_all_int8(structure) if int8 else {})
            if _measured(model, [policy], example, threads)[0] <= budget_ms:
                best = (ratio, policy)
                break
    return best[1] if best else None


def _measured(model, policies, example, threads) -> list[float]:
    """Each policy's compressed network timed as `autoc export` times one (two interleaved sessions)."""
    shape = tuple(example.shape)
    return [measure_exported(network_program(model, p, example_input=example), shape, threads=threads).figure_ms
            for p in policies]


def _row(seed, budget_ms, method, model, program, data, threads, *, predicted_ms) -> dict:
    """One method's model at one budget: accuracy in torch and of its ONNX program in ONNX Runtime,
    the program's latency measured as `autoc export` measures it."""
    timing = measure_exported(program, (1, *data.train_x.shape[1:]), threads=threads)
    return {"seed": seed, "budget_ms": budget_ms, "method": method,
            "accuracy": accuracy(model, data.val_x, data.val_y),
            "onnx_accuracy": onnx_accuracy(program, data.val_x, data.val_y),
            "measured_ms": timing.figure_ms, "session_spread": timing.session_spread, "noisy": timing.noisy,
            "predicted_ms": predicted_ms}


def _int8_slower(table, shaped) -> list[dict]:
    """The convs at which int8 is slower than fp32 on this host (at the shape the policy leaves them),
    with the precision the policy chose for each."""
    from dataclasses import replace

    slower = []
    for layer in shaped:
        if layer.kind != "conv":
            continue
        fp32, int8 = replace(layer, precision="fp32"), replace(layer, precision="int8")
        table.measure([fp32, int8])
        if table.units_ms[int8.key] > table.units_ms[fp32.key]:
            slower.append({"layer": layer.name, "fp32_ms": table.units_ms[fp32.key],
                           "int8_ms": table.units_ms[int8.key], "chosen": layer.precision})
    return slower


def _torch_pruning_global(model, example, budget_ms, threads, multiple):
    """Torch-Pruning's global magnitude pruner, its ratio raised until the exported model fits."""
    import copy

    for ratio in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        pruned = copy.deepcopy(model)
        classifier = [m for m in pruned.modules() if isinstance(m, torch.nn.Linear)][-1]
        pruner = tp.pruner.MetaPruner(pruned, example, importance=tp.importance.GroupMagnitudeImportance(p=1), round_to=multiple,
                                      pruning_ratio=ratio, global_pruning=True, ignored_layers=[classifier])
        pruner.step()
        program = export_onnx(pruned.eval(), input_shape=tuple(example.shape))
        if measure_exported(program, tuple(example.shape), threads=threads).figure_ms <= budget_ms:
            break
    return pruned


if __name__ == "__main__":
    raise SystemExit(main())
