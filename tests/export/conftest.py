import pytest

from autoc.cli import main

# Small enough for seconds per trial; two keep ratios and both precisions, so some trials
# are pruned and some mix fp32 and int8 layers (with 4-bit weights among them).
TINY_SPACE = """
name: tiny-export
input_size: 16
activation: relu6
stem: {width: [16], stride: 1}
stages:
  - {depth: [1], width: [16], stride: 1, kernel: [3], expansion: [1], per_block: true}
  - {depth: [1, 2], width: [24], stride: 2, kernel: [3, 5], expansion: [3], per_block: true}
head: {width: [32]}
compression: {keep_ratio: [0.5, 1.0], precision: [fp32, int8], weight_bits: [8, 4]}
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """runs/<study> of a real 6-trial search on digits (host latency measured with ONNX Runtime)."""
    root = tmp_path_factory.mktemp("export-search")
    space = root / "tiny-export.yaml"
    space.write_text(TINY_SPACE)
    code = main([
        "search", "--budget-ms", "50", "--device", "host", "--space", str(space), "--runs-dir", str(root / "runs"),
        "--study", "t",
        "--trials", "6", "--finetune-steps", "20", "--teacher-steps", "40", "--max-train", "300",
        "--max-val", "200", "--no-progress",
    ])
    assert code == 0
    return root / "runs" / "t"


@pytest.fixture(scope="session")
def tiny_val_images():
    """Validation images of the tiny study (the split its search used)."""
    from autoc.data.datasets import load_dataset

    return load_dataset("digits", input_size=16, seed=0, max_train=300, max_val=200).val_x
