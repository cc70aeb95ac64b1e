"""The training config: every knob of ``fit`` in one validated dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..config import check_keys
from .precision import AMP_MODES
from .schedules import SCHEDULES

OPTIMIZERS = ("adam", "sgd", "nesterov")
# Fields added after job ids were first derived from ``to_dict``: left out of it while at their default, so a
# config that does not set them keeps the id (and the run folder) it had (engine/plan.py: job_id).
_LATER_DEFAULTS = {"amp": "off", "channels_last": False, "num_workers": 0, "pin_memory": False}


@dataclass
class TrainConfig:
    """Every knob of ``fit``; ``HELP`` below says what each field does (``lowbit train-config`` prints it)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    cycle_stage: int = 1
    lipschitz: float = 0.0
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "cpu"
    lr_scale: dict[str, float] = field(default_factory=dict)
    calibrate_batches: int = 4
    amp: str = "off"
    channels_last: bool = False
    num_workers: int = 0
    pin_memory: bool = False

    def __post_init__(self):
        def need(cond: bool, field: str, accepted: str):
            if not cond:
                raise ValueError(f"TrainConfig.{field}={getattr(self, field)!r} is not accepted; expected {accepted}")

        def whole(v, lo):
            return isinstance(v, int) and not isinstance(v, bool) and v >= lo

        def number(v, lo: float, above: bool = False, hi: float = math.inf) -> bool:
            """A finite number (not a bool) >= lo (> lo when ``above``) and <= hi: inf and nan are never accepted
            (an infinite learning rate trains a broken model that would be stored as a result)."""
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            return ok and (v > lo if above else v >= lo) and v <= hi

        need(whole(self.epochs, 0), "epochs", "a whole number >= 0")
        need(whole(self.batch_size, 1), "batch_size", "a whole number >= 1")
        need(number(self.lr, 0, above=True), "lr", "a positive number (finite)")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(number(self.momentum, 0, hi=1), "momentum", "a number in [0, 1]")
        need(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}")
        need(number(self.weight_decay, 0), "weight_decay", "a number >= 0 (finite)")
        need(
            isinstance(self.milestones, (list, tuple)) and all(whole(m, 0) for m in self.milestones),
            "milestones",
            "a list of whole numbers >= 0 (epochs)",
        )
        need(number(self.gamma, 0, above=True), "gamma", "a positive number (finite)")
        need(number(self.lipschitz, 0), "lipschitz", "a number >= 0 (finite)")
        need(number(self.grad_clip, 0), "grad_clip", "a number >= 0 (finite; 0 = off)")
        need(whole(self.cycle_stage, 1), "cycle_stage", "a whole number >= 1")
        need(whole(self.seed, 0), "seed", "a whole number >= 0")
        need(whole(self.calibrate_batches, 0), "calibrate_batches", "a whole number >= 0 (0 = no calibration)")
        need(
            isinstance(self.device, str)
            and (self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps")),
            "device",
            "'auto', 'cpu', 'cuda[:N]' or 'mps'",
        )
        need(self.amp in AMP_MODES, "amp", f"one of {AMP_MODES}")
        need(isinstance(self.channels_last, bool), "channels_last", "true or false")
        need(whole(self.num_workers, 0), "num_workers", "a whole number >= 0 (0 = load in the training process)")
        need(isinstance(self.pin_memory, bool), "pin_memory", "true or false")
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
        return {k: v for k, v in d.items() if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_keys(d, cls, "TrainConfig")
        return cls(**d)


HELP = {
    "epochs": "passes over the training set",
    "batch_size": "training samples per step",
    "lr": "base learning rate (finite, > 0)",
    "optimizer": "'adam' (Adam, betas 0.9 / 0.999) | 'sgd' | 'nesterov' (SGD with Nesterov momentum)",
    "momentum": "momentum of 'sgd' / 'nesterov' (Adam ignores it)",
    "weight_decay": "L2 weight decay of the optimizer",
    "schedule": "learning-rate schedule: 'constant' | 'cosine' (to 0 over the epochs) | 'step' (x gamma at each "
    "milestone) | 'cyclical' (spec §5.1) | 'onecycle' (per step) | 'poly' (DeepLab: (1 - step/steps)^0.9, per step) | "
    "'inverse_time' (lr / (1 + gamma·step), Keras' decay)",
    "milestones": "epochs at which 'step' multiplies the lr by gamma",
    "gamma": "the 'step' schedule's factor; the 'inverse_time' schedule's decay per step (lr / (1 + gamma·step))",
    "cycle_stage": "epochs per stage of the cyclical schedule (T_s, spec §11.19)",
    "lipschitz": "λ of the Lipschitz regulariser (spec §5.2; the paper uses 1e-4; 0 = off)",
    "grad_clip": "max global gradient norm (0 = off)",
    "seed": "shuffling and dropout (a study sets it from its seed axis)",
    "device": "'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1', 'mps' (model and batches are moved "
    "there; under torchrun / --nproc, 'auto' and 'cuda' mean each process's own GPU)",
    "lr_scale": "learning-rate factor per parameter group: {fnmatch pattern over named_parameters(): factor}; "
    "multiplies any factor the layer's quantizer declares (BinaryConnect lr_scale='glorot'; train/param_groups.py)",
    "calibrate_batches": "batches that set uncalibrated quantizer ranges before training (0 = off)",
    "amp": "mixed precision: 'off' | 'bf16' (bfloat16 autocast) | 'fp16' (float16 autocast + gradient scaler); "
    "fake quantization always computes in float32 (train/precision.py)",
    "channels_last": "put the model's 4-d weights and the 4-d batches in channels-last layout (faster convolutions "
    "on GPUs with tensor cores)",
    "num_workers": "DataLoader worker processes that collate batches (0 = in the training process)",
    "pin_memory": "collate into pinned memory for asynchronous copies to a CUDA device (ignored on CPU)",
}
