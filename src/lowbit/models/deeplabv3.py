"""DeepLabV3 with a MobileNetV2 backbone, output stride 16, no ASPP: the network of Boo et al. §5.1 ("The
MobileNetV2 is adopted, which is trained according to DeepLabV3 ... The output stride is 16 and Atrous Spatial
Pyramid Pooling (ASPP) is not applied"), for PASCAL VOC.

    stem conv3x3/2-BN-ReLU6 -> the 17 MobileNetV2 bottlenecks (``mobilenetv2.SETTING``, ``DepthwiseBlock``; the
    1280-channel head conv left out, as DeepLab does) with output stride 16: the stride that would reach 1/32
    becomes 1 and the blocks after it dilate their depthwise 3x3 by 2 (DeepLab's rule: a layer at the output
    stride keeps its rate, the rate then doubles)
    -> qra -> [1x1 conv 256-BN-ReLU] and [global average pool -> 1x1 conv 256-BN-ReLU -> upsample] (DeepLab's
       two branches when no atrous rates are given, i.e. without ASPP's 3x3 atrous branches) -> concat -> qa1
    -> 1x1 conv 256-BN-ReLU (the concat projection) -> qa2 -> dropout 0.1 -> 1x1 classifier (bias)
    -> bilinear upsampling to the input size.

``backbone``: a file holding torchvision's ``mobilenet_v2`` state dict (``torchvision.models.mobilenet_v2(weights=
MobileNet_V2_Weights.IMAGENET1K_V1).state_dict()`` saved with ``torch.save``, or a safetensors file with the same
keys); its ``features.0`` .. ``features.17`` tensors initialise the stem and the bottlenecks in order (the same
parameters in the same order: conv, BN per layer), each shape checked. The path is relative to the data root
(``LOWBIT_DATA`` / ``--data-root``; no absolute path, no ``..``: a stored spec names it, like a data set's files).
The paper starts from DeepLab's VOC-trained checkpoint; lowbit starts from the ImageNet backbone and trains the
float model itself (docs/studies/paper-scales.md).

Activation points: the blocks' own (``*qa?``, ``*qra``) and the head's ``qra`` (the signed 320-channel stream),
``qa1``, ``qa2``; the stem conv is the first quantizable layer and the classifier the last.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ActPoint
from .blocks import DepthwiseBlock, conv1x1, conv3x3
from .mobilenetv2 import SETTING, make_divisible
from .registry import MASKS, register_model

BACKBONE_BLOCKS = 18  # torchvision features.0 (stem) .. features.17 (the last bottleneck); features.18 is the head


def _cbr(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv1x1(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DeepLabV3MobileNetV2(nn.Module):
    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        width_mult: float = 1.0,
        output_stride: int = 16,
        head_channels: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        for name, v, lo in (("num_classes", num_classes, 2), ("in_channels", in_channels, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(
                    f"deeplabv3_mobilenetv2: {name}={v!r} is not accepted; expected a whole number >= {lo}"
                )
        if output_stride not in (8, 16, 32):
            raise ValueError(
                f"deeplabv3_mobilenetv2: output_stride={output_stride!r} is not accepted; expected 8, 16 or 32"
            )
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or not width_mult > 0:
            raise ValueError(f"deeplabv3_mobilenetv2: width_mult={width_mult!r} is not accepted; expected > 0")
        c = make_divisible(32 * width_mult)
        self.stem = nn.Sequential(conv3x3(in_channels, c, 2), nn.BatchNorm2d(c), nn.ReLU6(inplace=True))
        stride, rate, blocks, first = 2, 1, [], True
        for t, ch, n, s in SETTING:
            out = make_divisible(ch * width_mult)
            for i in range(n):
                st = s if i == 0 else 1
                dilation = rate
                if st > 1 and stride == output_stride:  # at the output stride: no more striding, dilate after
                    st, rate = 1, rate * st
                stride *= st
                block = DepthwiseBlock(c, out, st, int(round(c * t)), projection=False, in_signed=not first)
                if dilation > 1:
                    dw = block.dw[0]
                    dw.dilation, dw.padding = (dilation, dilation), (dilation, dilation)
                blocks.append(block)
                c, first = out, False
        self.blocks = nn.Sequential(*blocks)
        self.qra = ActPoint("qra", signed=True)
        self.branch = _cbr(c, head_channels)
        self.pool_branch = _cbr(c, head_channels)
        self.qa1 = ActPoint("qa")
        self.project = _cbr(2 * head_channels, head_channels)
        self.qa2 = ActPoint("qa")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)  # registered last: the "last" quantizable layer
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def backbone_state(self) -> list[tuple[str, torch.Tensor]]:
        """The stem's and bottlenecks' state entries in order (what a torchvision backbone file initialises)."""
        return [(k, v) for k, v in self.state_dict().items() if k.startswith(("stem.", "blocks."))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes, H, W) logits
        size = x.shape[-2:]
        h = self.qra(self.blocks(self.stem(x)))
        pooled = self.pool_branch(F.adaptive_avg_pool2d(h, 1))
        h = torch.cat([self.branch(h), pooled.expand(-1, -1, *h.shape[-2:])], 1)
        h = self.qa2(self.project(self.qa1(h)))
        return F.interpolate(self.classifier(self.dropout(h)), size=size, mode="bilinear", align_corners=False)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"backbone {str(path)!r}: expected a state dict (a mapping of names to tensors)")
    return sd


def load_torchvision_backbone(model: DeepLabV3MobileNetV2, path: str | Path) -> None:
    """Initialise the stem and bottlenecks from torchvision ``mobilenet_v2`` weights (module docstring)."""
    from ..data.paths import shared_data_dir

    rel = Path(path)
    if rel.is_absolute() or ".." in rel.parts:  # a stored spec names it: it stays inside the data root
        raise ValueError(
            f"backbone {str(path)!r} is not accepted; expected a path relative to the data root (LOWBIT_DATA or "
            "--data-root), without '..'"
        )
    path = shared_data_dir() / rel
    if not path.is_file():
        raise FileNotFoundError(
            f"missing backbone: put torchvision's mobilenet_v2 ImageNet weights (a state dict saved with torch.save, "
            f"keys features.0 .. features.18) at {str(path)!r}"
        )
    sd = read_state_dict(path)

    def block_of(k: str) -> int:
        parts = k.split(".")
        return int(parts[1]) if len(parts) > 2 and parts[0] == "features" and parts[1].isdigit() else -1

    theirs = [(k, v) for k, v in sd.items() if 0 <= block_of(k) < BACKBONE_BLOCKS]
    ours = model.backbone_state()
    if len(theirs) != len(ours):
        raise ValueError(
            f"backbone {path.name}: {len(theirs)} tensors in features.0-17, the model's stem and bottlenecks have "
            f"{len(ours)}; expected torchvision's mobilenet_v2 at width_mult {1.0}"
        )
    new = {}
    for (k_ours, v_ours), (k_theirs, v_theirs) in zip(ours, theirs):
        if v_ours.shape != v_theirs.shape:
            raise ValueError(
                f"backbone {path.name}: {k_theirs} has shape {tuple(v_theirs.shape)} but {k_ours} needs "
                f"{tuple(v_ours.shape)}"
            )
        new[k_ours] = v_theirs.to(v_ours.dtype)
    model.load_state_dict(new, strict=False)


_TEST = {"num_classes": 3, "width_mult": 0.25, "head_channels": 16}


@register_model("deeplabv3_mobilenetv2", test_kwargs=_TEST, **MASKS)
def deeplabv3_mobilenetv2(
    num_classes: int = 21,
    in_channels: int = 3,
    width_mult: float = 1.0,
    output_stride: int = 16,
    head_channels: int = 256,
    dropout: float = 0.1,
    backbone: str = "",
) -> DeepLabV3MobileNetV2:
    """DeepLabV3 + MobileNetV2, output stride 16, no ASPP (Boo et al. §5.1); ``backbone``: torchvision weights."""
    model = DeepLabV3MobileNetV2(num_classes, in_channels, width_mult, output_stride, head_channels, dropout)
    if backbone and torch.empty(0).device.type != "meta":  # a size estimate on the meta device reads no file
        load_torchvision_backbone(model, backbone)
    return model
