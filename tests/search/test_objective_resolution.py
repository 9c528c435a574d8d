"""A trial's candidate is fine-tuned and scored on the data resized to its own resolution."""
from pathlib import Path

from torch.nn.modules.module import register_module_forward_pre_hook

from autoc.arch.builder import AutocNet, build_model
from autoc.arch.netspec import build_netspec
from autoc.data.datasets import load_dataset
from autoc.latency.model import open_host_model
from autoc.search.objective import ObjectiveContext, estimate_candidate_in
from autoc.space import parse_space, random_sampling_study, sample_candidate
from autoc.training.loop import TrainConfig, predict_logits

SPACE = {
    "name": "res", "resolution": [16, 24], "stem": {"width": [8], "stride": 1},
    "stages": [{"depth": [1], "width": [8], "stride": 2, "kernel": [3], "expansion": [3]}],
}


def test_a_candidate_at_a_smaller_resolution_trains_and_is_scored_at_it(tmp_path):
    space = parse_space(SPACE)
    data = load_dataset("digits", input_size=space.input_size, max_train=64, max_val=32)
    teacher = build_model(build_netspec(space.largest_arch(num_classes=data.num_classes)), seed=0)
    ctx = ObjectiveContext(
        space=space, data=data, latency=open_host_model(tmp_path / "host.json"), teacher=teacher,
        teacher_logits=predict_logits(teacher, data.train_x), teacher_accuracy=0.1,
        finetune=TrainConfig(steps=2, batch_size=16), budget_ms=100.0, weights_dir=Path(tmp_path),
    )
    study = random_sampling_study(seed=0)
    candidate = next(c for c in (sample_candidate(space, study.ask(), num_classes=10) for _ in range(20))
                     if c.arch.input_size == 16)
    sizes = set()

    def record(module, inputs):
        if isinstance(module, AutocNet) and module is not teacher:
            sizes.add(tuple(inputs[0].shape[-2:]))

    handle = register_module_forward_pre_hook(record)
    try:
        model, estimate = estimate_candidate_in(ctx, candidate, seed=0)
    finally:
        handle.remove()
    assert sizes == {(16, 16)}
    assert len(estimate.correct) == 32 and data.input_size == 24
