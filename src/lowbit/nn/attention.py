"""Quantized twin of nn.MultiheadAttention: every operand of every matmul is quantized.

Where the quantizers sit (research: Brevitas' ``QuantMultiheadAttention`` quantizes the in-projection's input and
weights, the scaled Q, the transposed K, V, the softmax output and the out-projection's input and weights; torchao's
int8 SDPA, ``torchao::qscaled_dot_product``, takes a scale and zero point for Q, K, V, the attention probabilities
and the attention output). Here, with the torch names (L target, S source length, H heads, d = E/H):

    x̂ = A_in(x)                         query/key/value inputs: ``act_quant``, the same role as every twin's input
    Q = x̂_q Ŵ_qᵀ + b_q, K = ..., V = ...  Ŵ = the in-projection weights (``in_proj_weight``, or q/k/v_proj_weight)
    Q̂, K̂, V̂ = A_q(Q), A_k(K), A_v(V)      the operands of Q·Kᵀ and P·V, per head-batched (N·H, L|S, d) tensor
    P = softmax(Q̂ K̂ᵀ/√d + mask)
    P̂ = A_attn(P)                        the probabilities (the returned weights are P̂, after dropout)
    O = P̂ V̂                              -> out_proj(O): a QuantLinear quantizes O (its input) and W_o
                                                      (``attn.out_proj`` is a layer of its own for rules/keep_float)

Q is quantized before the 1/√d scaling (torchao's placement: Q is what a fused int8 SDPA kernel takes; Brevitas
quantizes Q/√d, the same grid up to that factor). P is quantized before dropout, so the grid is the one the
deployed (dropout-free) model uses and a learned range (PACT α) sees the probabilities, not their 1/(1-p) rescale.
The attention output O is left to ``out_proj``'s input quantizer (Brevitas' ``out_proj_input_quant``, torchao's
output scale), so it is not quantized twice. The MHA's result (after out_proj) stays float, like every twin's
output: the next layer quantizes its input.

Roles get their own deep copy of the activation template (``act_quants["q"|"k"|"v"|"attn"]``, each calibrates
its own step); the template itself quantizes the inputs, so every quantizer runs in every forward (no unused
parameters under DDP). Q, K, V and the inputs are signed: an unsigned template (PACT, unsigned uniform) maps
their negative half to 0 — for attention use a signed or asymmetric one, e.g. ``uniform(signed=True)`` or
``uniform(symmetric=False)`` (min-max with a zero point, torchao's int8 SDPA scheme). Weights: a packed
``in_proj_weight`` (3E, E) has one quantizer (one step for W_q, W_k, W_v together, Brevitas' packed default;
``granularity="per_channel"`` gives one per row); separate q/k/v_proj_weight (kdim/vdim != embed_dim) get the
template for W_q and a copy each for W_k and W_v (``weight_quants``).

The forward restates ``F.multi_head_attention_forward``'s math (need_weights path) with those quantizers: batch_first,
unbatched inputs, key_padding_mask and attn_mask (bool or additive float), need_weights, average_attn_weights,
dropout, kdim/vdim, bias, add_bias_kv and add_zero_attn. ``is_causal`` with an ``attn_mask`` is a hint (the mask
is used, as torch does); alone it builds the causal mask (where torch raises). With no quantizers it equals
torch's module to float rounding (tests compare at 1e-6). It never takes torch's fused fast path, which reads
``in_proj_weight``/``out_proj.weight`` directly. Nested-tensor inputs are refused.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from ..quantizers import Quantizer
from ..quantizers.base import float32_under_autocast
from .linear import QuantLinear
from .qmodule import QUANT_TWINS, QuantMixin, adopt_parameters, quantizer_copies, register_twin

ROLES = ("q", "k", "v", "attn")

# MHA's out_proj is this Linear subclass (it only blocks torch's dynamic quantization): for lowbit a Linear.
QUANT_TWINS.setdefault(NonDynamicallyQuantizableLinear, QuantLinear)


def in_proj_names(module: nn.MultiheadAttention) -> tuple[str, ...]:
    """The in-projection weight parameter(s) of an MHA module: packed, or one per Q/K/V."""
    if module._qkv_same_embed_dim:
        return ("in_proj_weight",)
    return ("q_proj_weight", "k_proj_weight", "v_proj_weight")


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype, name: str) -> torch.Tensor | None:
    """A bool mask (True = masked) as 0/-inf, a float mask as it is (added to the scores)."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    if mask.is_floating_point():
        return mask.to(dtype)
    raise TypeError(f"MultiheadAttention: {name} of dtype {mask.dtype} is not accepted; expected bool or float")


