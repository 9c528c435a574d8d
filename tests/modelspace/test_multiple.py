"""The channel multiple a device's kernels run fast, read off the layer table."""
import torch

from autoc.modelspace import load_model
from autoc.modelspace.latency import LayerTable, model_layers
from autoc.modelspace.multiple import MULTIPLES, fast_multiple, reference_layer


class _BlockedTable(LayerTable):
    """Unit times of a runtime that pads output channels to ``block`` (time per padded channel)."""

    def __init__(self, block):
        super().__init__(units_ms={})
        self.block = block

    def measure(self, layers, **_):
        for layer in self.missing(layers):
            padded = -(-layer.cout // self.block) * self.block
            self.units_ms[layer.key] = 1e-3 * padded * layer.cin * layer.kernel[0] * layer.kernel[1]
        return 0


def _resnet_layers():
    return model_layers(load_model("torchvision:resnet18", num_classes=10), torch.randn(1, 3, 32, 32))


def test_the_multiple_is_the_block_the_runtime_pads_output_channels_to():
    layers = _resnet_layers()
    for block in (1, 4, 8, 16):
        assert fast_multiple(layers, _BlockedTable(block)) == block


def test_the_probed_layer_is_the_slowest_dense_conv_and_a_model_without_one_gets_one():
    layers = _resnet_layers()
    table = _BlockedTable(8)
    reference = reference_layer(layers, table)
    assert reference.kind == "conv" and reference.groups == 1 and reference.precision == "fp32"
    assert all(table.units_ms[reference.key] >= table.units_ms[l.key] for l in layers
               if l.kind == "conv" and l.precision == "fp32" and l.cout >= 2 * MULTIPLES[0] and l.key in table.units_ms)
    linear_only = [l for l in layers if l.kind == "linear"]
    assert fast_multiple(linear_only, _BlockedTable(8)) == 1


def test_this_hosts_onnx_runtime_gives_a_multiple_its_timings_support():
    """Measured for real: counts just below the multiple found are not faster than the multiple."""
    layers = _resnet_layers()
    table = LayerTable(units_ms={})
    multiple = fast_multiple(layers, table)
    assert multiple in (1, *MULTIPLES)
    if multiple > 1:
        from dataclasses import replace

        reference = reference_layer(layers, table)
        top = reference.cout // multiple * multiple
        probes = [replace(reference, cout=c) for c in range(top - multiple + 1, top + 1)]
        table.measure(probes)  # timed again, in one batch of their own
        below = [table.units_ms[p.key] for p in probes[:-1]]
        assert min(below) >= 0.9 * table.units_ms[probes[-1].key]


def test_probing_leaves_the_table_it_reads_unchanged():
    """The probes are timed in a batch of their own: their times must not become the table's."""
    layers = _resnet_layers()
    table = _BlockedTable(8)
    assert fast_multiple(layers, table) == 8 and table.units_ms == {}
