"""FSDD training-set augmentation (issue 30, item 1): speed perturbation, noise and SpecAugment-style masks, fixed
per item from the seed; the test split is never augmented; leave-one-speaker-out through ``test_speaker``."""

from __future__ import annotations

import pytest
import torch
from support.data_files import write_fsdd

from lowbit.data import fsdd
from lowbit.data.features import FeatureConfig
from lowbit.data.sets import load_data

FC = FeatureConfig(hop_ms=20.0, context=0)


def test_augmented_items_are_deterministic_and_differ_from_plain(tmp_path):
    root = write_fsdd(tmp_path / "rec")
    plain = fsdd.connected_digits("train", 5, FC, seed=1, root=root, max_digits=3)
    aug = fsdd.Augment(speed=0.2, noise=0.01, mask=2)
    a = fsdd.connected_digits("train", 5, FC, seed=1, root=root, max_digits=3, augment=aug)
    b = fsdd.connected_digits("train", 5, FC, seed=1, root=root, max_digits=3, augment=aug)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a.items, b.items))  # the same in every process
    assert a.texts == plain.texts and all(torch.equal(x[1], y[1]) for x, y in zip(a.items, plain.items))
    # speed perturbation changes the frame count of at least one utterance (factor in [0.8, 1.2])
    assert any(x[0].shape[0] != y[0].shape[0] for x, y in zip(a.items, plain.items))


def test_masks_zero_bands_and_spans(tmp_path):
    root = write_fsdd(tmp_path / "rec")
    only_mask = fsdd.Augment(mask=3)
    a = fsdd.connected_digits("train", 6, FC, seed=2, root=root, max_digits=4, augment=only_mask)
    plain = fsdd.connected_digits("train", 6, FC, seed=2, root=root, max_digits=4)
    zeroed = 0
    for (x, _), (p, _) in zip(a.items, plain.items):
        assert x.shape == p.shape
        changed = x != p
        assert torch.all(x[changed] == 0)  # a mask only sets values to 0
        zeroed += int(changed.sum())
    assert zeroed > 0


def test_augment_refused_on_the_test_split_and_bad_values(tmp_path):
    root = write_fsdd(tmp_path / "rec")
    with pytest.raises(ValueError, match="augment training sets only"):
        fsdd.connected_digits("test", 2, FC, root=root, augment=fsdd.Augment(mask=1))
    with pytest.raises(ValueError, match="speed"):
        fsdd.Augment(speed=0.7)


def test_leave_one_speaker_out(tmp_path, monkeypatch):
    write_fsdd(tmp_path / "fsdd" / "recordings")
    monkeypatch.setenv("LOWBIT_DATA", str(tmp_path))
    d = load_data({"name": "fsdd_digits", "n_train": 6, "n_test": 3, "test_speaker": "george", "speed": 0.1})
    assert "test speaker george" in d.description
    with pytest.raises(ValueError, match="test_speaker='bob'"):
        load_data({"name": "fsdd_digits", "n_train": 6, "n_test": 3, "test_speaker": "bob"})
