"""One writer per run folder: an advisory lock that a crashed process cannot leave stuck.

The lock is ``fcntl.flock`` on ``FOLDER/.lowbit.lock``. The kernel drops a flock when its process dies (also
on SIGKILL), so a stale lock never blocks a resume; the file itself stays and records who held it last
(pid, host, start time, command) so that a refused second writer can say who holds the folder.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".lowbit.lock"


class RunLocked(RuntimeError):
    """Another live process holds the run folder."""


class RunLock:
    """``with RunLock(folder): ...`` holds ``folder`` for this process; a second holder gets ``RunLocked``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: not inherited by exec'd children; O_NOFOLLOW: a link in the folder's place is not followed
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(
                f"run folder {str(self.folder)!r} is in use by another lowbit process ({holder}); "
                "wait for it to finish or stop it, then --resume"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        info["command"] = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: {info.get('command', '')}".strip()
