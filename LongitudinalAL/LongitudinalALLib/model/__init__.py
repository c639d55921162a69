"""Change-segmentation model: network, weights on disk, batched inference."""

from LongitudinalALLib.model.inference import MCStatistics, PoolOutputs, Predictor, select_device
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
    "as_reduction", "binary_entropy", "build_model", "count_parameters", "load_bundled_model",
    "load_weights", "mc_dropout", "save_weights", "select_device",
]
