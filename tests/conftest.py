import os

import pytest
import torch

# Small models train faster on one thread, and results do not depend on the thread count.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


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
