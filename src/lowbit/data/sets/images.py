"""Image classification data sets: idx (MNIST / Fashion-MNIST), CIFAR-10/100 (python format), the CIFAR-10 JPEG
folders and any image folder. Images are normalised with the training set's channel statistics; ``flatten =
true`` gives vectors (for fully connected models; a model entry may also ask for flat inputs itself).
"""

from __future__ import annotations

from torch.utils.data import TensorDataset

from . import Data, register_dataset


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
    if flatten:
        tr = TensorDataset(tr.tensors[0].flatten(1), tr.tensors[1])
        te = TensorDataset(te.tensors[0].flatten(1), te.tensors[1])
        info = {"num_classes": len(train.classes), "in_features": c * h * w}
    return Data(tr, te, info, f"{name} ({len(train):,} training images {c}x{h}x{w})")


@register_dataset("fashion_mnist")
def fashion_mnist(
    root: str = "", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0
):
    """Fashion-MNIST in idx format (``root`` or the shared/system copy)."""
    from ..idx import load_fashion_mnist

    r = root or None
    tr, te = load_fashion_mnist("train", r), load_fashion_mnist("test", r)
    return _images("Fashion-MNIST", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("idx")
def idx(root: str, subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0):
    """Any MNIST-format idx folder (``train-images-idx3-ubyte`` ...; ``.gz`` accepted)."""
    from ..idx import load_idx_split

    tr, te = load_idx_split(root, "train"), load_idx_split(root, "test")
    return _images(f"idx {root}", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10")
def cifar10(root: str, subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation=0):
    """CIFAR-10 in the original python format (read with a restricted unpickler)."""
    from ..cifar import load_cifar10

    tr, te = load_cifar10(root, "train"), load_cifar10(root, "test")
    return _images("CIFAR-10", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar100")
def cifar100(
    root: str, label: str = "fine", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed=0, validation=0
):
    """CIFAR-100 in the original python format (``label`` = "fine" | "coarse")."""
    from ..cifar import load_cifar100

    tr, te = load_cifar100(root, "train", label), load_cifar100(root, "test", label)
    return _images("CIFAR-100", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10_jpeg")
def cifar10_jpeg(
    archive: str = "", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0
):
    """The real CIFAR-10 as JPEG folders (the shared archive, extracted and decoded once into the cache)."""
    from ..folders import load_cifar10_jpeg

    a = archive or None
    tr, te = load_cifar10_jpeg("train", a), load_cifar10_jpeg("test", a)
    return _images("CIFAR-10 (JPEG)", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("image_folder")
def image_folder(
    root: str,
    size: int = 0,
    channels: int = 3,
    subset: int = 0,
    test_subset: int = 0,
    flatten: bool = False,
    seed=0,
    validation: int = 0,
):
    """Images in ``root/{train,test}/<class>/*.jpg|png`` (resized to ``size`` when given)."""
    from ..folders import load_image_folder

    tr = load_image_folder(root, "train", size or None, channels)
    te = load_image_folder(root, "test", size or None, channels)
    return _images(f"image folder {root}", tr, te, subset, test_subset, flatten, seed, validation)
