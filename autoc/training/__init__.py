"""Training primitives shared by teachers, supernets, estimates and reference training:
short loops on in-memory tensors, accuracy, and the device the steps run on."""
from autoc.training.compute import trained_on, training_device
from autoc.training.loop import TrainConfig, accuracy, recalibrate_batchnorm, train

__all__ = ["TrainConfig", "accuracy", "recalibrate_batchnorm", "train", "trained_on", "training_device"]
