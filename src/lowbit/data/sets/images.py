"""Image classification data sets: idx (MNIST / Fashion-MNIST), CIFAR-10/100 (python format), the CIFAR-10 JPEG
folders and any image folder. Images are normalised with the training set's channel statistics; items are
(C, H, W) images and class labels. A model that takes vectors (``fcdnn``, or a model entry with ``flatten =
true``) gets them flattened per job, so an MLP and a CNN share one study; ``flatten = true`` here flattens the set
itself for every model (kept for old specs).
"""

from __future__ import annotations

from typing import Literal

from ...arguments import Count
from . import Data, flatten_images, register_dataset
from .sizes import F32, DataSizes, image_set_sizes

IMAGES = dict(gives="(N, C, H, W) images", targets="class labels", task="image_classification*, classification")


def _images(
    name: str, train, test, subset: int, test_subset: int, flatten: bool, seed: int, validation: int = 0
) -> Data:
    """ImageSets -> normalised TensorDatasets (train statistics), optional stratified subsets and flattening.

    ``validation`` > 0 holds that many stratified training images out (never trained on) and evaluates on them
    instead of the test set, which is then not read at all (model selection without touching the test set)."""
    from .. import transforms as T

    if validation:
        train, test = T.holdout(train, validation, seed)
        name = f"{name}, validation: {validation:,} held-out training images"
    train, test = T.subset(train, subset, seed), T.subset(test, test_subset, seed)
    mean, std = T.channel_stats(train.images)
    tr, te = T.to_tensor_dataset(train, mean, std), T.to_tensor_dataset(test, mean, std)
    _, c, h, w = train.images.shape
    info = {"num_classes": len(train.classes), "in_channels": c, "input_size": h}
    data = Data(tr, te, info, f"{name} ({len(train):,} training images {c}x{h}x{w})")
    return flatten_images(data) if flatten else data


@register_dataset("fashion_mnist", sizes=lambda a: image_set_sizes(60_000, 10_000, 1, 28, 10, a), **IMAGES)
def fashion_mnist(
    root: str = "",
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """Fashion-MNIST in idx format (``root`` or the shared/system copy)."""
    from ..idx import load_fashion_mnist

    r = root or None
    tr, te = load_fashion_mnist("train", r), load_fashion_mnist("test", r)
    return _images("Fashion-MNIST", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("idx", **IMAGES)
def idx(
    root: str,
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """Any MNIST-format idx folder (``train-images-idx3-ubyte`` ...; ``.gz`` accepted)."""
    from ..idx import load_idx_split

    tr, te = load_idx_split(root, "train"), load_idx_split(root, "test")
    return _images(f"idx {root}", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10", sizes=lambda a: image_set_sizes(50_000, 10_000, 3, 32, 10, a), **IMAGES)
def cifar10(
    root: str,
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """CIFAR-10 in the original python format (read with a restricted unpickler)."""
    from ..cifar import load_cifar10

    tr, te = load_cifar10(root, "train"), load_cifar10(root, "test")
    return _images("CIFAR-10", tr, te, subset, test_subset, flatten, seed, validation)


def _cifar100_sizes(a: dict) -> DataSizes:
    return image_set_sizes(50_000, 10_000, 3, 32, 100 if a["label"] == "fine" else 20, a)


@register_dataset("cifar100", sizes=_cifar100_sizes, **IMAGES)
def cifar100(
    root: str,
    label: Literal["fine", "coarse"] = "fine",
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """CIFAR-100 in the original python format (``label`` = "fine" | "coarse")."""
    from ..cifar import load_cifar100

    tr, te = load_cifar100(root, "train", label), load_cifar100(root, "test", label)
    return _images("CIFAR-100", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10_jpeg", sizes=lambda a: image_set_sizes(50_000, 10_000, 3, 32, 10, a), **IMAGES)
def cifar10_jpeg(
    archive: str = "",
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """The real CIFAR-10 as JPEG folders (the shared archive, extracted and decoded once into the cache)."""
    from ..folders import load_cifar10_jpeg

    a = archive or None
    tr, te = load_cifar10_jpeg("train", a), load_cifar10_jpeg("test", a)
    return _images("CIFAR-10 (JPEG)", tr, te, subset, test_subset, flatten, seed, validation)


def _folder_sizes(a: dict) -> DataSizes:
    """Resized to size x size when given: one image per split at least (the number of classes is the folders')."""
    if not a["size"]:
        return DataSizes({"in_channels": a["channels"]})
    item = a["channels"] * a["size"] ** 2
    info = {"in_features": item} if a["flatten"] else {"in_channels": a["channels"], "input_size": a["size"]}
    return DataSizes(info, item * F32, ("size",), 2 * item * (1 + F32), ("size",))


@register_dataset("image_folder", sizes=_folder_sizes, **IMAGES)
def image_folder(
    root: str,
    size: Count = 0,
    channels: Literal[1, 3] = 3,
    subset: Count = 0,
    test_subset: Count = 0,
    flatten: bool = False,
    seed: Count = 0,
    validation: Count = 0,
) -> Data:
    """Images in ``root/{train,test}/<class>/*.jpg|png``: the class names are the sub-folder names (sorted,
    shared by both splits); ``channels`` 1 (grayscale) or 3 (RGB); resized to ``size`` x ``size`` when given (else
    every image must have the same size)."""
    from ..folders import load_image_folder

    tr = load_image_folder(root, "train", size or None, channels)
    te = load_image_folder(root, "test", size or None, channels)
    return _images(f"image folder {root}", tr, te, subset, test_subset, flatten, seed, validation)


IMAGENET_WHAT = "ILSVRC-2012 (train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, 1,000 class folders)"


def _imagenet_sizes(a: dict) -> DataSizes:
    """Read image by image: the set holds the labels only (the paths aside); items are 3 x 224 x 224."""
    info = {"num_classes": 1000, "in_channels": 3, "input_size": 224}
    return DataSizes(info, 3 * 224 * 224 * F32, (), (1_281_167 + 50_000) * 8, ())


def _imagenet_locate(a: dict) -> list[tuple[str, str, str]]:
    return [("imagenet", IMAGENET_WHAT, a["root"])]


@register_dataset(
    "imagenet",
    sizes=_imagenet_sizes,
    locate=_imagenet_locate,
    counts=lambda a: (1_281_167, 50_000),  # (training, test) items, for --dry-run's estimate
    **IMAGES,
)
def imagenet(root: str = "", threads: Count = 0) -> Data:
    """ILSVRC-2012 in class folders (``root`` or ``<data root>/imagenet``; ``lowbit.data.imagenet``): read image
    by image with the standard preprocessing (train: random-resized-crop 224 + flip; val: resize 256, center crop
    224; ImageNet mean / std), evaluated on the 50,000 validation images. ``threads``: decoding threads per batch
    (0: up to 16)."""
    from ..imagenet import ImageNetFolder
    from ..paths import require_data

    base = require_data("imagenet", IMAGENET_WHAT, root)
    train = ImageNetFolder(base, "train", threads=threads)
    val = ImageNetFolder(base, "val", train.classes, threads=threads)
    info = {"num_classes": len(train.classes), "in_channels": 3, "input_size": 224}
    desc = f"ILSVRC-2012 ({len(train):,} training images, {len(val):,} validation images, {len(train.classes)} classes)"
    return Data(train, val, info, desc)
