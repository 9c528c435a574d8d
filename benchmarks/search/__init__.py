"""Search benchmarks: found networks against MobileNetV2 baselines, hypervolume against random search."""
