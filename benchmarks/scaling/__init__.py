"""Scaling benchmarks: search throughput with Ray workers, training steps on CPU and GPU."""
