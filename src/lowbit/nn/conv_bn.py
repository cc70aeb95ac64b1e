"""BatchNorm folded into the convolution for QAT (Jacob et al. 2018, arXiv 1712.05877, §3.2 and Fig. C.8).

Integer inference has no BatchNorm: it runs the conv with the folded weight W·s, s = γ/sqrt(σ² + ε), and the
folded bias β + (b - μ)·s. Training with BN kept separate quantizes W, not W·s, so the deployed codes would be
those of a different tensor. ``QuantConvBn2d`` quantizes the folded weight during training, as the deployed model
uses it, in the form of PyTorch's ``ConvBn2d`` QAT module (``_forward_approximate``):

    training:  y = BN_batch( conv(x_q, Q(W·s)) / s + b ),   s = γ/sqrt(running σ² + ε)   (BN uses batch statistics,
               and updates the running ones; dividing by s undoes the scale so BN sees the unfolded conv output)
    eval:      y = conv(x_q, Q(W·s)) + β + (b - μ)·s        (exactly the deployed integer layer)

Jacob et al. fold with the batch σ_B and switch to the running σ after a delay; using the running σ throughout is
the variant PyTorch ships (the weight scale then does not jitter with each batch). ``fold_bn_(model)`` swaps every
Conv2d whose output only feeds a BatchNorm2d for a ``QuantConvBn2d`` (the BN becomes an ``Identity``);
``QuantConfig(fold_bn=True)`` does it inside ``quantize_``.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from ..quantizers import Quantizer
from .qmodule import QuantMixin, adopt_parameters


class QuantConvBn2d(QuantMixin, nn.Conv2d):
    """A Conv2d with its following BatchNorm2d (``self.bn``) folded in before weight quantization."""

    def __init__(self, *args, bn: nn.BatchNorm2d | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bn = bn if bn is not None else nn.BatchNorm2d(self.out_channels)
        self.weight_quant, self.act_quant = None, None

    @classmethod
    def from_pair(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> QuantConvBn2d:
        if not bn.affine or not bn.track_running_stats or bn.num_features != conv.out_channels:
            raise ValueError(
                f"fold_bn: BatchNorm2d({bn.num_features}, affine={bn.affine}, track_running_stats="
                f"{bn.track_running_stats}) cannot be folded into a conv with {conv.out_channels} outputs; "
                "expected an affine BN with running statistics and one channel per conv output"
            )
        with torch.device("meta"):
            q = cls(
                conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                bn=nn.BatchNorm2d(bn.num_features),
            )  # fmt: skip
        adopt_parameters(q, conv)
        q.bn = bn
        return q

    @classmethod
    def from_float(cls, module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        raise TypeError("QuantConvBn2d is made by fold_bn_ (QuantConfig(fold_bn=True)), not swapped from a float layer")

    def bn_scale(self) -> torch.Tensor:
        """s = γ/sqrt(running σ² + ε), one per output channel."""
        return self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)

    def folded_weight(self) -> torch.Tensor:
        """W·s while the weight is latent; a frozen layer's weight buffer already holds the folded codes' values."""
        if "weight" not in self._parameters:
            return self.weight
        return self.weight * self.bn_scale().reshape(-1, 1, 1, 1)

    def latent_weight(self, name: str = "weight") -> torch.Tensor:
        return self.folded_weight()

    def quantized_weight(self, name: str = "weight") -> torch.Tensor:
        w = self.folded_weight()
        return w if self.weight_quant is None else self.weight_quant(w)

    def folded_bias(self) -> torch.Tensor:
        """β + (b - μ)·s."""
        b = self.bias if self.bias is not None else torch.zeros_like(self.bn.running_mean)
        return self.bn.bias + (b - self.bn.running_mean) * self.bn_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        w = self.quantized_weight()
        if not self.training:
            return self._conv_forward(x, w, self.folded_bias())
        y = self._conv_forward(x, w, None) / self.bn_scale().reshape(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return self.bn(y)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.BatchNorm2d, QuantMixin)) or super().is_leaf_module(m, qualname)


def fold_bn_(model: nn.Module) -> nn.Module:
    """Swap each float Conv2d whose output only feeds a BatchNorm2d for a ``QuantConvBn2d`` (the BN becomes an
    ``Identity``), in place; returns ``model``. Needs a torch.fx-traceable model; the error says so otherwise."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for dynamic control flow
        raise ValueError(f"fold_bn: the model could not be traced with torch.fx ({type(e).__name__}: {e})") from None
    mods = dict(model.named_modules())
    for n in graph.nodes:
        if n.op != "call_module" or type(mods[n.target]) is not nn.Conv2d:
            continue
        users = list(n.users)
        if len(users) != 1 or users[0].op != "call_module" or not isinstance(mods[users[0].target], nn.BatchNorm2d):
            continue
        bn_name = users[0].target
        if sum(1 for u in graph.nodes if u.op == "call_module" and u.target == bn_name) != 1:
            continue  # a BN module called twice cannot be folded into one conv
        _set(model, n.target, QuantConvBn2d.from_pair(mods[n.target], mods[bn_name]))
        _set(model, bn_name, nn.Identity())
    return model


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
