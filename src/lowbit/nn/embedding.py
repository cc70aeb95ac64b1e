"""Quantized twin of nn.Embedding: the table is quantized on read; the looked-up rows are what the model gets.

Weights only: an embedding's input is a tensor of indices, there is no activation to quantize, so the twin drops
the activation quantizer a rule gives it (``act_quant`` is None, as for a ``QuantActPoint``'s weight).

Granularity: the weight is (num_embeddings, embedding_dim), one row per token, so dim 0 (what per-channel
quantizers group by) is the row: ``uniform(granularity="per_channel")`` gives one step per row (per token), the
"per-row" option; the default per-tensor step is one for the whole table. Rows of very different norms (frequent
vs rare tokens) are what makes per-row worth its one float per row.

Whether the default quantizes embeddings: yes, ``quantize_`` gives an Embedding the default weight quantizer like
any other weight-bearing layer it knows, because in small transformers the token table is often the largest
single tensor (a model left mostly float would not be what its config says) and because the BERT quantization
papers quantize it (Q8BERT: 8-bit embeddings; TernaryBERT: ternary word embeddings). Peers differ: torchao's
``quantize_`` targets Linear layers unless given a filter and an embedding config; Brevitas has a
``QuantEmbedding`` layer the user places. Keep it float with ``keep_float=("first",)`` (the token embedding is
usually the first quantizable layer) or a pattern such as ``"*embed*"``.

``padding_idx`` is honoured as torch does (F.embedding gives that row no gradient; its quantized value is what a
zero row rounds to, 0 for the grids of lowbit's weight quantizers). ``max_norm`` is refused: torch renormalises
the looked-up rows of the stored table in place during the forward, so the tensor the quantizer reads (and a
frozen table) would change under it; renormalise once before ``quantize_`` instead. ``sparse=True`` is refused:
the whole table is quantized every step, so the gradient reaching it is dense anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import Quantizer
from .qmodule import QuantMixin, adopt_parameters, register_twin


@register_twin(nn.Embedding)
class QuantEmbedding(QuantMixin, nn.Embedding):
    """nn.Embedding with a quantized table (``weight_quant``); no activation quantizer."""

    @classmethod
    def from_float(cls, module: nn.Embedding, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        if module.max_norm is not None:
            raise ValueError(
                f"Embedding(max_norm={module.max_norm}) cannot be quantized: torch renormalises the stored rows in "
                "place during the forward; renormalise the table once and set max_norm=None (or keep it float)"
            )
        if module.sparse:
            raise ValueError(
                "Embedding(sparse=True) cannot be quantized: the whole table is quantized each step, so its "
                "gradient is dense; use sparse=False (or keep the layer float)"
            )
        with torch.device("meta"):
            q = cls(
                module.num_embeddings,
                module.embedding_dim,
                padding_idx=module.padding_idx,
                norm_type=module.norm_type,
                scale_grad_by_freq=module.scale_grad_by_freq,
            )
        adopt_parameters(q, module)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def _set_quantizers(self, weight_quant: Quantizer | None, act_quant: Quantizer | None) -> None:
        self.weight_quant = weight_quant
        self.act_quant = None  # indices: nothing to quantize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(
            x, self.quantized_weight(), self.padding_idx, None, self.norm_type, self.scale_grad_by_freq, False
        )
