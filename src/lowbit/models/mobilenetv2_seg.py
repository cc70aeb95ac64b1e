"""A MobileNetV2-based segmentation network (Boo et al. §5.1 and §5.4, Fig. 5, Tables 2-3), sized for EM tiles.

The paper segments PASCAL VOC with MobileNetV2 trained as in DeepLabV3, output stride 16, no ASPP. Here:

    stem conv3x3 (stride 2) -> MobileNetV2 bottlenecks (``mobilenetv2.SETTING``, ``DepthwiseBlock``; a stride
    that would take the stream below 1/``output_stride`` becomes 1, DeepLab's OS16 without the atrous rates)
    -> decoder: deep stream -qra-> 1x1 conv-BN-ReLU -qa1-> bilinear up to the low-level features
                low-level features (``low_level_stage``: 1 = end of the 24-channel stage, 1/4 resolution,
                DeepLabV3+'s choice; 0 = the 16-channel stage, 1/2, for thin structures) -low_qra-> 1x1 conv-BN-ReLU
                concat -qa2-> 3x3 conv-BN-ReLU -qa3-> 1x1 classifier (with bias) -> bilinear up to the input

``stem_stride`` 1 keeps the stem at full resolution (4x the encoder's work).

The decoder is DeepLabV3+'s light one (Chen et al. 2018) without ASPP. Every activation that reaches a
quantized layer passes an ``ActPoint`` named ``*qa?`` or ``*qra`` (the encoder's are the depthwise blocks'
points, ``lowbit.models.blocks``), so the CNN studies' rules quantize this network's activations too; the
streams out of linear bottlenecks are signed (``ActPoint.signed``). The stem conv is the first quantizable
layer and the classifier the last, so ``keep_float = ["first", "last"]`` keeps both float. ``stages`` takes
the first rows of the bottleneck table (7 = the whole MobileNetV2, 1280-channel head excluded as in DeepLab).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ActPoint
from .blocks import DepthwiseBlock, conv1x1, conv3x3
from .mobilenetv2 import SETTING, make_divisible
from .registry import MASKS, register_model

LOW_LEVEL_STAGE = 1  # default: index in SETTING of the 24-channel stage (1/4 resolution) that feeds the decoder


def _bn_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class MobileNetV2Seg(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 2,
        in_channels: int = 1,
        output_stride: int = 16,
        stages: int = 7,
        decoder_channels: int = 64,
        stem_stride: int = 2,
        low_level_stage: int = LOW_LEVEL_STAGE,
    ):
        super().__init__()
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or not width_mult > 0:
            raise ValueError(f"mobilenetv2_seg: width_mult={width_mult!r} is not accepted; expected a positive number")
        for name, v, lo in (("num_classes", num_classes, 2), ("in_channels", in_channels, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"mobilenetv2_seg: {name}={v!r} is not accepted; expected a whole number >= {lo}")
        if output_stride not in (4, 8, 16, 32):
            raise ValueError(
                f"mobilenetv2_seg: output_stride={output_stride!r} is not accepted; expected 4, 8, 16 or 32"
            )
        if stem_stride not in (1, 2):
            raise ValueError(f"mobilenetv2_seg: stem_stride={stem_stride!r} is not accepted; expected 1 or 2")
        if low_level_stage not in (0, 1, 2):
            raise ValueError(
                f"mobilenetv2_seg: low_level_stage={low_level_stage!r} is not accepted; expected 0, 1 or 2"
            )
        if not isinstance(stages, int) or isinstance(stages, bool) or not low_level_stage + 1 <= stages <= len(SETTING):
            raise ValueError(
                f"mobilenetv2_seg: stages={stages!r} is not accepted; expected {low_level_stage + 1}..{len(SETTING)}"
            )
        if not isinstance(decoder_channels, int) or isinstance(decoder_channels, bool) or decoder_channels < 1:
            raise ValueError(f"mobilenetv2_seg: decoder_channels={decoder_channels!r} is not accepted; expected >= 1")
        self.output_stride = output_stride
        c = make_divisible(32 * width_mult)
        self.stem = _bn_relu(conv3x3(in_channels, c, stem_stride))  # the first quantizable layer
        stride, blocks, first = stem_stride, [], True
        for row, (t, ch, n, s) in enumerate(SETTING[:stages]):
            out = make_divisible(ch * width_mult)
            for i in range(n):
                st = s if i == 0 and stride * s <= output_stride else 1
                stride *= st
                blocks.append(DepthwiseBlock(c, out, st, int(round(c * t)), projection=False, in_signed=not first))
                c, first = out, False
            if row == low_level_stage:
                self.low_index, low_c = len(blocks) - 1, c
        self.blocks = nn.Sequential(*blocks)
        d = max(8, make_divisible(decoder_channels * min(1.0, width_mult)))
        low_out = max(8, make_divisible(48 * min(1.0, width_mult)))
        self.qra = ActPoint("qra", signed=True)  # the deep (linear bottleneck) stream
        self.reduce = _bn_relu(conv1x1(c, d))
        self.qa1 = ActPoint("qa")
        self.low_qra = ActPoint("qra", signed=True)  # the low-level features (a linear bottleneck too)
        self.low = _bn_relu(conv1x1(low_c, low_out))
        self.qa2 = ActPoint("qa")
        self.fuse = _bn_relu(conv3x3(d + low_out, d))
        self.qa3 = ActPoint("qa")
        self.classifier = nn.Conv2d(d, num_classes, 1)  # registered last: the "last" quantizable layer
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes, H, W) logits
        size = x.shape[-2:]
        h, low = self.stem(x), None
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.low_index:
                low = h
        deep = self.qa1(self.reduce(self.qra(h)))
        low = self.low(self.low_qra(low))
        deep = F.interpolate(deep, size=low.shape[-2:], mode="bilinear", align_corners=False)
        h = self.qa3(self.fuse(self.qa2(torch.cat([deep, low], 1))))
        return F.interpolate(self.classifier(h), size=size, mode="bilinear", align_corners=False)


_TEST = {"width_mult": 0.25, "stages": 3, "decoder_channels": 16, "in_channels": 3}  # the registry tests feed RGB


@register_model("mobilenetv2_seg", test_kwargs=_TEST, **MASKS)
def mobilenetv2_seg(
    width_mult: float = 1.0,
    num_classes: int = 2,
    in_channels: int = 1,
    output_stride: int = 16,
    stages: int = 7,
    decoder_channels: int = 64,
    stem_stride: int = 2,
    low_level_stage: int = LOW_LEVEL_STAGE,
) -> MobileNetV2Seg:
    """MobileNetV2 encoder + DeepLabV3+-style light decoder for per-pixel classes (Boo et al. §5.1)."""
    return MobileNetV2Seg(
        width_mult, num_classes, in_channels, output_stride, stages, decoder_channels, stem_stride, low_level_stage
    )
