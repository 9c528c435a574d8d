"""Latency prediction: block lookup tables measured with ONNX Runtime, device profiles, calibration,
whole-network validation, and an energy estimate beside latency."""
from autoc.latency.calibrate import calibrate_correction, fit_correction, measure_networks
from autoc.latency.energy import EnergyCoefficients, energy_mj
from autoc.latency.measure import Measurement, measure_interleaved, measure_onnx
from autoc.latency.model import LatencyModel, LookupTableLatencyModel, open_host_model
from autoc.latency.profile import Correction, DeviceProfile, UnitPrior, load_profile, matches_host, save_profile
from autoc.latency.validate import kendall_tau, validation_figures

__all__ = [
    "Correction",
    "DeviceProfile",
    "EnergyCoefficients",
    "LatencyModel",
    "LookupTableLatencyModel",
    "Measurement",
    "UnitPrior",
    "calibrate_correction",
    "energy_mj",
    "fit_correction",
    "kendall_tau",
    "load_profile",
    "matches_host",
    "measure_interleaved",
    "measure_networks",
    "measure_onnx",
    "open_host_model",
    "save_profile",
    "validation_figures",
]
