"""Accuracy-estimate benchmarks: how steady the estimate is, how it ranks against the reference recipe."""
