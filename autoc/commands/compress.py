"""`autoc compress MODEL`: fit a model the user already has into latency budgets, per layer."""
from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

from autoc.commands._drift import report_drift
from autoc.commands._flags import option_flags
from autoc.commands._numbers import amount, count


def _default(name: str):
    from autoc.modelspace.driver import CompressOptions

    return next(f.default for f in fields(CompressOptions) if f.name == name)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `autoc compress` and its options."""
    p = sub.add_parser("compress", help="prune and quantise your own model (torchvision or your code) into "
                                        "latency budgets on a device")
    p.add_argument("model", help="torchvision:NAME (e.g. torchvision:resnet18), package.module:callable "
                                 "returning an nn.Module, or a run directory runs/<study> to resume")
    p.add_argument("--weights", type=Path, default=None,
                   help="the model's state dict (nothing is downloaded; without it the model is first trained "
                        "--pretrain-steps on the data, and the summary says so)")
    p.add_argument("--budget-ms", dest="budgets_ms", type=amount("20"), nargs="+", default=None,
                   help="one or more latency budgets in ms: each gets the most accurate policy that fits it")
    p.add_argument("--dataset", default=_default("dataset"), help="digits (bundled), cifar10 or imagefolder")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset location for cifar10 / imagefolder")
    p.add_argument("--input-size", type=count(8, 32), default=_default("input_size"),
                   help="images are resized to this square size [%(default)s]")
    p.add_argument("--max-train", type=count(1, 2000), default=None, help="use at most this many training images")
    p.add_argument("--max-val", type=count(1, 500), default=None, help="use at most this many validation images")
    p.add_argument("--device", default=_default("device"),
                   help="target device: host (its layers timed here) or a device whose table for this model was "
                        "imported from a pack (autoc calibrate --device NAME --model MODEL --export-pack DIR) "
                        "[%(default)s]")
    p.add_argument("--trials", type=count(1, 30), default=None,
                   help=f"policies to try in all; a resumed run keeps its own unless given [{_default('trials')}]")
    p.add_argument("--seed", type=count(0, 0), default=_default("seed"))
    p.add_argument("--finetune-steps", type=count(0, 40), default=_default("finetune_steps"),
                   help="distillation steps per candidate, from the original model [%(default)s]")
    p.add_argument("--pretrain-steps", type=count(1, 300), default=_default("pretrain_steps"),
                   help="without --weights: training steps of the model before compressing it [%(default)s]")
    p.add_argument("--keep-choices", type=amount("0.5"), nargs="+", default=list(_default("keep_choices")),
                   help="keep ratios a channel group may take [%(default)s]")
    p.add_argument("--channel-multiple", type=count(1, 8), default=None,
                   help="round kept channel counts to this multiple (default: the multiple the device's latency "
                   "table shows its kernels run fast)")
    p.add_argument("--weight-bits", dest="weight_bits_choices", type=count(2, 4), nargs="+",
                   default=list(_default("weight_bits_choices")),
                   help="weight bits an int8 layer may take, 2..8 (below 8: a smaller model, not a faster one; "
                        "give --budget-kb so the search has a reason to pick them) [%(default)s]")
    p.add_argument("--sparsity", dest="sparsity_choices", type=amount("0.5", zero=True), nargs="+",
                   default=list(_default("sparsity_choices")),
                   help="unstructured sparsity a layer may take, in [0, 1): its smallest weights zeroed, a smaller "
                        "model, not a faster one [%(default)s]")
    p.add_argument("--budget-kb", dest="size_budget_kb", type=amount("500"), default=None,
                   help="size budget: every chosen model is at most this many kB (weights at their bits and "
                        "sparsity, fp32 biases); trials over it are not trained")
    p.add_argument("--runs-dir", type=Path, default=_default("runs_dir"), help="where run directories live")
    p.add_argument("--study", default=None, help="study name (default: model and time); the same name resumes it")
    p.add_argument("--threads", type=count(1, 2), default=_default("threads"),
                   help="torch and ONNX Runtime threads [%(default)s]")
    p.add_argument("--allow-drift", action="store_true",
                   help="exit 0 even when an exported program's accuracy is over 1 point or its latency over 10%% "
                   "from what the search scored (the files are written either way)")
    p.set_defaults(handler=run, option_flags=option_flags(p))


def run(args: argparse.Namespace) -> int:
    """Compress a user model under each budget, or resume a stored compress study, and print the summary."""
    from dataclasses import replace

    from autoc.errors import OptionError
    from autoc.modelspace.driver import CompressOptions, run_compress, stored_options

    if Path(args.model).is_dir():  # resume: the stored options, more trials if asked
        options = stored_options(Path(args.model))
        options = replace(options, trials=args.trials or options.trials)
    elif args.budgets_ms is None:
        raise OptionError(f"no budget for {args.model}: give budgets_ms (several for several budgets)",
                          fields=("budgets_ms",))
    else:
        options = CompressOptions(
            model=args.model, weights=args.weights, budgets_ms=tuple(args.budgets_ms), dataset=args.dataset,
            data_dir=args.data_dir, input_size=args.input_size, max_train=args.max_train, max_val=args.max_val,
            device=args.device, trials=args.trials or _default("trials"), seed=args.seed,
            finetune_steps=args.finetune_steps, pretrain_steps=args.pretrain_steps,
            keep_choices=tuple(args.keep_choices), channel_multiple=args.channel_multiple,
            weight_bits_choices=tuple(args.weight_bits_choices), sparsity_choices=tuple(args.sparsity_choices),
            size_budget_kb=args.size_budget_kb, runs_dir=args.runs_dir, study=args.study, threads=args.threads)
    result = run_compress(options)
    print_summary(result)
    drift = [problem for chosen in result.chosen for problem in chosen.drift()]
    return report_drift("compress", drift, allowed=args.allow_drift, refusal=(
        "the files are written but are not the models the search scored; pass --allow-drift to accept them"))


def print_summary(result) -> None:
    """The summary of a compress run, as `autoc compress` and `autoc show` print it."""
    origin = " (trained here: no --weights given)" if result.pretrained_here else ""
    print(f"study {result.study}: {result.trials_total} trials ({result.trials_this_run} this run"
          + (f", {result.seconds_per_trial:.1f} s per candidate" if result.seconds_per_trial else "") + ")")
    foreign = result.original_measured_ms is None
    measured = (f"predicted for {result.device} (not measured here)" if foreign
                else f"predicted, {result.original_measured_ms:.3f} ms measured")
    print(f"original model{origin}: accuracy {result.original_accuracy:.3f}, "
          f"{result.original_predicted_ms:.3f} ms {measured}"
          + (f", {result.original_size_kb:.1f} kB" if result.original_size_kb is not None else "")
          + (f" (size budget {result.size_budget_kb:g} kB)" if result.size_budget_kb is not None else ""))
    if result.held_out_errors:
        worst = max(abs(e) for e in result.held_out_errors)
        where = f" on {result.device} (its imported table)" if foreign else ""
        print(f"latency table: {len(result.held_out_errors)} held-out variants predicted within {100 * worst:.1f}%"
              f"{where}")
    if result.channel_multiple > 1:
        print(f"channel counts kept in multiples of {result.channel_multiple}")
    for layer, why in sorted(result.unprunable.items()):
        print(f"left unpruned: {layer} ({why})")
    for chosen in result.chosen:
        if chosen.trial is None and not math.isnan(chosen.accuracy):
            print(f"budget {chosen.budget_ms:g} ms: the original model fits ({chosen.predicted_ms:.3f} ms{_size(chosen)})")
        elif chosen.below_floor:
            print(f"budget {chosen.budget_ms:g} ms: below the most compressed policy's predicted "
                  f"{result.floor_ms:.3f} ms (the floor); nothing can fit it")
        elif chosen.trial is None:
            print(f"budget {chosen.budget_ms:g} ms: no trial fits yet; run more trials (--trials) or raise the budget")
        else:
            measured = f" for {result.device}, not measured here" if foreign else ""
            if chosen.measured_ms is not None:
                spread = (f" (sessions {100 * chosen.measured_spread:.1f}% apart"
                          + (" -- NOISY)" if chosen.measured_noisy else ")")) if chosen.measured_spread is not None else ""
                measured = f", {chosen.measured_ms:.3f} ms measured{spread}"
            print(f"budget {chosen.budget_ms:g} ms: trial {chosen.trial}, accuracy {chosen.accuracy:.3f} "
                  f"(ONNX {chosen.onnx_accuracy:.3f}), {chosen.predicted_ms:.3f} ms predicted{measured}{_size(chosen)}; "
                  f"mean keep {chosen.mean_keep:.2f}, {chosen.int8_layers} int8 layers -> {chosen.policy_path}, "
                  f"{chosen.onnx_path.name}")
            if chosen.measured_over:
                print(f"  passed over (predicted within, measured over {chosen.budget_ms:g} ms): trial "
                      + ", ".join(map(str, chosen.measured_over)))
            if chosen.measured_ms is not None and chosen.measured_ms > chosen.budget_ms:
                print(f"  over the budget as measured here ({chosen.measured_ms:.3f} > {chosen.budget_ms:g} ms): no "
                      "trial tried measured within it; run more trials (--trials) or raise the budget")


def _size(chosen) -> str:
    """", 123.4 kB": a chosen model's size beside its latency (nothing where a study stored none)."""
    return f", {chosen.size_kb:.1f} kB" if chosen.size_kb is not None else ""
