"""``device = "auto"``: cuda where there is one, else cpu, at use; a job's config keeps "auto" (same id anywhere)."""

from __future__ import annotations

import torch

from lowbit.train import TrainConfig


def test_auto_resolves_at_use_and_stays_auto_in_the_config():
    cfg = TrainConfig(device="auto")
    assert cfg.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert cfg.to_dict()["device"] == "auto"
    assert TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert TrainConfig(device="cpu").to_dict()["device"] == "cpu"
