"""A space whose largest network cannot be trained in this machine's memory is refused, with the
figure, before anything is built (it was a torch allocation traceback after asking for 20 GB)."""
from autoc.cli import main
from autoc.evaluate.memory import training_bytes
from autoc.arch.netspec import build_netspec
from autoc.space import load_space

HUGE_SPACE = """
name: huge
input_size: 32
activation: relu6
stem: {width: [4000], stride: 1}
stages:
  - {depth: [4], width: [20000], stride: 1, kernel: [7], expansion: [6], per_block: true}
head: {width: [30000]}
compression: {keep_ratio: [1.0], precision: [fp32], weight_bits: [8]}
"""


def test_a_space_too_large_to_train_here_is_refused_with_the_figure(tmp_path, capsys):
    space = tmp_path / "huge.yaml"
    space.write_text(HUGE_SPACE)
    code = main(["search", "--budget-ms", "20", "--space", str(space), "--runs-dir", str(tmp_path / "runs"),
                 "--study", "huge", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "the largest network of space 'huge' needs about" in err and "GB of memory to train at batch 32" in err
    assert str(space) in err and not (tmp_path / "runs").exists()


def test_the_estimate_grows_with_the_batch_and_counts_every_conv():
    spec = build_netspec(load_space("mbv2-cifar").largest_arch(10))
    one, many = training_bytes(spec, batch_size=1), training_bytes(spec, batch_size=32)
    params = sum(c.cout * (c.cin // c.groups) * c.kernel**2 for c in spec.convs())
    assert many > one > 4 * 4 * params  # weights, gradients, momentum and a teacher copy, plus activations
