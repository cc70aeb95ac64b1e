"""Activation points for the matmuls in a user's own code: ``a @ b`` and ``F.scaled_dot_product_attention``.

A twin can only quantize what runs inside a module. Attention written by hand (``q @ k.transpose(-2, -1)``, or
``F.scaled_dot_product_attention(q, k, v)``) calls functions, which ``quantize_`` cannot see. Put a module in
their place, the way ``ActPoint`` marks an activation:

    self.qk = lb.nn.Matmul()                       # scores = self.qk(q, k.transpose(-2, -1))
    self.attend = lb.nn.ScaledDotProductAttention()  # out = self.attend(q, k, v, is_causal=True)

In float both are exactly the torch call. ``quantize_`` swaps them (rules select them by name like any layer) for
``QuantMatmul`` / ``QuantScaledDotProductAttention``, which quantize every matmul operand with the activation
quantizer the rule gives (they have no weights; a weight quantizer is ignored):

    QuantMatmul:     â = A(a) (``act_quant``), b̂ = A_b(b) (``act_quants["b"]``, a copy: the operands differ in range)
    QuantSDPA:       Q̂, K̂, V̂ (``act_quant`` for Q, copies for "k", "v") and the probabilities P̂ (copy "attn"):
                     out = dropout(A_attn(softmax(Q̂K̂ᵀ·scale + mask))) V̂
                     (is_causal, attn_mask bool/float, dropout_p, scale and enable_gqa as torch has them)

The roles and their order follow ``QuantMultiheadAttention`` (Q before scaling, P before dropout; the SDPA output
is left to the next layer's input quantizer, e.g. the out-projection). With float activations the SDPA twin calls
``F.scaled_dot_product_attention`` itself (fused kernels); with quantizers it restates the math above.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import Quantizer
from ..quantizers.base import float32_under_autocast
from .attention import additive_mask
from .qmodule import QuantMixin, quantizer_copies, register_twin


class _OperandRoles(QuantMixin):
    """Shared by the matmul twins: no weights, the act template for the first operand, copies for the others."""

    roles: tuple[str, ...] = ()
    quant_weight_names: tuple[str, ...] = ()  # weight hooks (INQ, freeze, post_step) skip these layers

    @staticmethod
    def weight_names_of(module: nn.Module) -> tuple[str, ...]:
        return ()

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "act_quant":  # a new template: new per-role copies
            super().__setattr__("act_quants", quantizer_copies(value, self.roles))

    def _set_quantizers(self, weight_quant: Quantizer | None, act_quant: Quantizer | None) -> None:
        self.weight_quant = None  # nothing to quantize
        self.act_quant = act_quant

    @classmethod
    def from_float(cls, module: nn.Module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        q = cls()
        q.train(module.training)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def quantize_role(self, role: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.act_quant is None else self.act_quants[role](float32_under_autocast(x))


class Matmul(nn.Module):
    """``torch.matmul(a, b)`` as a module, so that ``quantize_`` can quantize its operands."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


@register_twin(Matmul)
class QuantMatmul(_OperandRoles, Matmul):
    """``torch.matmul(A(a), A_b(b))``."""

    roles = ("b",)

    def __init__(self):
        super().__init__()
        self._set_quantizers(None, None)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.quantize_input(a), self.quantize_role("b", b))


class ScaledDotProductAttention(nn.Module):
    """``F.scaled_dot_product_attention`` as a module, so that ``quantize_`` can quantize Q, K, V and P."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa
        )


@register_twin(ScaledDotProductAttention)
class QuantScaledDotProductAttention(_OperandRoles, ScaledDotProductAttention):
    """SDPA with quantized Q, K, V and attention probabilities (module docstring)."""

    roles = ("k", "v", "attn")

    def __init__(self):
        super().__init__()
        self._set_quantizers(None, None)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        if self.act_quant is None:
            return super().forward(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        q, k, v = self.quantize_input(query), self.quantize_role("k", key), self.quantize_role("v", value)
        if enable_gqa:  # fewer K/V heads than Q heads: each K/V head serves a group of Q heads
            group = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
        scores = (q * (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)) @ k.transpose(-2, -1)
        if is_causal and attn_mask is not None:
            raise ValueError("ScaledDotProductAttention: pass attn_mask or is_causal=True, not both (as torch)")
        if is_causal:
            attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril_()
        # SDPA's bool masks say where attention is allowed (True = attend), the opposite of MHA's
        mask = additive_mask(~attn_mask if attn_mask is not None and attn_mask.dtype == torch.bool else attn_mask,
                             scores.dtype, "attn_mask")  # fmt: skip
        if mask is not None:
            scores = scores + mask
        p = self.quantize_role("attn", F.softmax(scores, dim=-1))
        if dropout_p > 0.0:
            p = F.dropout(p, p=dropout_p)
        return p @ v
