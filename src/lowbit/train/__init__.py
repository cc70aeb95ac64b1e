"""Training: the loop, configs, schedules, regularisers, checkpoints."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .inq_fit import fit_inq
from .loop import classification_loss, epoch_batches, fit, load_model_state, make_optimizer
from .regularizers import lipschitz, quantizer_regularizers
from .schedules import cyclical_factor, lr_factor

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "classification_loss",
    "cyclical_factor",
    "epoch_batches",
    "fit",
    "fit_inq",
    "lipschitz",
    "load_checkpoint",
    "load_model_state",
    "lr_factor",
    "make_optimizer",
    "quantizer_regularizers",
    "save_checkpoint",
]
