"""How raw images become a model's input: the one definition the data path applies and the
policy file and ONNX metadata hand over (a model fed anything else scores near chance).

The steps, in order, for an image of any size with pixel values 0..``pixel_max``:

1. colour: ``grey`` images are repeated to the model's ``channels``; ``rgb`` ones are RGB;
2. resize: the shorter side to ``input_size`` by bilinear interpolation (``align_corners``
   false; antialiased when ``antialias``), then a centre crop to ``input_size`` square
   (a square image needs no crop; an image already at ``input_size`` is not resized);
3. scale: divide by ``pixel_max`` (255 for 8-bit images, 16 for scikit-learn's digits);
4. normalise: per channel, subtract ``mean`` and divide by ``std`` (those of the training
   split's scaled pixels).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import torch

from autoc.errors import DataError

RESIZE_METHOD = "bilinear"
RESIZE_FIT = "shorter-side-then-centre-crop"
COLOURS = ("rgb", "grey")


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """A dataset's preprocessing: input size and channels, resize, pixel scale, mean/std, class names."""

    input_size: int
    channels: int = 3
    colour: str = "rgb"  # of the source images; "grey" ones are repeated to ``channels``
    pixel_max: float = 255.0  # raw pixel value that scales to 1.0
    antialias: bool = True  # of the bilinear resize
    mean: tuple[float, ...] = field(default=(0.0, 0.0, 0.0))
    std: tuple[float, ...] = field(default=(1.0, 1.0, 1.0))
    class_names: tuple[str, ...] = ()

    def normalise_(self, x: torch.Tensor) -> torch.Tensor:
        """Step 4 in place on scaled N x C x H x W pixels."""
        shape = (1, self.channels, 1, 1)
        return x.sub_(torch.tensor(self.mean, dtype=x.dtype).view(shape)).div_(
            torch.tensor(self.std, dtype=x.dtype).view(shape))

    def at_size(self, input_size: int) -> "Preprocessing":
        """The same preprocessing resizing to ``input_size``: a candidate searched at another
        resolution than the one the data was loaded at is fed at its own."""
        return replace(self, input_size=input_size)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (policy files, ONNX metadata)."""
        return {
            "input_size": self.input_size,
            "channels": self.channels,
            "colour": self.colour,
            "resize": {"method": RESIZE_METHOD, "size": self.input_size, "fit": RESIZE_FIT,
                       "antialias": self.antialias, "align_corners": False},
            "pixel_max": self.pixel_max,
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocessing":
        """Read the JSON form; a field of the wrong kind is a DataError naming it."""
        try:
            resize = data.get("resize", {})
            if resize.get("method", RESIZE_METHOD) != RESIZE_METHOD or resize.get("fit", RESIZE_FIT) != RESIZE_FIT:
                raise ValueError(f"resize {dict(resize)} is not {RESIZE_METHOD} {RESIZE_FIT}, the only one autoc writes")
            pre = cls(
                input_size=int(data["input_size"]),
                channels=int(data.get("channels", 3)),
                colour=str(data.get("colour", "rgb")),
                pixel_max=float(data.get("pixel_max", 255.0)),
                antialias=bool(resize.get("antialias", True)),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                class_names=tuple(str(c) for c in data.get("class_names", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"preprocessing {dict(data) if isinstance(data, Mapping) else data!r} is malformed "
                            f"({type(exc).__name__}: {exc}); write it again with autoc export") from None
        if pre.colour not in COLOURS or len(pre.mean) != pre.channels or len(pre.std) != pre.channels:
            raise DataError(f"preprocessing has colour {pre.colour!r} and {len(pre.mean)} means, {len(pre.std)} stds "
                            f"for {pre.channels} channels; expected colour in {COLOURS} and one mean and std per "
                            "channel: write it again with autoc export")
        return pre

    def metadata(self) -> dict[str, str]:
        """ONNX ``metadata_props``: the whole as JSON under ``autoc.preprocessing``, and simple keys."""
        return {
            "autoc.preprocessing": json.dumps(self.to_dict()),
            "input_size": str(self.input_size),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "class_names": json.dumps(list(self.class_names)),
        }
