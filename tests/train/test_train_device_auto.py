"""``device = "auto"``: cuda where there is one, else cpu, resolved where the device is used; a job's config keeps
"auto" (the same id on any machine)."""

from __future__ import annotations

import torch
from torch import nn

from lowbit.train import TrainConfig
from lowbit.train.distributed import resolve_device
from lowbit.train.loop import place


def test_auto_resolves_at_use_and_stays_auto_in_the_config():
    here = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = TrainConfig(device="auto")
    assert resolve_device(cfg.device) == here
    assert next(place(nn.Linear(2, 2), cfg.device).parameters()).device.type == here
    assert cfg.to_dict()["device"] == "auto"
    assert TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert TrainConfig(device="cpu").to_dict()["device"] == "cpu"
