import math

import pytest

from autoc.arch.config import BlockOp
from autoc.arch.policy import CompressionPolicy
from autoc.latency.blocks import export_unit, measure_units, network_units
from autoc.latency.measure import measure_interleaved, measure_onnx
from latency_nets import int8_policy, small_net


def first_block(spec, policy=CompressionPolicy()):
    return network_units(spec, policy)[1]


def test_measurement_summary():
    unit = first_block(small_net())
    m = measure_onnx(export_unit(unit), input_shape=unit.input_shape, warmup=3, repeats=20)
    assert m.repeats == 20
    assert 0 < m.p10_ms <= m.figure_ms <= m.median_ms <= m.p90_ms < 100


def test_interleaved_gives_one_measurement_per_model():
    units = network_units(small_net(), CompressionPolicy())
    results = measure_interleaved(
        [export_unit(u) for u in units], input_shapes=[u.input_shape for u in units], warmup=2, repeats=10
    )
    assert len(results) == len(units) and all(r.repeats == 10 for r in results)
    with pytest.raises(ValueError, match="one shape per model"):
        measure_interleaved([export_unit(units[0])], input_shapes=[], warmup=1, repeats=1)


def test_bigger_block_is_slower():
    small = first_block(small_net(input_size=8, ops=(BlockOp(3, 1),), stride=1))
    big = first_block(small_net(input_size=32, width=32, ops=(BlockOp(5, 6),), stride=1))
    ms = measure_units([small, big])
    assert ms[big.key] > 3 * ms[small.key]


def test_int8_and_fp32_blocks_are_both_measurable():
    spec = small_net()
    fp32, int8 = first_block(spec), first_block(spec, int8_policy(spec))
    ms = measure_units([fp32, int8, fp32])  # duplicates are measured once
    assert set(ms) == {fp32.key, int8.key}
    assert all(math.isfinite(v) and v > 0 for v in ms.values())


def test_summary_drops_interruptions_and_reports_the_low_percentile():
    import numpy as np

    from autoc.latency.measure import summarise

    runs = np.array([1.0] * 30 + [1.2] * 30 + [1.5] * 39 + [50.0])  # one run hit by a context switch
    m = summarise(runs)
    assert m.outliers == 1 and m.repeats == 100
    assert m.figure_ms == pytest.approx(1.0) and m.median_ms == pytest.approx(1.2)
    assert m.p10_ms <= m.figure_ms <= m.median_ms <= m.p90_ms == pytest.approx(1.5)
