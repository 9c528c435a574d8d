"""Run without autoc (torch and executorch.runtime only): run an ExecuTorch program on saved images.

Usage: python executorch_standalone_check.py MODEL.pte IMAGES.pt OUT.pt. IMAGES is (N, C, H, W);
the program takes one image at a time; OUT gets its logits (N, classes).
"""
import sys

import torch
from executorch.runtime import Runtime


def main(model_path: str, images_path: str, out_path: str) -> None:
    method = Runtime.get().load_program(model_path).load_method("forward")
    images = torch.load(images_path)
    logits = torch.cat([method.execute([images[i : i + 1].contiguous()])[0] for i in range(images.shape[0])])
    assert "autoc" not in sys.modules
    torch.save(logits, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
