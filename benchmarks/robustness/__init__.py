"""Robustness benchmarks: bad inputs and faults across every command."""
