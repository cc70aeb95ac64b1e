import os

import pytest
import torch

# Small models train faster on one thread, and results do not depend on the thread count.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
