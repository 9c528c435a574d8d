"""Measure how far the estimate moves between training seeds: the top trials estimated again.

A search's estimates all come from one teacher (or supernet) and one fine-tuning seed per trial.
After the trials, the ``count`` feasible trials with the highest estimates are estimated once
more, exactly as before but with the teacher or supernet and the fine-tuning trained from the
next seed, on the same data and images. Each rerun is stored in the study as it finishes
(``results.RERUN_ATTR``), so a stopped search keeps them and a resumed one adds only the missing
ones; the second teacher or supernet is cached like the first. ``autoc.search.separation`` turns
the pairs into the estimate's seed noise.
"""
from __future__ import annotations

from typing import Callable

import optuna

from autoc.candidate import Candidate
from autoc.search.context import SearchInputs, build_objective_context
from autoc.search.finalists import pick_finalists
from autoc.search.objective import estimate_candidate_in
from autoc.search.options import SearchOptions
from autoc.search.results import RERUN_ATTR, TrialRecord, rerun_estimates


def rerun_seed(options: SearchOptions) -> int:
    """The training seed of the reruns: the search's next one."""
    return options.seed + 1


def rerun_top_trials(study: optuna.Study, records: list[TrialRecord], *, options: SearchOptions, count: int,
                     inputs: SearchInputs, threads: int, log: Callable[[str], None]) -> int:
    """Estimate the top ``count`` feasible trials again with ``rerun_seed``; returns how many ran now."""
    seed = rerun_seed(options)
    stored = study.user_attrs.get(RERUN_ATTR)
    done = rerun_estimates(study.user_attrs) if isinstance(stored, dict) and stored.get("training_seed") == seed else {}
    todo = [r for r in pick_finalists(records, count=count) if r.number not in done]
    if count < 2 or not todo:
        return 0
    log(f"estimate noise: estimating the top {count} trials again with training seed {seed} "
        f"({len(todo)} to go; teacher or supernet trained once for it, then cached)")
    ctx = build_objective_context(options, inputs=inputs, threads=threads, training_seed=seed,
                                  progress=options.progress)
    for record in todo:
        _, estimate = estimate_candidate_in(ctx, Candidate.from_dict(record.candidate),
                                            seed=ctx.finetune.seed + record.number)
        done[record.number] = estimate.accuracy
        study.set_user_attr(RERUN_ATTR, {"training_seed": seed,
                                         "accuracy": {str(n): a for n, a in sorted(done.items())}})
        log(f"  trial {record.number}: {record.accuracy:.4f} -> {estimate.accuracy:.4f}")
    return len(todo)
