"""Segmentation metrics: pixel Dice and the GlaS object-level detection F1 (Sirinukunwattana et al. 2017).

Dice (one image):  D(P, G) = 2|P ∩ G| / (|P| + |G|), with D = 1 when both masks are empty.
Object F1 (GlaS challenge rule): objects are connected components (``scipy.ndimage.label``, 4-connectivity by
default; scipy is the ``segmentation`` extra, imported on first use) or the instance ids of an annotation.
Each segmented object S is paired with the ground-truth object G it overlaps most (ties -> lower id) and is
a true positive when it covers more than 50% of it (|S ∩ G| > 0.5 |G|), as in the GlaS evaluation code; two
objects cannot both cover more than half of one G, so the matching is one-to-one. Unmatched segmented objects
are false positives, unmatched ground-truth objects false negatives, F1 = 2TP / (2TP + FP + FN) (1 when there
are no objects at all).

Averaging (``SegmentationScores``): Dice is the mean of the per-image Dice; F1 pools TP/FP/FN over the whole
test set, as the GlaS challenge scores each test part. The seed paper reports "averaged Dice and F1", i.e.
(Dice + F1) / 2 in %, given here as ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..extras import require

FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
EIGHT = np.ones((3, 3), dtype=int)


def _mask(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) mask, got shape {a.shape}")
    return a


def dice(pred, target) -> float:
    """Pixel Dice of two binary (H, W) masks (nonzero = foreground); 1.0 when both are empty."""
    p, g = _mask(pred, "dice pred") != 0, _mask(target, "dice target") != 0
    if p.shape != g.shape:
        raise ValueError(f"dice: pred shape {p.shape} != target shape {g.shape}")
    den = int(p.sum()) + int(g.sum())
    return 1.0 if den == 0 else 2.0 * int((p & g).sum()) / den


def label_objects(mask, connectivity: int = 4, min_size: int = 0) -> np.ndarray:
    """Instance ids (0 = none, 1..n) of the connected components of a binary mask; components with fewer
    than ``min_size`` pixels are dropped (0 keeps all)."""
    if connectivity not in (4, 8):
        raise ValueError(f"label_objects: connectivity={connectivity!r} is not accepted; expected 4 or 8")
    ndimage = require("scipy.ndimage", "label_objects (segmentation object F1)")
    lab, n = ndimage.label(_mask(mask, "label_objects") != 0, structure=FOUR if connectivity == 4 else EIGHT)
    if min_size > 0 and n:
        sizes = np.bincount(lab.ravel())
        keep = sizes >= min_size
        keep[0] = False
        remap = np.zeros(n + 1, dtype=lab.dtype)
        remap[keep] = np.arange(1, int(keep.sum()) + 1)
        lab = remap[lab]
    return lab


def object_counts(pred_instances, gt_instances) -> tuple[int, int, int]:
    """(TP, FP, FN) of the GlaS rule for two instance maps (0 = background, other ids = objects)."""
    s, g = _mask(pred_instances, "pred instances"), _mask(gt_instances, "gt instances")
    if s.shape != g.shape:
        raise ValueError(f"object_counts: pred shape {s.shape} != target shape {g.shape}")
    s_ids = [int(i) for i in np.unique(s) if i != 0]
    g_ids, g_sizes = np.unique(g[g != 0], return_counts=True)
    g_size = dict(zip(g_ids.tolist(), g_sizes.tolist()))
    tp = 0
    for sid in s_ids:
        ids, counts = np.unique(g[(s == sid) & (g != 0)], return_counts=True)
        if ids.size == 0:
            continue
        k = int(np.argmax(counts))  # the ground-truth object S overlaps most; ties -> lower id
        if 2 * int(counts[k]) > g_size[int(ids[k])]:  # > 50% of that object: true positive
            tp += 1
    # two segmented objects cannot both cover > 50% of one ground-truth object, so each TP is a distinct G
    return tp, len(s_ids) - tp, len(g_size) - tp


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    den = 2 * tp + fp + fn
    return 1.0 if den == 0 else 2.0 * tp / den


def object_f1(pred_instances, gt_instances) -> float:
    """Object-level F1 of one image (GlaS rule; see the module docstring)."""
    return f1_from_counts(*object_counts(pred_instances, gt_instances))


@dataclass
class SegmentationScores:
    """Accumulates per-image results; ``summary()`` -> Dice (mean over images), F1 (pooled), score, in %."""

    dices: list[float] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, pred_mask, gt_mask, pred_instances, gt_instances) -> None:
        self.dices.append(dice(pred_mask, gt_mask))
        tp, fp, fn = object_counts(pred_instances, gt_instances)
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn

    def summary(self) -> dict[str, float]:
        if not self.dices:
            raise ValueError("SegmentationScores.summary: no image was added")
        d = 100.0 * float(np.mean(self.dices))
        f = 100.0 * f1_from_counts(self.tp, self.fp, self.fn)
        return {"dice": d, "f1": f, "score": (d + f) / 2, "tp": self.tp, "fp": self.fp, "fn": self.fn}
