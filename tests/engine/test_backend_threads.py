"""The local backend and torch's thread count: a one-worker backend gives the caller's thread count back."""

from __future__ import annotations

import torch

from lowbit.engine.backends import make_backend


def test_one_worker_backend_gives_back_the_callers_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with make_backend("local", 1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
