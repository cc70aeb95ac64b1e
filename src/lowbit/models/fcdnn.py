"""Fully connected ReLU nets "width-depth" of Boo et al. §3.2 (spec §8).

"depth" counts the linear layers: 200-4 is 2->200->200->200->2 (81K parameters, as the paper says) and
128-6 is 66K. The residual variant adds each hidden layer's input to its output and halves the sum:
h_{l+1} = 0.5·(relu(W_l h_l + b_l) + h_l) for the hidden->hidden layers. Weights use He initialisation, biases 0,
except ``first_bias = c > 0``: the first layer's biases are drawn from U(-c, c). With every bias 0 the whole net is
positively homogeneous (f(t·x) = t·f(x), t > 0): at initialisation every unit is linear along each ray from the
origin, and the first layer's ReLU kinks are lines through the origin, while the spirals' labels change every r
along a ray. Biases of the order of the data's radius (c = 1 for the spirals' ρ <= 1.05) spread the kinks over the
disc: with the spirals study's recipe the float 128-4 went from 83 % to 97 % test accuracy (docs/studies/spirals.md).
``in_features`` defaults to 2 (the spirals); an input of another width fails with one line naming both sizes, and
an image batch (N, C, H, W) with one saying to flatten it (a study does that for fcdnn: it registers as taking
vectors).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..arguments import Positive, Range
from .registry import VECTORS, register_model


class FCDNN(nn.Module):
    def __init__(
        self,
        width: int = 128,
        depth: int = 4,
        residual: bool = False,
        in_features: int = 2,
        num_classes: int = 2,
        first_bias: float = 0.0,
    ):
        super().__init__()
        for name, v, lo in (
            ("width", width, 1),
            ("depth", depth, 2),
            ("in_features", in_features, 1),
            ("num_classes", num_classes, 1),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"fcdnn: {name}={v!r} is not accepted; expected a whole number >= {lo}")
        if isinstance(first_bias, bool) or not isinstance(first_bias, (int, float)) or not 0 <= first_bias < 1e6:
            raise ValueError(f"fcdnn: first_bias={first_bias!r} is not accepted; expected a number >= 0")
        self.width, self.depth, self.residual = width, depth, bool(residual)
        self.in_features, self.num_classes = in_features, num_classes
        dims = [in_features] + [width] * (depth - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(width, num_classes)
        # He (Kaiming) init for ReLU layers: PyTorch's default (a=sqrt(5)) shrinks the signal ~0.6x per layer,
        # and a plain 128-8 then fails to train at all on the spirals.
        for layer in [*self.hidden, self.out]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        if first_bias > 0:  # after the weights: the default (0) draws nothing more, so old models are unchanged
            nn.init.uniform_(self.hidden[0].bias, -float(first_bias), float(first_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, in_features) -> (N, num_classes)
        if isinstance(x, torch.Tensor) and x.dim() > 2:  # (fx proxies pass)
            n = x[0].numel()
            raise ValueError(
                f"fcdnn takes (N, in_features) vectors but got inputs of shape {tuple(x.shape)}: flatten them to "
                f"(N, {n}) first (a study flattens image data for fcdnn unless its model entry sets flatten = false)"
            )
        if isinstance(x, torch.Tensor) and (x.dim() == 0 or x.shape[-1] != self.in_features):
            n = x.shape[-1] if x.dim() else 1
            raise ValueError(
                f"fcdnn: the input has {n} features per example (shape {tuple(x.shape)}) but the model was built "
                f"with in_features={self.in_features}; build it with in_features={n} (config: [model] in_features)"
            )
        for i, layer in enumerate(self.hidden):
            h = torch.relu(layer(x))
            x = 0.5 * (h + x) if self.residual and i > 0 else h
        return self.out(x)


@register_model("fcdnn", test_kwargs={"width": 16, "depth": 3}, **VECTORS)
def fcdnn(
    width: Positive = 128,
    depth: Annotated[int, Range(2)] = 4,
    residual: bool = False,
    in_features: Positive = 2,
    num_classes: Positive = 2,
    first_bias: Annotated[float, Range(0)] = 0.0,
) -> FCDNN:
    """Fully connected ReLU net of ``depth`` linear layers, ``width`` units wide (``residual``: halved skip sums;
    ``first_bias``: the first layer's biases from U(-first_bias, first_bias), 0 = zeros)."""
    return FCDNN(width, depth, residual, in_features, num_classes, first_bias)
