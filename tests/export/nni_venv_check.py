"""Run in a venv with NNI 3.0 (not autoc): apply autoc's NNI config lists to the unpruned model.

Usage: python nni_venv_check.py JOBS.json OUT.json. JOBS.json lists {"model", "config"}: a
torch.save'd module of plain torch.nn classes holding an unpruned model's Conv2d and Linear layers
under their names, and the autoc NNI export for it. Writes, per job, {"kept": {op: channels NNI's
L1NormPruner keeps}, "quantized": {op: {target: setting}}} as NNI's PtqQuantizer read the list.
"""
import json
import sys

import torch


def main(jobs_path: str, out_path: str) -> None:
    import nni

    results = [check(job["model"], job["config"]) for job in json.loads(open(jobs_path).read())]
    assert "autoc" not in sys.modules  # the check is NNI's alone
    with open(out_path, "w") as out:
        json.dump({"nni": nni.__version__, "results": results}, out)


def check(model_path: str, config_path: str) -> dict:
    import nni
    from nni.compression import TorchEvaluator
    from nni.compression.pruning import L1NormPruner
    from nni.compression.quantization import PtqQuantizer

    config = json.loads(open(config_path).read())
    model = torch.load(model_path, weights_only=False)
    pruner = L1NormPruner(model, config["pruning"])
    _, masks = pruner.compress()
    kept = {op: int((target["weight"].flatten(1).abs().sum(1) > 0).sum()) for op, target in masks.items()}
    pruner.unwrap_model()

    model = torch.load(model_path, weights_only=False)

    def training(model, optimizer, training_step, *args, **kwargs):  # never run: the quantiser is only built
        raise AssertionError("not trained here")

    evaluator = TorchEvaluator(training, nni.trace(torch.optim.SGD)(model.parameters(), lr=0.0),
                               lambda batch, model: torch.zeros(()))
    quantizer = PtqQuantizer(model, config["quantization"], evaluator)
    quantized = {
        module: {target: {"quant_dtype": space.quant_dtype, "quant_scheme": space.quant_scheme,
                          "granularity": space.granularity if isinstance(space.granularity, (str, type(None)))
                          else list(space.granularity)}
                 for target, space in targets.items()}
        for module, targets in quantizer._target_spaces.items()
    }
    return {"kept": kept, "quantized": quantized}


if __name__ == "__main__":
    main(*sys.argv[1:3])
