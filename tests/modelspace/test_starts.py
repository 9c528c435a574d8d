"""The policies a compress study starts from, built from the layer table without training."""
import pytest
import torch

from autoc.arch.policy import LayerPolicy
from autoc.modelspace import ModelPolicy, analyse, load_model
from autoc.modelspace.latency import LayerTable, model_layers, policy_layers
from autoc.modelspace.starts import greedy_keep, int8_where_faster, kept_mass, start_params

INT8 = LayerPolicy(precision="int8", weight_bits=8, act_bits=8)
CHOICES = (0.25, 0.5, 1.0)


@pytest.fixture(scope="module")
def resnet():
    model = load_model("torchvision:resnet18", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    structure = analyse(model, x)
    layers = model_layers(model, x)

    def shape(keep, int8):
        return policy_layers(layers, structure, ModelPolicy.of(
            keep={k: v for k, v in keep.items() if v < 1.0}, layers={n: INT8 for n, on in int8.items() if on}))

    return model, x, structure, shape


class _MacTable(LayerTable):
    """A table whose unit times are known in advance: MACs (int8 at a third, but slower than fp32
    on 1x1 maps, as x86 runs them), so a test can tell what the algorithms should pick."""

    def measure(self, layers, **_):
        for layer in self.missing(layers):
            macs = layer.cin * layer.cout * layer.kernel[0] * layer.kernel[1] * layer.input_hw[0] * layer.input_hw[1]
            macs //= layer.groups if layer.kind == "conv" else 1
            slow = layer.input_hw == (1, 1)
            self.units_ms[layer.key] = 1e-6 * macs * (1.0 if layer.precision == "fp32" else 1.5 if slow else 0.33)
        return 0


def test_int8_is_chosen_exactly_where_the_table_times_it_faster(resnet):
    _, _, structure, shape = resnet
    layers = shape({}, {})
    chosen = int8_where_faster(layers, _MacTable(units_ms={}), structure.convs)
    on_1x1 = {layer.name for layer in layers if layer.input_hw == (1, 1)}
    assert on_1x1 and set(chosen) == set(structure.convs)
    assert {n for n, int8 in chosen.items() if not int8} == on_1x1 & set(structure.convs)


def test_kept_mass_grows_with_the_keep_ratio_and_is_whole_at_one(resnet):
    model, x, structure, _ = resnet
    mass = kept_mass(model, structure, x, CHOICES)
    assert set(mass) == {g.name for g in structure.groups}
    for shares in mass.values():
        assert 0 < shares[0.25] < shares[0.5] < shares[1.0] == pytest.approx(1.0)
        assert shares[0.5] >= 0.5 - 1e-6  # the most important half holds at least half the mass


def test_the_greedy_policy_fits_its_budget_and_is_not_pruned_further_than_it_needs(resnet):
    model, x, structure, shape = resnet
    table = _MacTable(units_ms={})
    mass = kept_mass(model, structure, x, CHOICES)

    def precision(layers):
        return int8_where_faster(layers, table, structure.convs)

    whole = shape({}, precision(shape({}, {})))
    table.measure(whole)
    full = table.predict_ms(whole)
    budget = 0.4 * full
    keep, int8 = greedy_keep(structure, shape, table, budget_ms=budget, keep_choices=CHOICES, mass=mass,
                             precision=precision)
    def ms(layers):
        table.measure(layers)
        return table.predict_ms(layers)

    assert ms(shape(keep, int8)) <= budget
    # one step less in any lowered group would not fit: the greedy stops as soon as it fits
    lowered = [name for name, ratio in keep.items() if ratio < 1.0]
    assert lowered and any(ms(shape({**keep, name: CHOICES[CHOICES.index(keep[name]) + 1]}, int8)) > budget
                           for name in lowered)
    assert int8 == precision(shape(keep, {}))  # the precisions are the table's choice at those widths
    assert greedy_keep(structure, shape, table, budget_ms=1e-9, keep_choices=CHOICES, mass=mass,
                       precision=precision) is None


def test_a_study_starts_with_a_greedy_policy_per_budget_then_uniform_ones_each_once(resnet):
    model, x, structure, shape = resnet
    table = _MacTable(units_ms={})
    table.measure(shape({}, {}))
    full = table.predict_ms(shape({}, {}))
    budgets = (0.5 * full, 0.2 * full)
    starts = start_params(structure, shape, table, budgets_ms=budgets, keep_choices=CHOICES,
                          mass=kept_mass(model, structure, x, CHOICES))
    assert len(starts) == len({tuple(sorted(p.items())) for p in starts})  # no policy twice
    predicted = []
    for params in starts:
        keep = {k.split(":", 1)[1]: v for k, v in params.items() if k.startswith("keep:")}
        int8 = {k.split(":", 1)[1]: v for k, v in params.items() if k.startswith("int8:")}
        assert set(keep) == {g.name for g in structure.groups} and set(int8) == set(structure.int8_layers)
        assert set(keep.values()) <= set(CHOICES)
        predicted.append(table.predict_ms(shape(keep, int8)))
    assert predicted[0] <= budgets[0] and predicted[1] <= budgets[1]  # greedy, largest budget first
    assert all(ms <= budgets[0] for ms in predicted)  # every start fits at least the largest budget
    uniform = [p for p in starts if len({v for k, v in p.items() if k.startswith("keep:")}) == 1]
    assert uniform, "the uniform baselines are among the starts"
