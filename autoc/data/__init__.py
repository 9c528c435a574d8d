"""Datasets: a name (plus a path) -> normalised in-memory train and validation tensors."""
from autoc.data.datasets import DATASET_NAMES, DEFAULT_DATASET, DatasetSplit, load_dataset

__all__ = ["DATASET_NAMES", "DEFAULT_DATASET", "DatasetSplit", "load_dataset"]
