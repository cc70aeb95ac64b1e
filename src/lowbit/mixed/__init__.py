"""Mixed precision: per-layer sensitivity (single-layer drop, Hutchinson Hessian traces) and the exact allocation
of weight bits under a memory (and BitOPs) budget. ``lowbit.sensitivity`` and ``lowbit.allocate_bits``."""

from .allocate import Allocation, allocate_bits, allocation, budget_in_bytes, solve
from .costs import LayerCosts, config_for, layer_costs
from .hutchinson import hutchinson_traces
from .result import Sensitivity
from .sensitivity import CRITERIA, allocatable_layers, sensitivity

__all__ = [
    "CRITERIA",
    "Allocation",
    "LayerCosts",
    "Sensitivity",
    "allocatable_layers",
    "allocate_bits",
    "allocation",
    "budget_in_bytes",
    "config_for",
    "hutchinson_traces",
    "layer_costs",
    "sensitivity",
    "solve",
]