@register_twin(nn.MultiheadAttention)
class QuantMultiheadAttention(QuantMixin, nn.MultiheadAttention):
    """nn.MultiheadAttention with quantized in-projection weights and Q, K, V, P (and the inputs); see above."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._set_quantizers(None, None)

    @property
    def quant_weight_names(self) -> tuple[str, ...]:
        return in_proj_names(self)

    @staticmethod
    def weight_names_of(module: nn.MultiheadAttention) -> tuple[str, ...]:
        """``quant_weight_names`` of the twin a float module would become (INQ asks before swapping)."""
        return in_proj_names(module)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        # Assigning a template (quantize_, INQ, freeze, load) rebuilds its copies, so they never go stale.
        if name == "weight_quant":
            super().__setattr__("weight_quants", quantizer_copies(value, self.quant_weight_names[1:]))
        elif name == "act_quant":
            super().__setattr__("act_quants", quantizer_copies(value, ROLES))

    @classmethod
    def from_float(cls, module: nn.MultiheadAttention, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        with torch.device("meta"):
            q = cls(
                module.embed_dim,
                module.num_heads,
                dropout=module.dropout,
                bias=module.in_proj_bias is not None,
                add_bias_kv=module.bias_k is not None,
                add_zero_attn=module.add_zero_attn,
                kdim=module.kdim,
                vdim=module.vdim,
                batch_first=module.batch_first,
            )
        adopt_parameters(q, module)
        q.out_proj = module.out_proj  # the same module: quantize_ swaps it as a layer of its own
        q._set_quantizers(weight_quant, act_quant)
        return q

    def weight_quantizer(self, name: str = "in_proj_weight") -> Quantizer | None:
        q = self.weight_quant
        if q is None or q.per_parameter_state or name == self.quant_weight_names[0]:
            return q
        return self.weight_quants[name]

    def quantize_role(self, role: str, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation quantizer of ``role`` ("input", "q", "k", "v", "attn"); identity when float."""
        if self.act_quant is None:
            return x
        x = float32_under_autocast(x)
        return self.act_quant(x) if role == "input" else self.act_quants[role](x)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if query.is_nested or key.is_nested or value.is_nested:
            raise ValueError("QuantMultiheadAttention: nested-tensor inputs are not accepted; pass padded tensors")
        batched = query.dim() == 3
        same_k, same_v = key is query, value is key  # self-attention: quantize the shared input once

        def seq_first(t: torch.Tensor) -> torch.Tensor:  # (L, N, E), as torch's functional form computes
            if not batched:
                return t.unsqueeze(1)
            return t.transpose(0, 1) if self.batch_first else t

        x_q = self.quantize_role("input", seq_first(query))
        x_k = x_q if same_k else self.quantize_role("input", seq_first(key))
        x_v = x_k if same_v else self.quantize_role("input", seq_first(value))
        if key_padding_mask is not None and not batched:
            key_padding_mask = key_padding_mask.unsqueeze(0)
        tgt_len, bsz, embed_dim = x_q.shape
        if embed_dim != self.embed_dim:
            raise ValueError(f"QuantMultiheadAttention: query has {embed_dim} features, expected {self.embed_dim}")
        heads, head_dim = self.num_heads, self.head_dim

        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.quantized_weight("in_proj_weight").chunk(3)
        else:
            w_q, w_k, w_v = (self.quantized_weight(n) for n in self.quant_weight_names)
        b_q, b_k, b_v = (None, None, None) if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        q, k, v = F.linear(x_q, w_q, b_q), F.linear(x_k, w_k, b_k), F.linear(x_v, w_v, b_v)

        mask = additive_mask(attn_mask, q.dtype, "attn_mask")
        pad_mask = additive_mask(key_padding_mask, q.dtype, "key_padding_mask")
        src_len = k.shape[0]
        if mask is None and is_causal:
            mask = torch.full((tgt_len, src_len), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
        if mask is not None:
            mask = self._check_mask(mask, tgt_len, src_len, bsz)
        if self.bias_k is not None:  # add_bias_kv: one learned key/value appended to every sequence
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            mask = None if mask is None else F.pad(mask, (0, 1))
            pad_mask = None if pad_mask is None else F.pad(pad_mask, (0, 1))

        # (L|S, N, E) -> (N·H, L|S, d)
        q = q.reshape(tgt_len, bsz * heads, head_dim).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * heads, head_dim).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * heads, head_dim).transpose(0, 1)
        if self.add_zero_attn:  # one all-zero key/value appended
            zeros = q.new_zeros(bsz * heads, 1, head_dim)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            mask = None if mask is None else F.pad(mask, (0, 1))
            pad_mask = None if pad_mask is None else F.pad(pad_mask, (0, 1))
        src_len = k.shape[1]
        if pad_mask is not None:
            if tuple(pad_mask.shape) != (bsz, src_len):
                raise ValueError(
                    f"QuantMultiheadAttention: key_padding_mask of shape {tuple(pad_mask.shape)}, "
                    f"expected {(bsz, src_len)}"
                )
            pad_mask = pad_mask.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(bsz * heads, 1, src_len)
            mask = pad_mask if mask is None else mask + pad_mask

        q, k, v = self.quantize_role("q", q), self.quantize_role("k", k), self.quantize_role("v", v)
        q_scaled = q * math.sqrt(1.0 / head_dim)
        if mask is None:
            scores = torch.bmm(q_scaled, k.transpose(-2, -1))
        else:
            scores = torch.baddbmm(mask, q_scaled, k.transpose(-2, -1))
        p = self.quantize_role("attn", F.softmax(scores, dim=-1))
        if self.training and self.dropout > 0.0:
            p = F.dropout(p, p=self.dropout)
        out = torch.bmm(p, v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = self.out_proj(out).view(tgt_len, bsz, -1)

        weights = None
        if need_weights:
            weights = p.view(bsz, heads, tgt_len, src_len)
            weights = weights.mean(dim=1) if average_attn_weights else weights
            weights = weights if batched else weights.squeeze(0)
        if not batched:
            return out.squeeze(1), weights
        return (out.transpose(0, 1) if self.batch_first else out), weights

    def _check_mask(self, mask: torch.Tensor, tgt_len: int, src_len: int, bsz: int) -> torch.Tensor:
        """A 2-D (L, S) mask -> (1, L, S); a 3-D one must be (N·H, L, S)."""
        if mask.dim() == 2 and tuple(mask.shape) == (tgt_len, src_len):
            return mask.unsqueeze(0)
        if mask.dim() == 3 and tuple(mask.shape) == (bsz * self.num_heads, tgt_len, src_len):
            return mask
        raise ValueError(
            f"QuantMultiheadAttention: attn_mask of shape {tuple(mask.shape)}, expected {(tgt_len, src_len)} or "
            f"{(bsz * self.num_heads, tgt_len, src_len)}"
        )
