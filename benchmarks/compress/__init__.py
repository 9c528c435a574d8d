"""Benchmarks of autoc compress: a user's own model against uniform compression baselines."""
