"""Dice and the GlaS object F1 against hand-computed cases and a slow reference."""

import numpy as np
import pytest
import torch

from lowbit.metrics.segmentation import (
    SegmentationScores,
    dice,
    f1_from_counts,
    label_objects,
    object_counts,
    object_f1,
)


def test_dice_hand_computed():
    p = np.array([[1, 1, 0], [0, 0, 0]])
    g = np.array([[1, 0, 0], [1, 0, 0]])
    assert dice(p, g) == pytest.approx(2 * 1 / (2 + 2))  # |P∩G| = 1, |P| = |G| = 2
    assert dice(p, p) == 1.0
    assert dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0  # both empty
    assert dice(np.zeros((2, 2)), np.eye(2)) == 0.0
    assert dice(torch.tensor([[0, 2]]), torch.tensor([[0, 1]])) == 1.0  # nonzero = foreground, tensors accepted


def test_dice_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        dice(np.zeros(4), np.zeros(4))


def test_label_objects_connectivity_and_min_size():
    m = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert label_objects(m, 4).max() == 2  # diagonal neighbours are separate under 4-connectivity
    assert label_objects(m, 8).max() == 1
    big = np.zeros((4, 4), dtype=int)
    big[0, :3] = 1
    big[3, 3] = 1
    lab = label_objects(big, 4, min_size=2)
    assert lab.max() == 1 and lab[3, 3] == 0 and (lab[0, :3] == 1).all()
    with pytest.raises(ValueError, match="connectivity"):
        label_objects(m, 6)


def test_object_counts_glas_rule_hand_computed():
    gt = np.zeros((6, 10), dtype=int)
    gt[0:2, 0:4] = 1  # G1: 8 px
    gt[3:6, 0:4] = 2  # G2: 12 px
    gt[0:3, 6:10] = 3  # G3: 12 px
    seg = np.zeros_like(gt)
    seg[0:2, 0:3] = 1  # covers 6/8 of G1 -> TP
    seg[3:4, 0:4] = 2  # covers 4/12 of G2 -> FP
    seg[0:3, 6:8] = 3  # covers exactly 6/12 = 50% of G3 -> not > 50% -> FP
    seg[5:6, 6:10] = 4  # touches nothing -> FP
    tp, fp, fn = object_counts(seg, gt)
    assert (tp, fp, fn) == (1, 3, 2)
    assert object_f1(seg, gt) == pytest.approx(2 * 1 / (2 + 3 + 2))


def test_object_counts_pairs_with_the_largest_overlap():
    # S overlaps G1 (big, 40% covered, 4 px) and G2 (small, fully covered, 2 px): GlaS pairs S with G1 -> FP
    gt = np.zeros((1, 14), dtype=int)
    gt[0, 0:10] = 1
    gt[0, 12:14] = 2
    seg = np.zeros_like(gt)
    seg[0, 6:14] = 1
    assert object_counts(seg, gt) == (0, 1, 2)


def test_f1_edge_cases():
    z = np.zeros((3, 3), dtype=int)
    assert object_f1(z, z) == 1.0  # no objects anywhere
    assert object_f1(z, np.ones((3, 3), dtype=int)) == 0.0
    assert object_f1(np.ones((3, 3), dtype=int), z) == 0.0
    assert f1_from_counts(0, 0, 0) == 1.0


def _slow_counts(seg, gt):
    """Reference: loops over every pair of objects."""
    s_ids = [i for i in np.unique(seg) if i]
    g_ids = [i for i in np.unique(gt) if i]
    tp = 0
    for s in s_ids:
        best, best_g = -1, None
        for g in g_ids:
            ov = int(((seg == s) & (gt == g)).sum())
            if ov > best:
                best, best_g = ov, g
        if best_g is not None and best > 0 and best > 0.5 * (gt == best_g).sum():
            tp += 1
    return tp, len(s_ids) - tp, len(g_ids) - tp


@pytest.mark.parametrize("seed", range(5))
def test_object_counts_match_slow_reference(seed):
    rng = np.random.default_rng(seed)
    gt = label_objects(rng.random((20, 20)) > 0.55)
    seg = label_objects(rng.random((20, 20)) > 0.55)
    assert object_counts(seg, gt) == _slow_counts(seg, gt)


def test_scores_pool_f1_and_average_dice():
    s = SegmentationScores()
    a = np.array([[1, 0], [0, 0]])
    b = np.array([[0, 0], [0, 1]])
    s.add(a, a, label_objects(a), label_objects(a))  # Dice 1, TP 1
    s.add(a, b, label_objects(a), label_objects(b))  # Dice 0, FP 1, FN 1
    r = s.summary()
    assert r["dice"] == pytest.approx(50.0)
    assert r["f1"] == pytest.approx(100 * 2 / (2 + 1 + 1))
    assert r["score"] == pytest.approx((50.0 + 50.0) / 2)
    with pytest.raises(ValueError, match="no image"):
        SegmentationScores().summary()
