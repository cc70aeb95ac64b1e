"""CIFAR ResNets with three block groups (He et al. 2016; Boo et al. §5.2-5.3, Figs. 6 and 8, Table 5).

    stem conv3x3(in -> D) [+ BN + ReLU] -> group 1 (n blocks, D) -> group 2 (n, 2D, stride 2)
    -> group 3 (n, 4D, stride 2) [-> BN + ReLU for pre-activation] -> global average pool -> FC

``depth`` L counts the weighted layers on the main path: L = 6n + 2 for basic and pre-activation blocks
(two 3x3 convs each), L = 9n + 2 for depthwise blocks (1x1, 3x3 depthwise, 1x1), plus the stem and the FC.
``width`` is D_init, the stem's and first group's channels (ResNet-20/32/56/110: D = 16; ``width_mult`` k
gives the paper's ResNet×k with D = 16k, Fig. 6). Depthwise blocks expand to 6 × the block's output
channels and use a 1x1 conv + BN shortcut where the shape changes, the structure whose parameter count
matches Table 5 (see ``param_count``). Blocks and their QA/QRA points: ``lowbit.models.blocks``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, DepthwiseBlock, PreActBlock, conv3x3
from .registry import CLASSIFIER, register_model

BLOCKS = ("basic", "preact", "depthwise")
LAYERS_PER_BLOCK = {"basic": 2, "preact": 2, "depthwise": 3}

# Boo et al. Table 5 (Appendix D): (block, L, D_init, blocks per group, params in millions as printed).
TABLE5 = (
    ("basic", 8, 59, 1, 1.05),
    ("basic", 14, 40, 2, 1.10),
    ("basic", 20, 31, 3, 1.03),
    ("basic", 32, 24, 5, 1.06),
    ("basic", 44, 20, 7, 1.04),
    ("basic", 56, 18, 9, 1.09),
    ("preact", 8, 59, 1, 1.05),
    ("preact", 14, 40, 2, 1.10),
    ("preact", 20, 31, 3, 1.03),
    ("preact", 32, 24, 5, 1.06),
    ("preact", 44, 20, 7, 1.04),
    ("preact", 56, 18, 9, 1.09),
    ("depthwise", 29, 38, 3, 1.11),
    ("depthwise", 38, 32, 4, 1.08),
    ("depthwise", 56, 26, 6, 1.11),
    ("depthwise", 74, 22, 8, 1.08),
    ("depthwise", 110, 18, 12, 1.13),
)


def _whole(name: str, v, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ValueError(f"cifar_resnet: {name}={v!r} is not accepted; expected a whole number >= {lo}")
    return v


def blocks_per_group(block: str, depth: int) -> int:
    """n from L: L = 3·n·(layers per block) + 2; the error lists the nearest valid depths."""
    per = 3 * LAYERS_PER_BLOCK[block]
    if (depth - 2) % per or depth < per + 2:
        lo = max(per + 2, (depth - 2) // per * per + 2)
        raise ValueError(
            f"cifar_resnet: depth={depth!r} is not accepted for {block!r} blocks; expected {per}·n + 2 "
            f"(e.g. {lo} or {lo + per})"
        )
    return (depth - 2) // per


class CifarResNet(nn.Module):
    def __init__(
        self,
        block: str = "basic",
        depth: int = 20,
        width: int = 16,
        num_classes: int = 10,
        in_channels: int = 3,
        expansion: int = 6,
    ):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"cifar_resnet: block={block!r} is not accepted; expected one of {BLOCKS}")
        for name, v in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
            _whole(name, v, 1)
        _whole("depth", depth, 1)
        _whole("expansion", expansion, 1)
        n = blocks_per_group(block, depth)
        self.block, self.depth, self.width = block, depth, width
        preact = block == "preact"
        self.stem = nn.Sequential(conv3x3(in_channels, width))
        if not preact:
            self.stem.append(nn.BatchNorm2d(width))
            self.stem.append(nn.ReLU(inplace=True))
        c, first = width, True
        for g, (w, stride) in enumerate(((width, 1), (2 * width, 2), (4 * width, 2)), start=1):
            layers = []
            for i in range(n):
                s = stride if i == 0 else 1
                if block == "basic":
                    layers.append(BasicBlock(c, w, s))
                elif preact:
                    layers.append(PreActBlock(c, w, s))
                else:  # the stem ends in a ReLU, so only the first block's input is unsigned
                    layers.append(DepthwiseBlock(c, w, s, expansion * w, in_signed=not first))
                c, first = w, False
            self.add_module(f"layer{g}", nn.Sequential(*layers))
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)) if preact else nn.Identity()
        self.fc = nn.Linear(c, num_classes)  # registered last: keep_float=("first", "last") = stem conv, FC
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes) logits
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.head(x), 1), 1))


def param_count(model: nn.Module, bn_stats: bool = False) -> int:
    """Parameters; ``bn_stats`` also counts BatchNorm's running mean and variance.

    Table 5's counts match the latter (Keras/TensorFlow count BN's moving statistics as non-trainable
    parameters): depthwise configurations within 0.5 %, basic within 1 % of the printed two decimals.
    """
    n = sum(p.numel() for p in model.parameters())
    if bn_stats:
        n += sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules() if _is_bn(m))
    return n


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None


_TINY = {"depth": 8, "width": 4}


@register_model("cifar_resnet", test_kwargs=_TINY, **CLASSIFIER)
def cifar_resnet(
    block: Literal["basic", "preact", "depthwise"] = "basic",
    depth: int = 20,
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
) -> CifarResNet:
    """Three-group CIFAR ResNet with ``block`` in basic | preact | depthwise (Table 5's families)."""
    return CifarResNet(block, depth, width, num_classes, in_channels)


@register_model("cifar_resnet_preact", test_kwargs=_TINY, **CLASSIFIER)
def cifar_resnet_preact(depth: int = 20, width: int = 16, num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """Pre-activation blocks (Fig. 4b)."""
    return CifarResNet("preact", depth, width, num_classes, in_channels)


@register_model("cifar_resnet_depthwise", test_kwargs={"depth": 11, "width": 4}, **CLASSIFIER)
def cifar_resnet_depthwise(
    depth: int = 29, width: int = 16, num_classes: int = 10, in_channels: int = 3
) -> CifarResNet:
    """Depthwise (MobileNetV2 inverted residual) blocks (Fig. 4c)."""
    return CifarResNet("depthwise", depth, width, num_classes, in_channels)


def _named(depth: int):
    def build(width_mult: float = 1, num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or not width_mult > 0:
            raise ValueError(f"resnet{depth}: width_mult={width_mult!r} is not accepted; expected a positive number")
        return CifarResNet("basic", depth, max(1, round(16 * width_mult)), num_classes, in_channels)

    build.__doc__ = f"ResNet-{depth} for CIFAR (basic blocks, D = 16·width_mult; ResNet×k of Fig. 6)."
    build.__name__ = f"resnet{depth}"
    return build


for _d in (20, 32, 56, 110):
    register_model(
        f"resnet{_d}", test_kwargs={"width_mult": 0.25} if _d <= 32 else {"width_mult": 0.125}, **CLASSIFIER
    )(_named(_d))
