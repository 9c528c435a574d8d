"""The span of a space's predicted latencies on a device: no candidate falls outside it."""
import optuna

from autoc.latency.device import open_device_model
from autoc.latency.span import LatencySpan, latency_span
from autoc.space import load_space, sample_candidate


def test_no_sampled_fbnet_candidate_predicts_outside_its_span_on_the_shipped_pixel3(tmp_path):
    space = load_space("fbnet-cifar")
    model = open_device_model("pixel3", runs_dir=tmp_path)
    span = latency_span(space, model, num_classes=10)
    assert 0 < span.fastest_ms < span.slowest_ms
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(200):
        candidate = sample_candidate(space, study.ask(), num_classes=10)
        assert span.fastest_ms <= model.predict(candidate.netspec(), candidate.policy) <= span.slowest_ms


def test_the_span_says_its_ends_in_a_few_figures():
    assert LatencySpan(fastest_ms=2.8121, slowest_ms=47.06).describe() == "2.81-47.1 ms"
    assert LatencySpan(fastest_ms=2.8121, slowest_ms=None).describe() == "from 2.81 ms"
