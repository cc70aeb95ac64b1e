"""The suggestive-annotation FCN (Yang et al. 2017, reused by Xu et al. 2018), spec §6.4.

Layout (the spec's default, after the public re-implementation rawmarshmellows @ 68e9491,
``suggestive_annotation_model.py`` L88-128), with encoder channels c = (256, 256, 512, 1024, 1024, 1024) x width:

    input block   maxpool 2 -> conv3x3(c0/4)+BN+ReLU -> conv3x3(c0)+BN+ReLU           (scale 1/2)
    stage i>=1    maxpool 2 -> 2 bottleneck residual blocks (1x1 -> 3x3 -> 1x1, width c_i/4,
                  1x1 residual projection)                                               (scale 1/2^(i+1))
    decoder i     i+1 transposed convs (k=2, s=2) back to full resolution, channels c_i/4, c_{i-1}/4, ..., c_0/4
    head          concat(all decoders: 6 * c0/4) -> conv3x3(n_classes)+BN+ReLU -> conv1x1(n_classes) = logits

The input side must be a multiple of 2^len(channels) (64 by default). ``descriptor(x)`` is the spatial mean of
each channel of the last encoder output (spec §6.3: the 1024-d image descriptor at width 1).

Deviations (all logged here, none changes the function class):
- A transposed conv with k = s = 2 is written as a bias-free 1x1 ``Conv2d`` to 4*C_out channels, a
  ``PixelShuffle(2)`` and one bias per output channel. That is exactly ``ConvTranspose2d(k=2, s=2)``
  (each input pixel writes a disjoint 2x2 block; tested against torch's layer), and it keeps every weight in a
  ``Conv2d`` that ``quantize_``/``INQ`` know how to quantize (written before lowbit had a ConvTranspose twin,
  ``nn.QuantConvTranspose2d``; kept, since saved models of this architecture have this layout).
- The re-implementation passes the final 1x1 conv through BN+ReLU; here the last 1x1 conv gives raw logits
  (a ReLU on logits cannot express "background more likely than foreground" below zero).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MASKS, register_model

SA_CHANNELS = (256, 256, 512, 1024, 1024, 1024)


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (each BN+ReLU) plus a 1x1 residual projection of the input."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(cin, mid, 1), _conv_bn_relu(mid, mid, 3), _conv_bn_relu(mid, cout, 1))
        self.proj = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.proj(x)


class Up2(nn.Module):
    """ConvTranspose2d(cin, cout, kernel_size=2, stride=2) as conv1x1 -> PixelShuffle(2) (see module docstring)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x)) + self.bias.view(1, -1, 1, 1)


class SuggestiveFCN(nn.Module):
    """Per-pixel ``n_classes`` logits (N, n_classes, H, W) for an (N, in_channels, H, W) image."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, channels: tuple[int, ...] = SA_CHANNELS):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or any(c < 4 or c % 4 for c in channels):
            raise ValueError(f"SuggestiveFCN: channels={channels!r} is not accepted; expected multiples of 4, >= 4")
        if in_channels < 1 or n_classes < 2:
            raise ValueError(f"SuggestiveFCN: in_channels={in_channels}, n_classes={n_classes}; expected >= 1 and >= 2")
        self.channels = channels
        c0 = channels[0]
        enc = [nn.Sequential(nn.MaxPool2d(2), _conv_bn_relu(in_channels, c0 // 4, 3), _conv_bn_relu(c0 // 4, c0, 3))]
        for i in range(1, len(channels)):
            cp, c = channels[i - 1], channels[i]
            enc.append(nn.Sequential(nn.MaxPool2d(2), Bottleneck(cp, c // 4, cp), Bottleneck(cp, c // 4, c)))
        self.encoder = nn.ModuleList(enc)
        dec = []
        for i in range(len(channels)):
            outs = [channels[j] // 4 for j in range(i, -1, -1)]  # c_i/4, c_{i-1}/4, ..., c_0/4
            ins = [channels[i], *outs[:-1]]
            dec.append(nn.Sequential(*(Up2(a, b) for a, b in zip(ins, outs))))
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Sequential(
            _conv_bn_relu(len(channels) * (c0 // 4), n_classes, 3), nn.Conv2d(n_classes, n_classes, 1)
        )

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** len(self.channels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        m = self.multiple
        if x.dim() != 4 or x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(
                f"SuggestiveFCN: input shape {tuple(x.shape)} must be (N, C, H, W) with H, W multiples of {m}"
            )
        feats = []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encode(x)
        up = torch.cat([d(f) for d, f in zip(self.decoder, feats)], 1)  # (N, L*c0/4, H, W)
        return self.head(up)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_last): per-channel spatial mean of the last encoder output (spec §6.3)."""
        return self.encode(x)[-1].mean(dim=(2, 3))


def scaled_channels(width: float, base: tuple[int, ...] = SA_CHANNELS) -> tuple[int, ...]:
    """base x width, rounded to a multiple of 4 (at least 4), so that c/4 stays a whole channel count."""
    if not width > 0:
        raise ValueError(f"fcn_sa: width={width!r} is not accepted; expected a positive number")
    return tuple(max(4, 4 * round(c * width / 4)) for c in base)


@register_model("fcn_sa", test_kwargs={"width": 1 / 32, "depth": 3}, **MASKS)
def fcn_sa(in_channels: int = 1, n_classes: int = 2, width: float = 1.0, depth: int = 6) -> SuggestiveFCN:
    """The suggestive-annotation FCN; ``width`` scales every layer's filters, ``depth`` keeps the first
    ``depth`` encoder scales of the default layout (6; fewer only for small inputs or tests)."""
    if not 1 <= depth <= len(SA_CHANNELS):
        raise ValueError(f"fcn_sa: depth={depth!r} is not accepted; expected 1..{len(SA_CHANNELS)}")
    return SuggestiveFCN(in_channels, n_classes, scaled_channels(width, SA_CHANNELS[:depth]))


@register_model("fcn_sa_half", test_kwargs={"width": 1 / 32, "depth": 3}, **MASKS)
def fcn_sa_half(in_channels: int = 1, n_classes: int = 2, width: float = 1.0, depth: int = 6) -> SuggestiveFCN:
    """The simplified FCN of the seed's Table 4: the same layout with half the filters in every layer."""
    return fcn_sa(in_channels, n_classes, width * 0.5, depth)
