"""Networks -> ONNX bytes (fp32, or int8 QDQ on a policy's int8 layers), for latency
measurement and for export alike."""
from autoc.onnx.export import export_onnx, policy_int8_layers

__all__ = ["export_onnx", "policy_int8_layers"]
