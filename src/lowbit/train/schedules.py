"""Learning-rate schedules as pure functions of the epoch (so a resumed run needs no scheduler state).

"onecycle" is the one schedule that changes every step: it is a pure function of (epoch, step in the epoch).
"""

from __future__ import annotations

import math

# Boo et al. discrete cyclical LR, spec §5.1: 10^{0, -.5, -1, -1.5, -2, -1.5, -1, -.5}, starting at the max.
CYCLE = tuple(10.0 ** (-e) for e in (0.0, 0.5, 1.0, 1.5, 2.0, 1.5, 1.0, 0.5))
SCHEDULES = ("constant", "cosine", "step", "cyclical", "onecycle", "poly", "inverse_time")
PER_STEP = frozenset(
    {"onecycle", "poly", "inverse_time"}
)  # schedules whose factor changes within an epoch (fit sets it every step)
# DeepLab's "poly" policy (Chen et al. 2017, the recipe of Boo et al. §5.1): lr · (1 − iteration / iterations)^0.9.
POLY_POWER = 0.9
# One-cycle (Smith & Topin 2019) with torch.optim.lr_scheduler.OneCycleLR's defaults: 30 % of the steps rise from
# lr/25 to lr, the rest fall to lr/25/1e4, both halves cosine.
ONECYCLE_PCT_START, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4


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


def onecycle_factor(t: int, total: int) -> float:
    """Multiplier of the peak LR at step ``t`` (0-based) of ``total`` steps: OneCycleLR's two-phase cosine rule.

    The same phase boundaries as PyTorch (warm-up ends at step 0.3·total − 1, annealing at total − 1), so a fit
    with this schedule follows OneCycleLR step for step (tests/train/test_schedules.py checks it against PyTorch).
    Deviation: momentum is not cycled (OneCycleLR's default 0.85–0.95): the optimiser keeps
    ``TrainConfig.momentum``, so the schedule is one knob, comparable with "cosine" at the same momentum.
    Runs too short for a warm-up (0.3·total − 1 <= 0) start at the peak and anneal; one step is the peak.
    """
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise ValueError(f"onecycle_factor: total={total!r} is not accepted; expected a whole number >= 1")
    if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < total:
        raise ValueError(f"onecycle_factor: t={t!r} is not accepted; expected a whole number in [0, {total})")
    lo, hi = 1.0 / ONECYCLE_DIV, 1.0
    end = lo / ONECYCLE_FINAL_DIV
    warm_end, last = ONECYCLE_PCT_START * total - 1, total - 1
    if total == 1:
        return hi

    def cos(start: float, stop: float, pct: float) -> float:
        return stop + (start - stop) / 2.0 * (math.cos(math.pi * pct) + 1)

    if warm_end <= 0:
        return cos(hi, end, t / last)
    if t <= warm_end:
        return cos(lo, hi, t / warm_end)
    return cos(hi, end, (t - warm_end) / (last - warm_end))


def lr_factor(
    schedule: str,
    epoch: int,
    epochs: int,
    milestones: tuple[int, ...] = (),
    gamma: float = 0.1,
    stage_len: int = 1,
    step: int = 0,
    steps_per_epoch: int = 1,
) -> float:
    """Multiplier of the base learning rate at ``epoch`` (0-based) of ``epochs`` (and, for "onecycle", at batch
    ``step`` of ``steps_per_epoch``; the other schedules hold one value for the whole epoch)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    if schedule == "step":
        return gamma ** sum(epoch >= m for m in milestones)
    if schedule == "cyclical":
        return cyclical_factor(epoch, stage_len)
    if schedule == "onecycle":
        return onecycle_factor(epoch * steps_per_epoch + step, max(1, epochs * steps_per_epoch))
    if schedule == "inverse_time":  # Keras' SGD "decay": lr / (1 + decay · iterations), decay = gamma (the seed's
        # "learning rate ... 1e-4 with learning rate decay as 1e-6", §3.2 and §3.3)
        return 1.0 / (1.0 + gamma * (epoch * steps_per_epoch + step))
    if schedule == "poly":  # per step; reaches 0 after the last step, as DeepLab's (Appendix B: "becomes 0")
        return (1.0 - (epoch * steps_per_epoch + step) / max(1, epochs * steps_per_epoch)) ** POLY_POWER
    raise ValueError(f"schedule={schedule!r} is not accepted; expected one of {SCHEDULES}")
