"""Learning-rate schedules as pure functions of the epoch (so a resumed run needs no scheduler state)."""

from __future__ import annotations

import math

# Boo et al. discrete cyclical LR, spec §5.1: 10^{0, -.5, -1, -1.5, -2, -1.5, -1, -.5}, starting at the max.
CYCLE = tuple(10.0 ** (-e) for e in (0.0, 0.5, 1.0, 1.5, 2.0, 1.5, 1.0, 0.5))
SCHEDULES = ("constant", "cosine", "step", "cyclical")


def cyclical_factor(t: int, stage_len: int = 1) -> float:
    """c[floor(t / T_s) mod 8] (spec §5.1; t and T_s in epochs by default, §11.19).

    Boo et al. Appendix B: for CIFAR-10 one stage per epoch (a cycle of 8 epochs) and a base LR 10 × the last
    LR of the retraining. That last LR is 1e-4 (0.01 ÷10 at 50 and 80, §5.2), so the base is 1e-3 and the LR
    runs 1e-3 -> 1e-5 -> 1e-3, as §5.4 says (40 epochs = 5 cycles); Appendix B's printed "1e-4" contradicts both.
    """
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise ValueError(f"cyclical_factor: t={t!r} is not accepted; expected a whole number >= 0")
    if not isinstance(stage_len, int) or isinstance(stage_len, bool) or stage_len < 1:
        raise ValueError(f"cyclical_factor: stage_len={stage_len!r} is not accepted; expected a whole number >= 1")
    return CYCLE[(t // stage_len) % 8]


def lr_factor(
    schedule: str, epoch: int, epochs: int, milestones: tuple[int, ...] = (), gamma: float = 0.1, stage_len: int = 1
) -> float:
    """Multiplier of the base learning rate at ``epoch`` (0-based) of ``epochs``."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    if schedule == "step":
        return gamma ** sum(epoch >= m for m in milestones)
    if schedule == "cyclical":
        return cyclical_factor(epoch, stage_len)
    raise ValueError(f"schedule={schedule!r} is not accepted; expected one of {SCHEDULES}")
