"""Progress bars that touch nothing when they are off.

tqdm registers every bar it builds, shown or not (``disable=True`` included), under a write lock that is a
multiprocessing semaphore shared with forked children, and starts a monitor thread that takes the same lock every
few seconds. A process forked from one running lowbit (a user's fork-based pool, the chaos tests) that is killed
while it holds the lock leaves it held for ever, and the next bar in every process sharing it blocks (seen: the
pytest process hung in ``tqdm.__new__`` after a chaos test had SIGKILLed a forked sweep). So with progress off
lowbit builds no tqdm object at all; with progress on it builds a ``tqdm.auto`` bar as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class _Off:
    """The part of tqdm's interface lowbit uses, doing nothing."""

    def __init__(self, iterable: Iterable | None = None):
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, enabled: bool, **kwargs: Any):
    """A ``tqdm.auto`` bar over ``iterable`` (tqdm's keyword arguments) when ``enabled``, else a silent stand-in."""
    if not enabled:
        return _Off(iterable)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
