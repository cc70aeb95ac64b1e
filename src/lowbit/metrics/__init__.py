"""Evaluation metrics (one module per application)."""

from . import speech  # noqa: F401  (speech recognition metrics)
from .segmentation import SegmentationScores, dice, object_f1  # noqa: E402,F401  (Dice, GlaS object F1)
