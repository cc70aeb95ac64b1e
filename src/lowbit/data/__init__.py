"""Data loaders for the real data sets (each module reads one format; ``paths`` finds the shared data)."""

from . import features, fsdd, speech_collate, timit  # noqa: F401  (speech data)
from .glas import GlasDataset, GlasItem  # noqa: E402,F401  (segmentation: GlaS folder format)
from .isbi import load_isbi, random_tiles  # noqa: E402,F401  (segmentation: ISBI 2012 EM)
