"""The exported ONNX model carries its preprocessing: a program without autoc scores raw images as autoc does."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

import autoc
from autoc.cli import main
from autoc.export.onnx_candidate import onnx_accuracy

SCRIPT = Path(__file__).with_name("onnx_standalone_check.py")


def raw_validation_digits(val_x: torch.Tensor, preprocessing) -> tuple[np.ndarray, list[int]]:
    """The raw 8x8 digits (values 0..16) the search validated on, found by preprocessing them all the way it did."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy(bunch.images / 16.0).to(torch.float32).unsqueeze(1)
    size = preprocessing.input_size
    made = F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    made = preprocessing.normalise_(made.contiguous())
    distance = torch.cdist(val_x.flatten(1), made.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
    index = distance.argmin(1)
    assert float(distance.min(1).values.max()) < 1e-4  # every validation image found
    return bunch.images[index.numpy()], index.tolist()


def test_onnx_program_scores_raw_images_by_its_metadata_alone(tiny_run, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run), "--format", "onnx", "-o", str(out), "--no-check"]) == 0
    program = onnx.load(out)
    meta = {p.key: p.value for p in program.metadata_props}
    pre = json.loads(meta["autoc.preprocessing"])
    assert json.loads(meta["class_names"]) == pre["class_names"] == [str(d) for d in range(10)]
    assert meta["input_size"] == "16" and json.loads(meta["mean"]) == pre["mean"]
    assert program.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    from autoc.data.datasets import load_dataset

    data = load_dataset("digits", input_size=16, seed=0, max_train=300, max_val=200)  # as the tiny search did
    assert pre == data.preprocessing.to_dict()
    raw, _ = raw_validation_digits(data.val_x, data.preprocessing)
    np.save(tmp_path / "images.npy", raw)
    np.save(tmp_path / "labels.npy", data.val_y.numpy())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", SCRIPT, out, tmp_path / "images.npy", tmp_path / "labels.npy",
                          tmp_path / "result.json"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    autocs = onnx_accuracy(out.read_bytes(), data.val_x, data.val_y)
    assert result["batch"] > 1 and result["accuracy"] == autocs > 0.2  # chance is 0.1


def test_exported_policy_file_and_best_policy_carry_the_preprocessing(tiny_run, tmp_path):
    out = tmp_path / "p.policy.json"
    assert main(["export", str(tiny_run), "-o", str(out)]) == 0
    exported = autoc.load_policy(out, check_space=False).preprocessing
    best = autoc.load_policy(tiny_run / "best_policy.json", check_space=False).preprocessing
    assert exported == best and best.class_names == tuple(str(d) for d in range(10))
    assert (best.input_size, best.colour, best.pixel_max, best.antialias) == (16, "grey", 16.0, False)
