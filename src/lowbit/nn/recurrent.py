"""Quantized twins of nn.RNN (tanh, relu), nn.LSTM and nn.GRU.

Every weight matrix (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``weight_hr_l{k}`` for projected LSTMs, and their
``_reverse`` twins) is quantized; biases stay float (spec §0). What the configuration gives is kept as the
*template* ``weight_quant`` (that is what ``quantization_map`` reports, so a model can be rebuilt from it);
the forward uses ``weight_quants[<param name>]``, one deep copy of the template per weight matrix, because
quantizers such as ``uniform`` calibrate their step on the first tensor they see and W_ih, W_hh of each layer
have different ranges. The copies' calibrated state is in the state_dict (``weight_quants.weight_hh_l0.step``).
A quantizer that keeps per-parameter state itself (``per_parameter_state = True``, e.g. INQ's ``INQWeight``)
is used directly for every matrix, without copies.

A template that the copies stand in for never runs, so it is a plain attribute, not a submodule: registered,
its parameters (PACT's α, LSQ's s, TTQ's scales) would be parameters of the model that no forward uses, which
``DistributedDataParallel`` (without ``find_unused_parameters``) stops on ("Expected to have finished
reduction"), and which optimizers, weight decay and the PACT regularizer would update for nothing. So
``parameters()``, ``state_dict()`` and ``.to()`` do not see it; files saved while it was a submodule hold its
(never used) state under ``weight_quant.*``/``act_quant.*``, which loading drops. A per-parameter-state
quantizer is the live one and stays a submodule (its state is the layer's).

Activations (``act_quant``), when configured, quantize the two operands of the recurrent matmuls:

    x̂^(k)    = Q_in,k(x^(k))          the input sequence of layer k (shared by both directions)
    ĥ_{t-1}  = Q_h,k,d(h_{t-1})       the hidden state fed back into W_hh at every step

(a hidden-state copy first sees, once, a float-state run of the first batch, so that a calibrating quantizer
does not fix its step on an all-zero h_0; see ``recurrent_loop._direction``) and nothing else: the gate
pre-activations, sigmoid/tanh outputs and the LSTM cell state c_t stay float.
Those are element-wise operations that fixed-point recurrent kernels keep at higher precision (e.g. 16-bit
cell state), while the matmul operands are what low-bit hardware multiplies. Each role gets its own copy of
the act template (``act_quants["input_l0"]``, ``act_quants["hidden_l0_reverse"]``, ...). Note that h lies in
(-1, 1) for tanh cells: an unsigned activation quantizer (``uniform`` with ``signed=False``, PACT) clips its
negative half to 0; use ``signed=True`` for tanh states.

Execution: with float activations the weights are quantized once per forward and torch's fused recurrent op
runs with them (no Python loop over time). With quantized activations, or ``force_loop = True``, a plain
Python time loop (``recurrent_loop.py``) runs instead; it is also the reference the fused path is tested
against.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..quantizers import Quantizer
from ..quantizers.base import float32_under_autocast
from .qmodule import QuantMixin, adopt_parameters, register_twin
from .recurrent_loop import recurrent_loop

TEMPLATES = ("weight_quant", "act_quant")


def weight_matrix_names(module: nn.RNNBase) -> tuple[str, ...]:
    """Names of the weight matrices of a recurrent module (biases excluded, spec §0)."""
    return tuple(n for n in module._flat_weights_names if n.startswith("weight_"))


class _QuantRNNBase(QuantMixin):
    """Shared behaviour of the recurrent twins (subclasses also inherit the float class)."""

    force_loop: bool = False  # True: always run the Python time loop (the reference path)

    @property
    def quant_weight_names(self) -> tuple[str, ...]:
        return weight_matrix_names(self)

    @staticmethod
    def weight_names_of(module: nn.RNNBase) -> tuple[str, ...]:
        """``quant_weight_names`` of the twin a float module would become (used by INQ before the swap)."""
        return weight_matrix_names(module)

    def __setattr__(self, name, value):
        if name not in TEMPLATES:
            super().__setattr__(name, value)
            return
        if value is not None and value.per_parameter_state:
            super().__setattr__(name, value)  # the live quantizer: a submodule (nn.Module drops a __dict__ entry)
        else:
            self._modules.pop(name, None)
            object.__setattr__(self, name, value)  # a template (or None): an attribute, outside the module tree
        # Assigning a template (quantize_, INQ, load) rebuilds its per-tensor copies, so they never go stale.
        if name == "weight_quant":
            super().__setattr__("weight_quants", _copies(value, self.quant_weight_names))
        else:
            super().__setattr__("act_quants", _copies(value, self._act_roles()))
            self.__dict__.pop("_warmed_act_roles", None)  # new copies: show each its first float-state run again

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Files saved while the templates were submodules hold their state; it was never used (the copies run)
        for t in TEMPLATES:
            if t not in self._modules:
                for k in [k for k in state_dict if k.startswith(f"{prefix}{t}.")]:
                    del state_dict[k]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _act_roles(self) -> tuple[str, ...]:
        sfx = ("", "_reverse") if self.bidirectional else ("",)
        roles = []
        for k in range(self.num_layers):
            roles += [f"input_l{k}"] + [f"hidden_l{k}{s}" for s in sfx]
        return tuple(roles)

    @classmethod
    def from_float(cls, module: nn.RNNBase, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        kwargs = dict(
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
        )
        if isinstance(module, nn.LSTM):
            kwargs["proj_size"] = module.proj_size
        if isinstance(module, nn.RNN):
            kwargs["nonlinearity"] = module.nonlinearity
        with torch.device("meta"):
            q = cls(module.input_size, module.hidden_size, **kwargs)
        adopt_parameters(q, module)  # RNNBase.__setattr__ refreshes _flat_weights with the adopted Parameters
        q._set_quantizers(weight_quant, act_quant)
        return q

    def weight_quantizer(self, name: str) -> Quantizer | None:
        """The quantizer applied to weight matrix ``name`` (its own copy, or a per-parameter-state quantizer)."""
        q = self.weight_quant
        if q is None or q.per_parameter_state:
            return q
        return self.weight_quants[name]

    def quantize_act(self, role: str, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation quantizer copy of ``role`` ("input_l0", "hidden_l1_reverse", ...)."""
        return x if self.act_quant is None else self.act_quants[role](float32_under_autocast(x))

    def forward(self, input, hx=None):
        if self.force_loop or self.act_quant is not None:
            return recurrent_loop(self, input, hx)
        return self._fused_forward(input, hx)

    def _fused_forward(self, input, hx):
        """torch's own forward (packing, hx checks, _VF kernel) with the quantized matrices in ``_flat_weights``."""
        # torch re-reads the Parameters when its weak refs are stale (after adopt_parameters, functional_call);
        # do that first, or it would overwrite the quantized list below with the float weights.
        self._update_flat_weights()
        quantized = set(self.quant_weight_names) if self.weight_quant is not None else set()
        flat = [self.quantized_weight(n) if n in quantized else getattr(self, n) for n in self._flat_weights_names]
        saved = self._flat_weights
        self._flat_weights = flat  # each matrix quantized once per forward, not per time step
        try:
            return self.float_class.forward(self, input, hx)
        finally:
            self._flat_weights = saved


def _copies(template: Quantizer | None, names: tuple[str, ...]) -> nn.ModuleDict:
    if template is None or template.per_parameter_state:
        return nn.ModuleDict()
    return nn.ModuleDict({n: copy.deepcopy(template) for n in names})


@register_twin(nn.RNN)
class QuantRNN(_QuantRNNBase, nn.RNN):
    """nn.RNN (tanh or relu) with quantized weight matrices and, optionally, quantized x_t / h_{t-1}."""


@register_twin(nn.LSTM)
class QuantLSTM(_QuantRNNBase, nn.LSTM):
    """nn.LSTM (projection included) with quantized weight matrices and, optionally, quantized x_t / h_{t-1}."""


@register_twin(nn.GRU)
class QuantGRU(_QuantRNNBase, nn.GRU):
    """nn.GRU with quantized weight matrices and, optionally, quantized x_t / h_{t-1}."""
