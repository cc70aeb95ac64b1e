"""Active learning: suggestive annotation (uncertainty + representativeness), spec §6."""

from .suggest import (
    bootstrap_indices,
    ensemble_similarity,
    image_uncertainty,
    max_cover_greedy,
    score_images,
    suggest,
    top_k_uncertain,
)

__all__ = [
    "bootstrap_indices",
    "ensemble_similarity",
    "image_uncertainty",
    "max_cover_greedy",
    "score_images",
    "suggest",
    "top_k_uncertain",
]
