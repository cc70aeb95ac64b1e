"""Study-specific report parts, registered by name and named in a spec: ``[report.extras.NAME]`` + options.

An extra is ``fn(results: RunResults, **options) -> Section`` (paragraphs, tables, figures); it reads the run's
rows (and may load the models the store points to), writes its figures under ``figures/`` and never trains.

    @register_extra("spirals_decision_maps")
    def decision_maps(res, resolution=160, groups=(...)): ...
"""

from __future__ import annotations

from collections.abc import Callable

from ...registry import Registry
from .document import Section

# The engine's generic extras; study-specific ones (lowbit.studies: decision maps, segmentation masks, the seed
# paper's observations) plug in through the entry-point group, as a user's package would.
EXTRAS: Registry[Callable[..., Section]] = Registry(
    "report extra",
    modules=[
        f"lowbit.engine.report.{m}"
        for m in ("score_vs_axis", "ensemble_memory", "comparisons", "mixed_bits", "paired_intervals")
    ],
    entry_points="lowbit.report_extras",
)


def register_extra(name: str):
    """Decorator for ``fn(results, **options) -> Section``, named in a spec as ``[report.extras.NAME]``."""
    return EXTRAS.register(name)


def extra_names() -> list[str]:
    return EXTRAS.names()


def get_extra(name: str) -> Callable[..., Section]:
    return EXTRAS.get(name)
