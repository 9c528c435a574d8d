"""Weight-sharing supernet (Once-for-All style): elastic depth, width/keep, kernel and expansion.

Seam for the search::

    supernet = load_or_train_supernet(space, data, cache_dir=runs_dir / "cache", config=SupernetConfig())
    teacher = supernet.largest(calibration=data.train_x)      # standalone AutocNet, KD teacher
    model = supernet.extract(candidate)                        # standalone AutocNet, pure function
"""
from autoc.supernet.cache import (
    SupernetRun,
    load_or_train_supernet,
    open_supernet,
    supernet_cache_path,
    supernet_for_space,
)
from autoc.supernet.elastic import ElasticConv, Supernet
from autoc.supernet.extract import calibrate_batchnorm, extract
from autoc.supernet.subnets import largest_candidate, random_candidate, smallest_candidate
from autoc.supernet.train import SupernetConfig, train_supernet

__all__ = [
    "ElasticConv",
    "Supernet",
    "SupernetConfig",
    "SupernetRun",
    "calibrate_batchnorm",
    "extract",
    "largest_candidate",
    "load_or_train_supernet",
    "open_supernet",
    "random_candidate",
    "smallest_candidate",
    "supernet_cache_path",
    "supernet_for_space",
    "train_supernet",
]
