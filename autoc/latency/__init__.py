"""Latency prediction: block lookup tables measured with ONNX Runtime, device profiles, calibration."""
from autoc.latency.calibrate import calibrate_overhead, measure_networks
from autoc.latency.measure import Measurement, measure_interleaved, measure_onnx
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import DeviceProfile, load_profile, matches_host, save_profile

__all__ = [
    "DeviceProfile",
    "LatencyModel",
    "LookupTableLatencyModel",
    "Measurement",
    "calibrate_overhead",
    "load_profile",
    "matches_host",
    "measure_interleaved",
    "measure_networks",
    "measure_onnx",
    "open_host_model",
    "save_profile",
]
