"""PyTorch's fused inference paths that would bypass the quantizers of a quantized transformer, switched off.

In ``eval()`` under ``torch.no_grad()``, ``nn.TransformerEncoderLayer.forward`` hands ``self_attn.in_proj_weight``,
``self_attn.out_proj.weight``, ``linear1.weight`` and ``linear2.weight`` straight to
``torch._transformer_encoder_layer_fwd`` (when its ``why_not_sparsity_fast_path`` checks pass: batch_first, biases,
relu/gelu, an even head count, no hooks, no autograd, ...), and ``nn.TransformerEncoder`` packs a padded batch into
a nested tensor for it. The children's ``forward`` never runs, so neither do their quantizers: a quantized model
evaluated as usual computes with float weights (a W2 encoder classifier's logits moved by 0.13).
``nn.MultiheadAttention``'s own fast path reads its weights the same way; its twin (``QuantMultiheadAttention``)
has its own forward, and a float MHA that is kept float reads float weights correctly.

``disable_fast_paths(model)`` (``quantize_`` calls it on every model it returns) makes the condition impossible for
every part of the model that holds a quantized twin:

- each ``nn.TransformerEncoderLayer`` becomes a ``SlowPathTransformerEncoderLayer`` (its class is swapped in place:
  same object, parameters, children and hooks; only ``forward`` changes), whose forward is torch's own slow path
  (``_sa_block``/``_ff_block``, which call the children);
- each ``nn.TransformerEncoder`` gets ``use_nested_tensor = False``, the attribute torch consults before packing.

Layers and encoders that hold no twin are left alone (all float: their fast path computes the right thing).
``nn.TransformerDecoderLayer``/``nn.TransformerDecoder``/``nn.Transformer`` have no fast path of their own (torch
2.4-2.13); they reach the encoder pieces above.
"""

from __future__ import annotations

import torch
from torch import nn

from .qmodule import QuantMixin


class SlowPathTransformerEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` that always runs the unfused path (its children's own forwards)."""

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        x = src  # torch's slow path (Xiong et al. 2020, Fig. 1, as torch cites it), masks passed as given
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
        return self.norm2(x + self._ff_block(x))


def _holds_twin(module: nn.Module) -> bool:
    return any(isinstance(m, QuantMixin) for m in module.modules())


def disable_fast_paths(model: nn.Module) -> nn.Module:
    """Switch off torch's fused transformer paths wherever they would skip a quantized twin (see above); in place."""
    for m in model.modules():
        if type(m) is nn.TransformerEncoderLayer and _holds_twin(m):
            m.__class__ = SlowPathTransformerEncoderLayer
        elif isinstance(m, nn.TransformerEncoder) and _holds_twin(m):
            m.use_nested_tensor = False
    return model
