"""With progress off, training and sweeps never take tqdm's process-shared lock.

A forked process killed while holding that lock leaves it held for ever; the pytest process once hung in
``tqdm.__new__`` after a chaos test killed a forked sweep. The lock is held here by another thread, standing in for
the dead holder: work with progress off must still finish, and work with progress on must be what blocks (so the
test can tell the difference)."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm import tqdm

from lowbit.progress import progress_bar
from lowbit.train import TrainConfig, fit


def _fit(progress: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    fit(nn.Linear(2, 2), data, TrainConfig(epochs=2, batch_size=16), progress=progress)


def _finishes_while_the_lock_is_held(work, wait_s: float) -> bool:
    held, release = threading.Event(), threading.Event()

    def holder():
        with tqdm.get_lock():
            held.set()
            release.wait(60)

    h = threading.Thread(target=holder, daemon=True)
    h.start()
    assert held.wait(10)
    w = threading.Thread(target=work, daemon=True)
    w.start()
    w.join(wait_s)
    finished = not w.is_alive()
    release.set()
    h.join(10)
    w.join(30)  # a blocked bar goes on once the lock is free: let it end before the next test
    return finished


def test_progress_off_never_takes_the_tqdm_lock():
    assert _finishes_while_the_lock_is_held(lambda: _fit(False), wait_s=60)


@pytest.mark.slow
def test_progress_on_does_take_it():  # the counter-check: the held lock really blocks a tqdm bar
    assert not _finishes_while_the_lock_is_held(lambda: _fit(True), wait_s=3)


def test_the_silent_bar_iterates_and_ignores_updates():
    bar = progress_bar(range(3), enabled=False, desc="x", total=3)
    bar.set_postfix(loss="1"), bar.set_postfix_str("a"), bar.update(2), bar.close()
    assert list(bar) == [0, 1, 2] and list(progress_bar(enabled=False, total=5)) == []
