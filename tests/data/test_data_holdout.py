"""A validation split held out of the training images (``lowbit.data.transforms.holdout`` and the image data sets'
``validation`` option): disjoint, stratified, deterministic, and it replaces the test set."""

from __future__ import annotations

import pytest
import torch

from lowbit.data.sets.images import _images
from lowbit.data.transforms import ImageSet, holdout


def _set(n_per_class=(30, 20, 10)):
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(n_per_class)])
    images = torch.arange(len(labels) * 3, dtype=torch.int64).reshape(-1, 3, 1, 1).remainder(256).to(torch.uint8)
    images[:, 0, 0, 0] = torch.arange(len(labels)).to(torch.uint8)  # image i is told apart by its first pixel
    return ImageSet(images, labels, ("a", "b", "c"))


def test_holdout_is_disjoint_stratified_and_deterministic():
    data = _set()
    rest, held = holdout(data, 12, seed=3)
    ids_rest, ids_held = set(rest.images[:, 0, 0, 0].tolist()), set(held.images[:, 0, 0, 0].tolist())
    assert not ids_rest & ids_held and len(ids_rest | ids_held) == len(data) == 60
    assert torch.bincount(held.labels, minlength=3).tolist() == [4, 4, 4]  # round-robin over the classes
    again = holdout(data, 12, seed=3)[1]
    assert torch.equal(again.images, held.images) and not torch.equal(holdout(data, 12, seed=4)[1].images, held.images)
    for bad in (0, 60, -1, 2.5):
        with pytest.raises(ValueError, match=f"validation={bad!r} is not accepted; expected a number of images"):
            holdout(data, bad)


def test_validation_replaces_the_test_set_and_is_never_trained_on():
    train, test = _set(), _set((5, 5, 5))
    d = _images("toy", train, test, subset=0, test_subset=0, flatten=False, seed=0, validation=9)
    assert len(d.train) == 51 and len(d.test) == 9
    rest, held = holdout(train, 9, seed=0)
    assert torch.equal(d.test.tensors[1], held.labels) and torch.equal(d.train.tensors[1], rest.labels)
    assert "validation: 9 held-out training images" in d.description
    plain = _images("toy", train, test, subset=0, test_subset=0, flatten=False, seed=0)
    assert len(plain.test) == 15  # without validation the test set is the test set
