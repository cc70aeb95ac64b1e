"""ImageNet pre-activation ResNets of Boo et al. Table 1 (§5.3): four block groups, depth and D_init free.

    stem conv7x7/2 (3 -> D) + BN + ReLU + maxpool3x3/2 -> groups of blocks[0..3] blocks with D, 2D, 4D, 8D
    channels (x4 at a bottleneck's output), the first block of groups 2-4 with stride 2 -> BN + ReLU -> pool -> FC

The paper uses pre-activation blocks with the shortcut quantized to 8 bits (a QRA rule, see
``lowbit.models.blocks.point_rules``). Basic blocks give L = 2·Σblocks + 2 (ResNet-18/26/34), bottleneck
blocks (1x1, 3x3, 1x1) L = 3·Σblocks + 2 (ResNet-44/50/101). These are for the ``paper`` scale (a GPU and
ImageNet); on a CPU they are only built and run on small inputs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import PreActBlock, _Block, conv1x1, conv3x3
from .registry import CLASSIFIER, register_model

# name: (block, blocks per group, D_init, params in millions as printed in Table 1)
TABLE1 = {
    "resnet34": ("basic", (3, 4, 6, 3), 64, 21.8),
    "resnet18x1.4": ("basic", (2, 2, 2, 2), 90, 22.8),
    "resnet26x1.1": ("basic", (3, 3, 3, 3), 70, 21.4),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 64, 25.6),
    "resnet44x1.1": ("bottleneck", (3, 4, 5, 2), 72, 25.0),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 64, 44.6),
    "resnet50x1.3": ("bottleneck", (3, 4, 6, 3), 85, 44.2),
}


class PreActBottleneck(_Block):
    """BN-ReLU-1x1 (m) -> BN-ReLU-3x3 (m, stride) -> BN-ReLU-1x1 (4m), plus the (projected) shortcut."""

    expansion = 4

    def __init__(self, c_in: int, mid: int, stride: int = 1):
        super().__init__()
        c_out = self.expansion * mid
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv1x1(c_in, mid)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), conv3x3(mid, mid, stride)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), conv1x1(mid, c_out)
        for k in ("qa1", "qa2", "qa3"):
            self._point(k, "qa")
        self._point("qra", "qra", True)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else conv1x1(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.qa1(F.relu(self.bn1(x))))
        h = self.conv2(self.qa2(F.relu(self.bn2(h))))
        h = self.conv3(self.qa3(F.relu(self.bn3(h))))
        return h + self.shortcut(self.qra(x))


class ImageNetResNet(nn.Module):
    def __init__(
        self,
        block: str = "basic",
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        width: int = 64,
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"imagenet_resnet: block={block!r} is not accepted; expected 'basic' or 'bottleneck'")
        blocks = tuple(blocks)
        if len(blocks) != 4 or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in blocks):
            raise ValueError(f"imagenet_resnet: blocks={blocks!r} is not accepted; expected 4 whole numbers >= 1")
        for name, v in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"imagenet_resnet: {name}={v!r} is not accepted; expected a whole number >= 1")
        self.depth = (2 if block == "basic" else 3) * sum(blocks) + 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        c = width
        for g, n in enumerate(blocks):
            w, layers = width * 2**g, []
            for i in range(n):
                s = 2 if g > 0 and i == 0 else 1
                if block == "basic":
                    layers.append(PreActBlock(c, w, s))
                    c = w
                else:
                    layers.append(PreActBottleneck(c, w, s))
                    c = w * PreActBottleneck.expansion
            self.add_module(f"layer{g + 1}", nn.Sequential(*layers))
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.head(x), 1), 1))


@register_model("imagenet_resnet", test_kwargs={"blocks": (1, 1, 1, 1), "width": 4}, **CLASSIFIER)
def imagenet_resnet(
    block: Literal["basic", "bottleneck"] = "basic",
    blocks: tuple[int, ...] = (3, 4, 6, 3),
    width: int = 64,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> ImageNetResNet:
    """Pre-activation ImageNet ResNet with any block list and D_init (Table 1's family)."""
    return ImageNetResNet(block, blocks, width, num_classes, in_channels)


def _table1(name: str):
    block, blocks, width, _ = TABLE1[name]

    def build(num_classes: int = 1000, in_channels: int = 3, width_scale: float = 1.0) -> ImageNetResNet:
        """``width_scale`` shrinks D_init (tests only; 1 = Table 1)."""
        return ImageNetResNet(block, blocks, max(1, round(width * width_scale)), num_classes, in_channels)

    build.__doc__ = f"Table 1's {name}: {block} blocks {list(blocks)}, D_init = {width} (pre-activation)."
    return build


for _name in TABLE1:
    register_model(f"imagenet_{_name}", test_kwargs={"width_scale": 1 / 16}, **CLASSIFIER)(_table1(_name))
