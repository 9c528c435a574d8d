"""Export benchmarks: exported ONNX accuracy and latency against the search's own figures."""
