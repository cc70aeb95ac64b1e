"""The papers' data sets at the paper scale, read by the real loaders from small files in the real formats written
here: ILSVRC-2012 folders (against torchvision's preprocessing), the full TIMIT layout, GlaS's 85 / 80 split,
PASCAL VOC 2012 segmentation; a missing set is one line saying what to put where."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from support.data_files import write_glas, write_imagenet, write_timit_corpus, write_voc
from support.zoo import import_torchvision

from lowbit.data.paths import MissingData
from lowbit.data.sets import build_dataset
from lowbit.train.loop import epoch_batches

try:
    T = import_torchvision().transforms  # the reference preprocessing (the test extra; never the core)
except ImportError:
    pytest.skip("torchvision (the zoo extra) is not installed", allow_module_level=True)


def test_imagenet_val_is_torchvisions_resize_256_center_crop_224(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    d = build_dataset("imagenet", root=str(root))
    assert d.info == {"num_classes": 2, "in_channels": 3, "input_size": 224}
    assert d.test.targets.tolist() == [0, 0, 1, 1] and len(d.train) == 4
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*_mean_std())])
    for i, path in enumerate(d.test.paths):
        with Image.open(path) as im:
            want = ref(im.convert("RGB"))
        x, y = d.test[i]
        assert x.shape == (3, 224, 224) and y == d.test.targets[i]
        torch.testing.assert_close(x, want, atol=1e-5, rtol=0)


def _mean_std():
    from lowbit.data.imagenet import MEAN, STD

    return MEAN, STD


def test_imagenet_train_crop_and_flip_follow_torchvisions_draws(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    d = build_dataset("imagenet", root=str(root), threads=3)
    ref = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*_mean_std())])
    for seed in range(4):
        torch.manual_seed(seed)
        ours = [d.train[i][0] for i in range(len(d.train))]
        torch.manual_seed(seed)
        theirs = []
        for p in d.train.paths:
            with Image.open(p) as im:
                theirs.append(ref(im.convert("RGB")))
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        torch.manual_seed(seed)  # a batch read on threads draws the same crops, in index order
        batch = d.train.__getitems__(list(range(len(d.train))))
        torch.testing.assert_close(torch.stack([b[0] for b in batch]), torch.stack(ours))
    x, y = next(epoch_batches(d.train, 3, seed=0, epoch=0))
    assert x.shape == (3, 3, 224, 224) and y.dtype == torch.int64


def test_a_missing_data_set_is_one_line_saying_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWBIT_DATA", str(tmp_path))
    for name, what in (
        ("imagenet", "ILSVRC-2012"),
        ("timit", "the TIMIT corpus"),
        ("glas", "the GlaS 2015"),
        ("voc2012", "PASCAL VOC 2012"),
    ):
        with pytest.raises(MissingData) as e:
            build_dataset(name)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"missing data: put {what}") and str(tmp_path) in msg, msg


def test_timit_corpus_trains_on_train_without_sa_and_scores_the_core_test(tmp_path):
    root = write_timit_corpus(tmp_path / "timit")
    core = build_dataset("timit", root=str(root), n_features=13, hop_ms=10.0, context=1)
    assert len(core.train) == 1 and len(core.test) == 2  # SI648; MDAB0's SI1039 + SX139 (SA1 dropped)
    x, y = core.train[0]
    assert x.shape[1] == 13 * 3 and y.tolist() != [] and core.info["num_classes"] == 61
    complete = build_dataset("timit", root=str(root), n_features=13, hop_ms=10.0, context=1, test_set="complete")
    assert len(complete.test) == 3  # + MXYZ0's SI1
    with_sa = build_dataset("timit", root=str(root), n_features=13, hop_ms=10.0, context=1, keep_sa=True)
    assert len(with_sa.train) == 2
    assert set(core.test.score([[]] * 2)) == {"per", "mean_hyp_len"}


def test_glas_test_part_test_is_both_test_parts(tmp_path):
    for n, part in [(k, "train") for k in (1, 2)] + [(k, "testA") for k in (1, 2)] + [(1, "testB")]:
        write_glas(tmp_path, f"{part}_{n}", 24 + n, 30, 2, n)
    kw = dict(root=str(tmp_path), size=16, tile=8, tiles_per_image=1)
    both = build_dataset("glas", test_part="test", **kw)
    a, b = build_dataset("glas", test_part="testA", **kw), build_dataset("glas", test_part="testB", **kw)
    assert len(both.test) == 3
    assert torch.equal(both.test.tensors[0], torch.cat([a.test.tensors[0], b.test.tensors[0]]))


def test_voc_reads_palette_masks_keeps_255_and_pads(tmp_path):
    root = write_voc(tmp_path / "VOC2012")
    d = build_dataset("voc2012", root=str(root), crop=64)
    assert (len(d.train), len(d.test)) == (2, 1) and d.info == {"in_channels": 3, "num_classes": 21}
    x, y = d.test[0]
    assert x.shape == (3, 64, 64) and y.shape == (64, 64)
    with Image.open(root / "SegmentationClass" / "2007_000063.png") as m:
        truth = torch.from_numpy(np.asarray(m, dtype=np.int64).copy())
    h, w = truth.shape
    assert torch.equal(y[:h, :w], truth)  # the palette indices are the class ids, 255 kept
    assert (y[h:] == 255).all() and (y[:, w:] == 255).all() and (x[:, h:] == 0).all()
    torch.manual_seed(0)
    for i in range(2):
        xt, yt = d.train[i]
        assert xt.shape == (3, 64, 64) and set(yt.unique().tolist()) <= {0, 1, 2, 255}
