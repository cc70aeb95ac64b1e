"""The three residual block types of Boo et al. Fig. 4, with their activation-quantization points.

    basic (He et al. 2016a):       x -qa1-> conv3x3-BN-ReLU -qa2-> conv3x3-BN -> (+) -> ReLU
                                   x -qra-> shortcut ---------------------------^
    pre-activation (He 2016b):     x -> BN-ReLU -qa1-> conv3x3 -> BN-ReLU -qa2-> conv3x3 -> (+)
                                   x -qra-> shortcut ------------------------------------^
    depthwise (MobileNetV2):       x -qra-> conv1x1-BN-ReLU6 -qa1-> dw3x3-BN-ReLU6 -qa2-> conv1x1-BN -> (+)
                                            `-> shortcut ----------------------------------------------^

QA points (``qa1``, ``qa2``, ...) quantize the activations inside a block, which come out of a ReLU and are
unsigned; the QRA point (``qra``) quantizes the residual stream on the shortcut path before the addition,
so the shortcut precision can be chosen on its own (Fig. 4; 8 bits in the paper's ImageNet experiment,
seed §5.3). In a depthwise block the stream is a linear bottleneck and is also what the expansion conv
reads, so there one QRA point feeds both. The stream is unsigned after a basic block (it ends in a ReLU)
and signed after pre-activation and depthwise blocks (``ActPoint.signed``): an unsigned quantizer (PACT)
there clips the negative half, which ``point_rules`` can avoid by giving signed points a signed quantizer.

The points are the only activation quantizers of these blocks: a config leaves the convolutions' own input
quantizers off (``QuantConfig.act = None``) and gives the points theirs with the rules ``*qa?`` and
``*qra`` (every block has both), or each quantized signal is quantized twice. The shortcut is the identity,
or a strided 1x1 conv + BN where the shape changes (pre-activation: a 1x1 conv without BN). Convolutions
have no bias (BN follows them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ActPoint


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class _Block(nn.Module):
    """Adds the named ActPoints of a block."""

    def _point(self, name: str, role: str, signed: bool = False) -> None:
        self.add_module(name, ActPoint(role, signed))


class BasicBlock(_Block):
    """Post-activation basic block (two 3x3 convs); the stream between blocks is post-ReLU (unsigned)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self._point("qa1", "qa")
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self._point("qa2", "qa")
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self._point("qra", "qra")
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(self.qa1(x))))
        h = self.bn2(self.conv2(self.qa2(h)))
        return F.relu(h + self.shortcut(self.qra(x)))


class PreActBlock(_Block):
    """Pre-activation basic block; the residual stream is a plain sum (signed)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self._point("qa1", "qa")
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self._point("qa2", "qa")
        self.conv2 = conv3x3(c_out, c_out)
        self._point("qra", "qra", True)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else conv1x1(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.qa1(F.relu(self.bn1(x))))
        h = self.conv2(self.qa2(F.relu(self.bn2(h))))
        return h + self.shortcut(self.qra(x))


class DepthwiseBlock(_Block):
    """MobileNetV2 inverted residual: 1x1 expand to ``hidden``, 3x3 depthwise, 1x1 linear projection.

    hidden == c_in skips the expansion conv (MobileNetV2's first bottleneck, t = 1). ``residual``: add a
    shortcut (identity, or a 1x1 conv + BN when ``projection`` and the shape changes); MobileNetV2 adds one
    only where the shape is kept. ``in_signed``: the block input is a linear bottleneck (no ReLU before it).
    The ``qra`` point quantizes the input stream whether or not there is a shortcut.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        hidden: int,
        *,
        residual: bool = True,
        projection: bool = True,
        in_signed: bool = True,
    ):
        super().__init__()
        self._point("qra", "qra", in_signed)
        self.expand = None
        if hidden != c_in:
            self.expand = nn.Sequential(conv1x1(c_in, hidden), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
            self._point("qa1", "qa")
        self.dw = nn.Sequential(
            conv3x3(hidden, hidden, stride, groups=hidden), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)
        )
        self._point("qa2", "qa")
        self.project = nn.Sequential(conv1x1(hidden, c_out), nn.BatchNorm2d(c_out))
        same = stride == 1 and c_in == c_out
        self.residual = bool(residual) and (same or projection)
        self.shortcut = None
        if self.residual:
            self.shortcut = (
                nn.Identity() if same else nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.qra(x)
        h = xq if self.expand is None else self.qa1(self.expand(xq))
        h = self.project(self.qa2(self.dw(h)))
        return h + self.shortcut(xq) if self.residual else h


def point_rules(model: nn.Module, act, shortcut=None, signed_shortcut=None) -> dict[str, dict]:
    """``QuantConfig.rules`` for the ActPoints of ``model`` (quantizer specs: dicts or registry names).

    act: the QA quantizer (e.g. ``{"name": "pact", "bits": 2}``); shortcut: the QRA quantizer (default: act;
    e.g. an 8-bit one for the paper's 8-bit shortcut). signed_shortcut: a quantizer for the QRA points whose
    stream is signed (pre-activation, depthwise), named one by one ahead of the patterns; default: the same
    as shortcut. The patterns ``*qa?`` and ``*qra`` match every network built from these blocks, so a study
    spec can write them once for all its models.
    """
    act = {"name": act} if isinstance(act, str) else dict(act)
    shortcut = act if shortcut is None else {"name": shortcut} if isinstance(shortcut, str) else dict(shortcut)
    rules: dict[str, dict] = {}
    if signed_shortcut is not None:
        q = {"name": signed_shortcut} if isinstance(signed_shortcut, str) else dict(signed_shortcut)
        for name, m in model.named_modules():
            if isinstance(m, ActPoint) and m.role == "qra" and m.signed:
                rules[name] = {"act": q}
    return {**rules, "*qa?": {"act": act}, "*qra": {"act": shortcut}}
