"""A user's own model as a space to compress: where it comes from, which channels prune together.

``load_model`` resolves a model reference (``torchvision:resnet18`` or ``package.module:callable``)
and loads the user's weights; ``analyse`` finds the prunable channel groups with Torch-Pruning's
dependency graph; ``choose_channels`` and ``prune`` shrink a copy of the model to a keep ratio per
group, keeping the original channels it chooses; ``compress`` applies a whole ``ModelPolicy``
(keep ratios, and precision, weight bits and sparsity per conv/linear layer).
"""
from autoc.modelspace.compress import ModelPolicy, compress, quantized_layers
from autoc.modelspace.groups import ChannelGroup, ModelStructure, analyse
from autoc.modelspace.prune import ChannelPlan, choose_channels, l1_importance, prune
from autoc.modelspace.reference import load_model, load_weights, weights_digest

__all__ = [
    "ChannelGroup", "ChannelPlan", "ModelPolicy", "ModelStructure", "analyse", "choose_channels", "compress",
    "l1_importance", "load_model", "load_weights", "prune", "quantized_layers", "weights_digest",
]
