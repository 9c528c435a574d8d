"""Run without autoc (torch only): load a torch.export program and run it on saved inputs.

Usage: python pt2_standalone_check.py MODEL.pt2 INPUTS.pt OUT.pt. INPUTS holds a list of image
batches (N, C, H, W); OUT gets the list of the program's outputs, one per batch.
"""
import sys

import torch


def main(model_path: str, inputs_path: str, out_path: str) -> None:
    program = torch.export.load(model_path).module()
    with torch.no_grad():
        outputs = [program(x) for x in torch.load(inputs_path)]
    assert "autoc" not in sys.modules
    torch.save(outputs, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
