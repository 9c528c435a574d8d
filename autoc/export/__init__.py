"""Portable results of a stored study: ONNX with int8 QDQ, layer tables, other tools' formats."""
