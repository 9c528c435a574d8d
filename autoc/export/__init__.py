"""Portable results: policy files (schema autoc.policy/1), ONNX with int8 QDQ, other tools' formats."""
from autoc.export.policy_file import PolicyFile, load_policy, write_policy

__all__ = ["PolicyFile", "load_policy", "write_policy"]
