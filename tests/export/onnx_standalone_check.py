"""Run without autoc (onnxruntime, numpy and json only): score an exported ONNX model on raw images,
preprocessed as its metadata says.

Usage: python onnx_standalone_check.py MODEL.onnx IMAGES.npy LABELS.npy OUT.json. IMAGES holds raw
images N x H x W (grey) or N x H x W x 3 (RGB), pixel values 0..pixel_max. Writes {"accuracy",
"batch", "class_names"}.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """N x C x h x w -> N x C x height x width, bilinear with align_corners false (no antialiasing)."""
    def weights(out_size: int, in_size: int):
        src = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
        low = np.minimum(np.floor(src).astype(int), in_size - 1)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (src - low).astype(np.float32)

    y0, y1, wy = weights(height, images.shape[2])
    x0, x1, wx = weights(width, images.shape[3])
    rows = images[:, :, y0, :] * (1 - wy)[:, None] + images[:, :, y1, :] * wy[:, None]
    return rows[:, :, :, x0] * (1 - wx) + rows[:, :, :, x1] * wx


def preprocess(raw: np.ndarray, pre: dict) -> np.ndarray:
    """The steps autoc's preprocessing names: colour, resize and centre crop, scale, normalise."""
    x = raw.astype(np.float32)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    if pre["colour"] == "grey":
        x = np.repeat(x, pre["channels"], axis=1)
    resize, size = pre["resize"], pre["input_size"]
    assert resize["method"] == "bilinear" and resize["fit"] == "shorter-side-then-centre-crop"
    assert not resize["align_corners"]
    height, width = x.shape[2:]
    if (height, width) != (size, size):
        if min(height, width) != size:
            assert not (resize["antialias"] and min(height, width) > size), "antialiased shrinking is not implemented"
            scale = size / min(height, width)
            height, width = max(size, round(height * scale)), max(size, round(width * scale))
            x = resize_bilinear(x, height, width)
        top, left = (height - size) // 2, (width - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    x = x / np.float32(pre["pixel_max"])
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def main(model_path: str, images_path: str, labels_path: str, out_path: str) -> None:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    pre = json.loads(session.get_modelmeta().custom_metadata_map["autoc.preprocessing"])
    x, labels = preprocess(np.load(images_path), pre), np.load(labels_path)
    batch = 50
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])
    assert "autoc" not in sys.modules
    with open(out_path, "w") as out:
        json.dump({"accuracy": float((logits.argmax(1) == labels).mean()), "batch": batch,
                   "class_names": pre["class_names"]}, out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
