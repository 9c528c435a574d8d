"""Export formats and their default file suffixes (a light module: the CLI parser reads it)."""

# format -> suffix after runs/<study>/export/trial-N
FORMATS = {
    "policy": ".policy.json",
    "onnx": ".onnx",
    "pt2": ".pt2",
    "executorch": ".pte",
    "torchscript": ".torchscript.pt",
    "state-dict": ".state_dict.pt",
    "nni": ".nni.json",
    "csv": ".layers.csv",
}
