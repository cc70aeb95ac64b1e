"""VGG-16 (Simonyan & Zisserman 2014, configuration D) and the two small VGG-16 models of the seed's §3.2.

VGG-16 has 13 3x3 conv layers in five blocks, each block ending in a 2x2 max-pool, then 3 FC layers:

    block:     B1      B2        B3            B4            B5
    channels:  64 64   128 128   256 256 256   512 512 512   512 512 512     -> FC h -> FC h -> FC classes

Small models (seed Fig. 2): the block with the 112x112x128 feature maps (B2) is removed and the channels of
the remaining layers are halved except for the first two (B1). ``vgg_small8`` also removes the block with
14x14x512 maps (B5): 64 64 | 128 128 128 | 256 256 256 (8 conv). ``vgg_small5`` also removes the 28x28x512
block (B4): 64 64 | 128 128 128 (5 conv). Each keeps the 3 FC layers.

Inputs: any ``in_channels`` (1 for 28x28 grayscale MNIST-style, 3 for 32x32 RGB CIFAR-style, 224 ImageNet).
A block's max-pool is skipped when the feature map is already smaller than 2x2 (28x28 inputs reach 1x1 after
four pools), so the last conv output is ``s x s`` with s >= 1 and the first FC layer reads ``C * s * s``.

``width`` multiplies every conv channel count and the FC hidden size (at least 1 each), so that a narrow
VGG (width 1/8) trains on a CPU. ``fc_hidden``: the FC hidden size before ``width`` (default 4096 for
inputs of 64 pixels or more, as in the paper; 512 for small inputs, the usual CIFAR VGG). ``batch_norm``
adds BatchNorm after each conv (the original VGG-16 has none; it makes short from-scratch runs stable).
``dropout`` is applied after the two hidden FC layers, as in the original. ``pool_to`` = k > 0 average-pools the last
feature map to k x k before the FC layers (torchvision's VGG, k = 7): at 224 pixels the small VGGs keep 56 x 56 or
28 x 28 maps, whose flattened FC layers would hold 0.8-1.7 billion weights without it.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import CLASSIFIER, register_model

M = "M"  # a 2x2 max-pool
VGG16_LAYERS: tuple = (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M)
VGG_SMALL8_LAYERS: tuple = (64, 64, M, 128, 128, 128, M, 256, 256, 256, M)
VGG_SMALL5_LAYERS: tuple = (64, 64, M, 128, 128, 128, M)


class VGG(nn.Module):
    def __init__(
        self,
        layers: tuple = VGG16_LAYERS,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        fc_hidden: int | None = None,
        batch_norm: bool = True,
        dropout: float = 0.5,
        pool_to: int = 0,
    ):
        super().__init__()
        if not isinstance(pool_to, int) or isinstance(pool_to, bool) or pool_to < 0:
            raise ValueError(f"vgg: pool_to={pool_to!r} is not accepted; expected a whole number >= 0 (0 = off)")
        for name, v, lo in (
            ("num_classes", num_classes, 1),
            ("in_channels", in_channels, 1),
            ("input_size", input_size, 1),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"vgg: {name}={v!r} is not accepted; expected a whole number >= {lo}")
        if not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"vgg: width={width!r} is not accepted; expected a positive number (1 = paper channels)")
        if not 0 <= dropout < 1:
            raise ValueError(f"vgg: dropout={dropout!r} is not accepted; expected 0 <= dropout < 1")
        feats: list[nn.Module] = []
        c, s = in_channels, input_size
        for v in layers:
            if v == M:
                if s >= 2:  # see module doc: tiny maps skip the pool
                    feats.append(nn.MaxPool2d(2))
                    s //= 2
                continue
            out = max(1, round(v * width))
            feats.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                feats.append(nn.BatchNorm2d(out))
            feats.append(nn.ReLU(inplace=True))
            c = out
        if pool_to:  # torchvision's AdaptiveAvgPool2d((7, 7)): the FC input is C x 7 x 7 whatever the blocks left
            feats.append(nn.AdaptiveAvgPool2d(pool_to))
            s = pool_to
        self.features = nn.Sequential(*feats)
        hidden = fc_hidden if fc_hidden is not None else (4096 if input_size >= 64 else 512)
        h = max(1, round(hidden * width))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * s * s, h),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h, h),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h, num_classes),
        )
        self.out_size = s
        for m in self.modules():  # He init for the ReLU convs, as in common VGG training recipes
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes) logits
        return self.classifier(self.features(x))

    def conv_layers(self) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in self.features)


_TEST = {"width": 1 / 16, "input_size": 32, "fc_hidden": 64}


def _vgg(layers: tuple, name: str, doc: str):
    """A builder of VGG with ``layers``, taking VGG's other arguments by name (so ``lowbit models`` lists them)."""

    def build(
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        fc_hidden: int | None = None,
        batch_norm: bool = True,
        dropout: float = 0.5,
        pool_to: int = 0,
    ) -> VGG:
        return VGG(layers, num_classes, in_channels, input_size, width, fc_hidden, batch_norm, dropout, pool_to)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


vgg16 = register_model("vgg16", test_kwargs=_TEST, **CLASSIFIER)(
    _vgg(VGG16_LAYERS, "vgg16", "VGG-16: 13 conv + 3 FC (see the module doc for the arguments).")
)
vgg_small8 = register_model("vgg_small8", test_kwargs=_TEST, **CLASSIFIER)(
    _vgg(
        VGG_SMALL8_LAYERS,
        "vgg_small8",
        "Small VGG-16 with 8 conv layers (B2 and B5 removed, channels halved after B1) + 3 FC.",
    )
)
vgg_small5 = register_model("vgg_small5", test_kwargs=_TEST, **CLASSIFIER)(
    _vgg(
        VGG_SMALL5_LAYERS,
        "vgg_small5",
        "Small VGG-16 with 5 conv layers (B2, B4 and B5 removed, channels halved after B1) + 3 FC.",
    )
)
