"""The NNI export, read by the real NNI 3.0: its pruner keeps autoc's channel counts and its
quantiser takes the quantisation list with autoc's scheme.

NNI 3.0 pins filelock<3.12 and typeguard<4.1.3, which would downgrade this environment, so it is
not a dev dependency: the test installs it once into a venv cached under
~/.cache/autoc-test-nni-venv/nni-3.0 (sharing this environment's torch through
--system-site-packages, so nothing large is downloaded) and runs tests/export/nni_venv_check.py
there, a script that imports NNI and torch, never autoc.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from autoc.arch.builder import build_model
from autoc.arch.netspec import group_producers, frozen_groups
from autoc.arch.policy import CompressionPolicy, LayerPolicy
from autoc.candidate import Candidate
from autoc.export.nni_config import nni_config
from helpers import tiny_arch

NNI_VERSION = "3.0"
VENV = Path.home() / ".cache" / "autoc-test-nni-venv" / f"nni-{NNI_VERSION}"
SCRIPT = Path(__file__).with_name("nni_venv_check.py")
# pip's words when it cannot reach a package index (or the index lacks the release)
_NO_INDEX = ("Could not find a version that satisfies", "No matching distribution found", "NewConnectionError",
             "Network is unreachable", "Temporary failure in name resolution", "Max retries exceeded")


def nni_python() -> Path:
    """Python of the cached NNI venv, created on first use; skips only when pip cannot reach an index."""
    python = VENV / "bin" / "python"
    if python.is_file() and subprocess.run([python, "-c", "import nni"], capture_output=True).returncode == 0:
        return python
    building = VENV.with_name(VENV.name + f".tmp{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", building], check=True)
    pip = subprocess.run([building / "bin" / "python", "-m", "pip", "install", "-q", f"nni=={NNI_VERSION}"],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        if any(words in pip.stdout + pip.stderr for words in _NO_INDEX):
            pytest.skip(f"pip cannot install nni=={NNI_VERSION} from a package index here: "
                        f"{(pip.stderr.strip().splitlines() or ['?'])[-1]}")
        pytest.fail(f"pip install nni=={NNI_VERSION} failed:\n{pip.stderr[-2000:]}")
    shutil.rmtree(VENV, ignore_errors=True)
    building.rename(VENV)  # a half-built venv is never taken for a cached one
    return python


def plain_layers(model: nn.Module) -> nn.Module:
    """The model's Conv2d and Linear layers under their own names, in containers of plain torch.nn
    classes: what a process without autoc can unpickle and NNI can select by name."""
    root = nn.Module()
    for name, module in model.named_modules():
        if type(module) in (nn.Conv2d, nn.Linear):
            parent = root
            *path, leaf = name.split(".")
            for part in path:
                if part not in parent._modules:
                    parent.add_module(part, nn.Module())
                parent = parent._modules[part]
            parent.add_module(leaf, copy.deepcopy(module))
    return root


def candidate(keep: float) -> Candidate:
    """The test architecture at one keep ratio (tied groups share it), with fp32, 8-bit and 4-bit int8 layers."""
    arch = tiny_arch(head_width=40)
    names = Candidate(arch, CompressionPolicy.from_mapping({})).full_netspec().layer_names()
    layers = {}
    for i, name in enumerate(names):
        quant = [{}, dict(precision="int8", weight_bits=8, act_bits=8),
                 dict(precision="int8", weight_bits=4, act_bits=8)][i % 3]
        layers[name] = LayerPolicy(keep_ratio=keep, **quant)
    layers.setdefault("head", LayerPolicy(keep_ratio=1.0, precision="int8", weight_bits=8, act_bits=8))
    return Candidate(arch, CompressionPolicy.from_mapping(layers))


def test_nni_keeps_autocs_channel_counts_and_takes_the_quantisation_list(tmp_path):
    python = nni_python()
    jobs, expected = [], []
    for keep in (0.3, 0.55, 0.7, 0.85):
        cand = candidate(keep)
        model_path, config_path = tmp_path / f"model-{keep}.pt", tmp_path / f"nni-{keep}.json"
        torch.save(plain_layers(build_model(cand.full_netspec())), model_path)
        config = nni_config(cand)
        config_path.write_text(json.dumps(config))
        jobs.append({"model": str(model_path), "config": str(config_path)})
        expected.append((cand, config))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([python, SCRIPT, tmp_path / "jobs.json", tmp_path / "out.json"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["nni"] == NNI_VERSION
    pruned_groups = 0
    for (cand, config), result in zip(expected, out["results"]):
        full, pruned = cand.full_netspec(), {c.name: c.cout for c in cand.netspec().convs()}
        nni_kept = result["kept"]
        for group, convs in group_producers(full).items():
            if group in frozen_groups(full) or pruned[convs[0].name] == convs[0].cout:
                assert not {f"{c.name}.conv" for c in convs} & set(nni_kept)
                continue
            pruned_groups += 1
            assert {nni_kept[f"{c.name}.conv"] for c in convs} == {pruned[convs[0].name]}, group
        quantized = result["quantized"]
        for entry in config["quantization"]:
            for op in entry["op_names"]:
                # NNI expands the "_input_" prefix to the module's inputs by position: "_input_0"
                weight, inputs = quantized[op]["weight"], quantized[op]["_input_0"]
                assert weight == {"quant_dtype": entry["quant_dtype"], "quant_scheme": "symmetric",
                                  "granularity": "out_channel"}
                assert (inputs["quant_dtype"], inputs["quant_scheme"]) == ("uint8", "affine")
        assert set(quantized) == {op for e in config["quantization"] for op in e["op_names"]}
    assert pruned_groups >= 12
