from autoc.arch.builder import AutocNet, build_model
from autoc.arch.config import ArchConfig, BlockOp, StageConfig
from autoc.arch.netspec import BlockSpec, ConvSpec, NetSpec, build_netspec

__all__ = [
    "ArchConfig", "AutocNet", "BlockOp", "BlockSpec", "ConvSpec", "NetSpec", "StageConfig",
    "build_model", "build_netspec",
]
