import os

import pytest
import torch

# Small models train faster on one thread, and results do not depend on the thread count.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
# a checkpoint after every epoch, so that the kill-and-resume tests can stop a job between two known epochs (the
# default writes at most every 5 s: tests/train/test_train_checkpoint_clock.py checks that it changes no result)
os.environ.setdefault("LOWBIT_CHECKPOINT_SECONDS", "0")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run where a CUDA device is; elsewhere they are skipped with the reason."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False on this machine")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_spec(tmp_path):
    """The suite's one tiny study (tests/support/specs.py SPIRALS_TINY) written to ``tmp_path/tiny.toml``."""
    from support.specs import SPIRALS_TINY

    path = tmp_path / "tiny.toml"
    path.write_text(SPIRALS_TINY)
    return path
