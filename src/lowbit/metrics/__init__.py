"""Evaluation metrics (one module per application)."""

from .segmentation import SegmentationScores, dice, object_f1  # noqa: E402,F401  (Dice, GlaS object F1)
