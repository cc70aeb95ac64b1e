"""Mixed precision for ``fit``: ``TrainConfig.amp`` = "off" | "bf16" | "fp16".

The forward (the task's loss) runs under ``torch.autocast``: matrix products and convolutions in the low
precision, the rest as autocast decides. Fake quantization stays in float32: the quantized layers hand their
activation quantizers float32 (``quantizers.base.float32_under_autocast``), because the grid arithmetic (x / Δ,
rounding to an integer code, clamping at the grid ends) in bfloat16 — 8 significant bits — would round codes to
the wrong level and put the output off the grid; the weights are float32 parameters, so weight quantizers already
see float32. What the layer then multiplies is the float32 grid value cast to the low precision by autocast, as
for any weight under AMP.

fp16 has a narrow exponent range: its gradients are scaled (``torch.amp.GradScaler``) so small ones do not
flush to zero, and a step whose gradients overflowed is skipped. bf16 has float32's range and needs no scaler.
The scaler's state goes into the checkpoint, so a resumed fp16 run is exact too.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

AMP_MODES = ("off", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def device_type(device: str) -> str:
    return torch.device(device).type


def autocast(amp: str, device: str):
    """The context the forward runs in: ``torch.autocast`` for bf16 / fp16, nothing for "off"."""
    if amp == "off":
        return nullcontext()
    dtype = _DTYPES[amp]
    kind = device_type(device)
    if not torch.amp.autocast_mode.is_autocast_available(kind):
        raise ValueError(f"TrainConfig.amp={amp!r}: torch has no autocast for device {device!r}; use amp = 'off'")
    return torch.autocast(kind, dtype=dtype)


def make_scaler(amp: str, device: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (None otherwise)."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler(device_type(device))
