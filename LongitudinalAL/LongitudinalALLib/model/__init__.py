"""Change-segmentation model: network, weights on disk, batched inference."""

from LongitudinalALLib.model.devices import available_devices, resolve_device
from LongitudinalALLib.model.inference import MCStatistics, PoolOutputs, Predictor
from LongitudinalALLib.model.network import (
    ChangeSegNet,
    ModelConfig,
    build_model,
    count_parameters,
    mc_dropout,
)
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction, binary_entropy
from LongitudinalALLib.model.weights import load_bundled_model, load_weights, save_weights

__all__ = [
    "ChangeSegNet", "MCStatistics", "ModelConfig", "PixelReduction", "PoolOutputs", "Predictor",
    "as_reduction", "available_devices", "binary_entropy", "build_model", "count_parameters",
    "load_bundled_model", "load_weights", "mc_dropout", "resolve_device", "save_weights",
]
