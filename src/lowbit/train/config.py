"""The training config: every knob of ``fit`` in one validated dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..config import check_keys
from .schedules import SCHEDULES

OPTIMIZERS = ("adam", "sgd", "nesterov")


@dataclass
class TrainConfig:
    epochs: int = 10  # passes over the training set
    batch_size: int = 128
    lr: float = 1e-3  # base learning rate
    optimizer: str = "adam"  # "adam" | "sgd" | "nesterov" (SGD with Nesterov momentum)
    momentum: float = 0.9  # SGD/Nesterov only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "constant" | "cosine" | "step" | "cyclical" (spec §5.1) | "onecycle" (per step)
    milestones: tuple[int, ...] = ()  # epochs at which "step" multiplies the lr by gamma
    gamma: float = 0.1
    cycle_stage: int = 1  # epochs per stage of the cyclical schedule (T_s, spec §11.19)
    lipschitz: float = 0.0  # λ of the Lipschitz regulariser (spec §5.2; the paper uses 1e-4)
    grad_clip: float = 0.0  # max global gradient norm (0 = off)
    seed: int = 0  # shuffling and dropout
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ... (model and batches are moved there)
    # learning-rate factor per parameter group: {fnmatch pattern over named_parameters(): factor}; multiplies any
    # factor the layer's quantizer declares (BinaryConnect lr_scale="glorot"); see train/param_groups.py
    lr_scale: dict[str, float] = field(default_factory=dict)
    calibrate_batches: int = 4  # batches that set uncalibrated quantizer ranges before training (0 = off)

    def __post_init__(self):
        def need(cond: bool, field: str, accepted: str):
            if not cond:
                raise ValueError(f"TrainConfig.{field}={getattr(self, field)!r} is not accepted; expected {accepted}")

        def whole(v, lo):
            return isinstance(v, int) and not isinstance(v, bool) and v >= lo

        need(whole(self.epochs, 0), "epochs", "a whole number >= 0")
        need(whole(self.batch_size, 1), "batch_size", "a whole number >= 1")
        need(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", "a positive number")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self.lipschitz >= 0, "lipschitz", "a number >= 0")
        need(whole(self.cycle_stage, 1), "cycle_stage", "a whole number >= 1")
        need(whole(self.seed, 0), "seed", "a whole number >= 0")
        need(whole(self.calibrate_batches, 0), "calibrate_batches", "a whole number >= 0 (0 = no calibration)")
        need(
            isinstance(self.device, str) and self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "device",
            "'cpu', 'cuda[:N]' or 'mps'",
        )
        self.milestones = tuple(self.milestones)

        def factor(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0

        need(
            isinstance(self.lr_scale, dict) and all(isinstance(k, str) and factor(v) for k, v in self.lr_scale.items()),
            "lr_scale",
            "a mapping {parameter-name pattern: positive factor}, e.g. {'classifier.*': 0.1}",
        )
        self.lr_scale = {k: float(v) for k, v in self.lr_scale.items()}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_keys(d, cls, "TrainConfig")
        return cls(**d)
