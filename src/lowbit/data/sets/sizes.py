"""What a data set will hold, estimated from its arguments alone (no file is read): the ``sizes`` fact of its
registration (``register_dataset(name, sizes=fn)``), where ``fn(args)`` gets the builder's arguments with their
defaults filled in and returns ``DataSizes``.

The engine checks the estimate against the local limits before the data is built (``lowbit.engine.bounds``,
``lowbit.limits``: ``item_bytes``, ``data_bytes``), and fills the model arguments the data determines (``info``)
to estimate each model's size on the meta device. Where the number of items depends on files (an image folder),
the total counts one item per split: a lower bound, so the check refuses only what cannot fit whatever the files
hold. A data set without ``sizes`` (a plugin's, a ``target``) is simply not estimated before it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

F32, I64 = 4, 8  # bytes of a float32 input element and of an int64 label / mask element


@dataclass(frozen=True)
class DataSizes:
    """info: the ``Data.info`` the set will give (keys that only the files tell are left out).
    item_bytes: the largest input item as float32 (one image, one utterance's features); None: only the files tell.
    total_bytes: every tensor the set holds (train and test inputs and targets), at least.
    item_keys / total_keys: the arguments each estimate grows with (named in a refusal)."""

    info: dict[str, int] = field(default_factory=dict)
    item_bytes: int | None = None
    item_keys: tuple[str, ...] = ()
    total_bytes: int | None = None
    total_keys: tuple[str, ...] = ()


def image_set_sizes(n_train: int, n_test: int, channels: int, side: int, classes: int, args: dict) -> DataSizes:
    """An image classification set of ``n_train`` + ``n_test`` images ``channels`` x ``side`` x ``side`` (the
    uint8 images read and their float32 copy, plus labels); ``args`` the builder's (``subset``, ``test_subset``,
    ``flatten``)."""
    n_train = min(args.get("subset") or n_train, n_train)
    n_test = min(args.get("test_subset") or n_test, n_test)
    item = channels * side * side
    if args.get("flatten"):
        info = {"in_features": item, "num_classes": classes}
    else:
        info = {"num_classes": classes, "in_channels": channels, "input_size": side}
    total = (n_train + n_test) * (item * (1 + F32) + I64)
    return DataSizes(info, item * F32, (), total, ("subset", "test_subset"))


def tiled_sizes(
    n_train: int, n_test: int, channels: int, side: int, tile: int, per_image: int, side_keys: tuple[str, ...]
) -> DataSizes:
    """A segmentation set: ``n_train`` + ``n_test`` images ``side`` x ``side`` with int64 masks, and ``per_image``
    random ``tile`` x ``tile`` crops (with masks) of each training image."""
    pixel = channels * F32 + I64
    images = (n_train + n_test) * side * side * pixel
    tiles = n_train * per_image * tile * tile * pixel
    item, keys = (side, side_keys) if side >= tile else (tile, ("tile",))
    total_keys = ("tile", "tiles_per_image") if tiles >= images else side_keys
    return DataSizes({"in_channels": channels}, channels * item * item * F32, keys, images + tiles, total_keys)


def sequence_sizes(
    n_utterances: int, mean_s: float, max_s: float, n_features: int, hop_ms: float, context: int, classes: int
) -> DataSizes:
    """A speech set: ``n_utterances`` of ``mean_s`` seconds on average (``max_s`` at most), framed every
    ``hop_ms`` into ``n_features`` x (2 ``context`` + 1) float32 features (``lowbit.data.features``)."""
    dim = n_features * (2 * context + 1)
    frames = 1000.0 / hop_ms  # per second
    item = int(max_s * frames) * dim * F32
    total = int(n_utterances * mean_s * frames) * dim * F32
    keys = ("hop_ms", "n_features", "context")
    return DataSizes({"in_features": dim, "num_classes": classes}, item, keys, total, keys)
