"""MobileNetV2 (Sandler et al. 2018) with a width multiplier, for 32x32 inputs (Boo et al. §5.2, Fig. 7).

The layout is torchvision's: a 3x3 stem of 32·w channels, the bottleneck table below (expansion t, output
channels c·w, repeats n, first stride s), a 1x1 conv to 1280·max(1, w) channels, global pooling, dropout
0.2 and the classifier; channel counts are rounded to multiples of 8 (``make_divisible``). As in the paper,
``MobileNetV2×1.0`` for CIFAR is the original except that the stem's stride 2 becomes 1 (``stem_stride``;
2 gives the ImageNet network, 3,504,872 parameters at 1000 classes). Blocks are
``lowbit.models.blocks.DepthwiseBlock`` (residual only where the shape is kept), so their QA/QRA points and
names are those of the depthwise ResNet; the 1x1 head conv reads the last (linear, signed) bottleneck
stream through its own QRA point ``head.qra``.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DepthwiseBlock, _Block, conv1x1, conv3x3
from .registry import CLASSIFIER, register_model

# t (expansion), c (output channels), n (repeats), s (first stride): Sandler et al. Table 2.
SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never more than 10 % below ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class _Head(_Block):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self._point("qra", "qra", True)
        self.conv, self.bn, self.act = conv1x1(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.qra(x))))


class MobileNetV2(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_stride: int = 1,
        dropout: float = 0.2,
    ):
        super().__init__()
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or not width_mult > 0:
            raise ValueError(f"mobilenetv2: width_mult={width_mult!r} is not accepted; expected a positive number")
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("stem_stride", stem_stride)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"mobilenetv2: {name}={v!r} is not accepted; expected a whole number >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"mobilenetv2: dropout={dropout!r} is not accepted; expected 0 <= dropout < 1")
        c = make_divisible(32 * width_mult)
        self.stem = nn.Sequential(conv3x3(in_channels, c, stem_stride), nn.BatchNorm2d(c), nn.ReLU6(inplace=True))
        blocks, first = [], True
        for t, ch, n, s in SETTING:
            out = make_divisible(ch * width_mult)
            for i in range(n):
                hidden = int(round(c * t))
                blocks.append(DepthwiseBlock(c, out, s if i == 0 else 1, hidden, projection=False, in_signed=not first))
                c, first = out, False
        self.blocks = nn.Sequential(*blocks)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        self.head = _Head(c, self.last_channel)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.last_channel, num_classes)  # registered last ("last" in keep_float)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes) logits
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


@register_model("mobilenetv2_cifar", test_kwargs={"width_mult": 0.1, "dropout": 0.0}, **CLASSIFIER)
def mobilenetv2_cifar(
    width_mult: float = 1.0, num_classes: int = 10, in_channels: int = 3, stem_stride: int = 1, dropout: float = 0.2
) -> MobileNetV2:
    """MobileNetV2×width_mult for 32x32 inputs (stem stride 1, Boo et al. Fig. 7)."""
    return MobileNetV2(width_mult, num_classes, in_channels, stem_stride, dropout)
