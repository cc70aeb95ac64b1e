"""Loss terms that training adds on top of the task loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..api import quantizable_layers
from ..quantizers import Quantizer


def quantizer_regularizers(model: nn.Module) -> torch.Tensor | None:
    """Sum of every submodule's ``regularizer()`` (e.g. PACT's λ_α·α², spec §3)."""
    terms = [m.regularizer() for m in model.modules() if isinstance(m, Quantizer)]  # base-class hook
    terms = [t for t in terms if t is not None]
    return torch.stack([t.reshape(()) for t in terms]).sum() if terms else None


def lipschitz(model: nn.Module) -> torch.Tensor:
    """L_lip = 0.5·Σ_l ||W_lᵀW_l − I||_F² over conv/linear FP32 shadow weights (spec §5.2).

    conv: W_l = weight.reshape(C_out, -1).T, so WᵀW is C_out×C_out; linear: W_l = weight.T. Only conv and
    linear layers count (float or quantized twins): activation points and recurrent layers are skipped.
    """
    total = None
    for _, m in quantizable_layers(model):
        if not isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        w = m.weight.reshape(m.weight.shape[0], -1)  # (C_out, fan_in); WᵀW of spec = w wᵀ
        gram = w @ w.t()
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        term = 0.5 * (gram - eye).pow(2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


@torch.no_grad()
def apply_post_step(model: nn.Module) -> None:
    """Let weight quantizers constrain their latent weights after an optimizer step.

    A quantizer that defines ``post_step(weight)`` (e.g. BinaryConnect clipping w to [-H, H], spec §4b)
    gets each weight it quantizes, in place.
    """
    from ..nn import QuantMixin

    for m in model.modules():
        if isinstance(m, QuantMixin) and m.weight_quant is not None:  # post_step: a no-op unless overridden
            for n in m.quant_weight_names:
                m.weight_quantizer(n).post_step(getattr(m, n))


def step_terms(model: nn.Module) -> tuple[Callable[[], torch.Tensor | None], Callable[[], None]]:
    """``(regularizers, post_step)`` for one training run of ``model``: ``quantizer_regularizers`` and
    ``apply_post_step`` with the modules that take part found once, not on every step (a small model's step spent
    a tenth of its time walking the module tree). Only quantizers that override ``regularizer`` / ``post_step``
    take part; the others return None / do nothing. The module tree must not change during the run."""
    from ..nn import QuantMixin

    base_reg, base_post = Quantizer.regularizer, Quantizer.post_step
    regs = [m for m in model.modules() if isinstance(m, Quantizer) and type(m).regularizer is not base_reg]
    posts = [
        (m.weight_quantizer(n), m, n)
        for m in model.modules()
        if isinstance(m, QuantMixin) and m.weight_quant is not None
        for n in m.quant_weight_names
    ]
    posts = [(q, m, n) for q, m, n in posts if type(q).post_step is not base_post]

    def regularizers() -> torch.Tensor | None:
        terms = [t for t in (q.regularizer() for q in regs) if t is not None]
        return torch.stack([t.reshape(()) for t in terms]).sum() if terms else None

    @torch.no_grad()
    def post_step() -> None:
        for q, m, n in posts:
            q.post_step(getattr(m, n))

    return regularizers, post_step
