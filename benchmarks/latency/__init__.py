"""Latency model benchmarks: prediction accuracy on held-out networks, and where its error comes from."""
