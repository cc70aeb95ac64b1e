"""Image loaders: idx (MNIST format), CIFAR pickles (restricted unpickler), image folders, the CIFAR-10 JPEG
archive (safe extraction + decoded cache), paths and the per-batch transforms."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowbit.data import paths
from lowbit.data import transforms as T
from lowbit.data.cifar import load_cifar10, load_cifar100, safe_load_pickle
from lowbit.data.folders import load_cifar10_jpeg, load_image_folder, safe_extract
from lowbit.data.idx import load_idx_split, read_idx, write_idx

# ---------------------------------------------------------------- paths


def test_shared_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWBIT_DATA", str(tmp_path))
    assert paths.shared_data_dir() == tmp_path
    (tmp_path / "x").mkdir()
    assert paths.require_shared("x") == tmp_path / "x"
    with pytest.raises(FileNotFoundError, match="LOWBIT_DATA"):
        paths.require_shared("missing")


def test_shared_data_dir_default(monkeypatch):
    monkeypatch.delenv("LOWBIT_DATA", raising=False)
    root = paths.repo_root()
    assert (root / "pyproject.toml").is_file()  # the tests run inside the checkout
    assert paths.shared_data_dir() == root.parent / "shared" / "data"


# ---------------------------------------------------------------- idx


def _hand_idx(a: np.ndarray) -> bytes:
    """Independent writer: the idx layout spelled out byte by byte (uint8 only)."""
    head = b"\x00\x00\x08" + bytes([a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    return head + a.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_hand_written(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    for stem, a in (("t10k-images-idx3-ubyte", imgs), ("t10k-labels-idx1-ubyte", labels)):
        raw = _hand_idx(a)
        (tmp_path / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    s = load_idx_split(tmp_path, "test")
    assert s.images.shape == (5, 1, 28, 28) and s.images.dtype == torch.uint8
    assert torch.equal(s.images[:, 0], torch.from_numpy(imgs))
    assert s.labels.tolist() == [0, 9, 3, 3, 1]


def test_idx_other_dtypes_and_errors(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "a.idx", a)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), a)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == b"\x00\x00\x0c\x02" and raw[4:8] == (2).to_bytes(4, "big")
    (tmp_path / "bad").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="data bytes"):
        read_idx(tmp_path / "bad")
    (tmp_path / "notidx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "notidx")
    with pytest.raises(FileNotFoundError, match="neither"):
        load_idx_split(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_idx_split(tmp_path, "val")


def test_fashion_mnist_real():
    from lowbit.data.idx import load_fashion_mnist

    try:
        s = load_fashion_mnist("test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    assert s.images.shape == (10000, 1, 28, 28)
    assert s.labels.bincount().tolist() == [1000] * 10
    assert s.classes[9] == "Ankle boot"


# ---------------------------------------------------------------- CIFAR pickles


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}


def test_cifar10_pickle_layout(tmp_path):
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = _cifar_batch(3, i)
        (tmp_path / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    names = [f"c{i}".encode() for i in range(10)]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    tr = load_cifar10(tmp_path, "train")
    te = load_cifar10(tmp_path, "test")
    assert tr.images.shape == (15, 3, 32, 32) and te.images.shape == (3, 3, 32, 32)
    assert tr.classes[3] == "c3"
    row = batches["test_batch"][b"data"][1]
    # the format: 1024 red, then 1024 green, then 1024 blue, each 32x32 in row order
    assert int(te.images[1, 0, 0, 0]) == row[0]
    assert int(te.images[1, 1, 0, 0]) == row[1024]
    assert int(te.images[1, 2, 31, 31]) == row[3071]
    assert int(te.images[1, 0, 1, 2]) == row[32 + 2]
    assert te.labels.tolist() == [int(v) for v in batches["test_batch"][b"labels"]]


def test_cifar100_and_protocol5(tmp_path):
    rng = np.random.default_rng(1)
    d = {
        b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        b"fine_labels": [0, 99, 5, 5],
        b"coarse_labels": [1, 2, 3, 19],
    }
    (tmp_path / "train").write_bytes(pickle.dumps(d, protocol=5))
    assert load_cifar100(tmp_path, "train").labels.tolist() == [0, 99, 5, 5]
    assert load_cifar100(tmp_path, "train", "coarse").labels.tolist() == [1, 2, 3, 19]
    with pytest.raises(ValueError, match="label"):
        load_cifar100(tmp_path, "train", "medium")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_restricted_unpickler_refuses_code(tmp_path):
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        safe_load_pickle(tmp_path / "evil")


# ---------------------------------------------------------------- image folders and the JPEG archive


def _write_folder(root: Path, fmt: str = "png") -> dict:
    rng = np.random.default_rng(0)
    written = {}
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "airplane"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i:04d}.{fmt}")
                written[(split, c, i)] = a
    return written


def test_image_folder_png_exact(tmp_path):
    w = _write_folder(tmp_path)
    s = load_image_folder(tmp_path, "train")
    assert s.classes == ("airplane", "cat")  # sorted names
    assert s.images.shape == (6, 3, 8, 8) and s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(s.images[3].permute(1, 2, 0).numpy(), w[("train", "cat", 0)])  # PNG is lossless
    g = load_image_folder(tmp_path, "test", channels=1, size=4)
    assert g.images.shape == (4, 1, 4, 4)
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path, "val")
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, "train", channels=2)


def _tar(path: Path, src: Path, arcname: str) -> None:
    with tarfile.open(path, "w:gz") as t:
        t.add(src, arcname=arcname)


def test_cifar_jpeg_archive_extract_and_cache(tmp_path):
    src = tmp_path / "src"
    _write_folder(src, "jpg")
    archive = tmp_path / "a.tar.gz"
    _tar(archive, src, "cifar10-jpeg")
    cache = tmp_path / "cache"
    s = load_cifar10_jpeg("train", archive=archive, cache=cache)
    assert s.images.shape == (6, 3, 8, 8) and s.classes == ("airplane", "cat")
    assert (cache / "cifar10-jpeg-train.npz").is_file()
    assert (cache / "cifar10-jpeg" / "test" / "cat" / "0001.jpg").is_file()
    archive.unlink()  # the second call reads the cache only
    s2 = load_cifar10_jpeg("train", archive=archive, cache=cache)
    assert torch.equal(s.images, s2.images) and torch.equal(s.labels, s2.labels)


@pytest.mark.parametrize("name", ["../evil.txt", "/abs.txt", "cifar10-jpeg/../../evil.txt", "other/x.txt"])
def test_safe_extract_refuses_traversal(tmp_path, name):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo(name)
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="refusing"):
        safe_extract(archive, tmp_path / "dest", "cifar10-jpeg")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "dest" / "cifar10-jpeg").exists()


def test_safe_extract_refuses_links(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo("cifar10-jpeg/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(ValueError, match="not a regular file"):
        safe_extract(archive, tmp_path / "dest", "cifar10-jpeg")


def test_real_cifar10_jpeg_test_split():
    try:
        paths.require_shared("cifar10-jpeg.tar.gz")
    except FileNotFoundError as e:
        pytest.skip(f"shared CIFAR-10 JPEGs absent: {e}")
    s = load_cifar10_jpeg("test")  # extracted and decoded once into ~/.cache/lowbit, then cached
    assert s.images.shape == (10000, 3, 32, 32)
    assert s.labels.bincount().tolist() == [1000] * 10
    assert s.classes[0] == "airplane" and s.classes[-1] == "truck"


# ---------------------------------------------------------------- transforms


def _set(n_per_class=(5, 3, 2)) -> T.ImageSet:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    imgs = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 2, 2, 2).contiguous()
    return T.ImageSet(imgs, labels, ("a", "b", "c"))


def test_subset_stratified_and_deterministic():
    s = _set()
    sub = T.subset(s, 6, seed=3)
    assert len(sub) == 6 and sub.labels.bincount().tolist() == [2, 2, 2]
    assert torch.equal(sub.images, T.subset(s, 6, seed=3).images)
    assert len(T.subset(s, 0)) == 10 and len(T.subset(s, 99)) == 10
    assert T.subset(s, 9).labels.bincount().tolist() == [4, 3, 2]  # class c runs out; the rest fill up
    with pytest.raises(ValueError, match="subset size"):
        T.subset(s, -1)


def test_normalize_reference():
    x = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    y = T.normalize(x, [0.5, 0.2], [0.5, 0.1])
    ref = torch.tensor([[[[(0 - 0.5) / 0.5, (1 - 0.5) / 0.5]], [[(0.2 - 0.2) / 0.1, (0.4 - 0.2) / 0.1]]]])
    assert torch.allclose(y, ref, atol=1e-6)
    m, s = T.channel_stats(torch.full((3, 2, 4, 4), 255, dtype=torch.uint8))
    assert m == [1.0, 1.0] and all(v > 0 for v in s)  # std clamped above 0 for constant images
    with pytest.raises(ValueError, match="channels"):
        T.normalize(x, [0.5], [0.5])


def test_augment_matches_slow_reference():
    x = torch.randn(6, 3, 7, 5)
    g = torch.Generator().manual_seed(4)
    y = T.augment(x, pad=2, flip=True, generator=g)
    g = torch.Generator().manual_seed(4)
    dy = torch.randint(0, 5, (6,), generator=g)
    dx = torch.randint(0, 5, (6,), generator=g)
    f = torch.rand(6, generator=g) < 0.5
    p = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        ref = p[i, :, dy[i] : dy[i] + 7, dx[i] : dx[i] + 5]
        assert torch.equal(y[i], ref.flip(2) if f[i] else ref)
    assert torch.equal(T.augment(x, pad=0, flip=False), x)
    with pytest.raises(ValueError, match="pad"):
        T.augment(x, pad=-1)


def test_imageset_validation():
    with pytest.raises(ValueError, match="uint8"):
        T.ImageSet(torch.zeros(2, 1, 2, 2), torch.zeros(2), ("a",))
    with pytest.raises(ValueError, match="labels"):
        T.ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), ("a",))
