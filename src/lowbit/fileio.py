"""Atomic file writing: every file lowbit writes is complete or absent.

The bottom of the layering (imports nothing from lowbit). A writer gets a temporary path in the target's own
folder (``.NAME.XXXXXXXX.tmp``, so the final ``os.replace`` is a rename on one file system), fills it, fsyncs
it and renames it over the target. On any error (a full disk, a kill signal turned into an exception, a
library that raises half-way) the temporary file is removed and the old target, if any, is untouched.
A SIGKILL can still leave a temporary file behind: ``clean_stale_temps`` removes those on resume.

Files get the mode an ordinary ``open(path, "w")`` would give them (0o666 minus the umask), not the 0o600
of ``mkstemp``.

A full disk surfaces as ``DiskFullError`` (an ``OSError`` with ``errno.ENOSPC`` whose ``filename`` is the
target, not the temporary file), also when the writing library reports it in its own exception type
(safetensors, matplotlib, SQLite). A target that exists but is not a regular file (a folder, ``/dev/null``)
is refused before anything is written: renaming over it would replace a device node or fail late.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
# what _tmp_name makes (8 hex digits), and the mkstemp names of older lowbit versions (8 of [a-z0-9_])
_TMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
# safetensors' own temporary file inside our temporary one's folder (Rust `tempfile` crate: ".tmp" + 6 chars); a
# kill while safetensors writes leaves it behind
_RUST_TMP_RE = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")


class DiskFullError(OSError):
    """No space left on the device while writing ``filename``; the previous file there, if any, is unchanged."""

    def __init__(self, path: str | Path):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def __str__(self) -> str:
        return f"no space left on device writing {self.filename}; nothing already written was changed"


class NotAFileError(OSError):
    """The target of a write exists and is not a regular file (a folder, a device such as /dev/null)."""


def _umask_mode() -> int:
    """0o666 minus the process umask, read without changing it (Linux: /proc), else by the set-and-restore
    dance (which briefly sets the umask to 0 for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT, also when a library wraps it in its own exception type (text only)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "disk quota exceeded" in text or "database or disk is full" in text


def check_target(path: str | Path) -> Path:
    """``path`` as a Path, refused (``IsADirectoryError`` / ``NotAFileError``) if it exists and is not a file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; expected a file path", str(path))
    if os.path.lexists(path) and not path.is_file():
        raise NotAFileError(errno.EINVAL, "exists and is not a regular file; expected a file path", str(path))
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it becomes ``path``, otherwise it is removed.

    For libraries that write by file name (``savefig``, ``onnx.save``, ``safetensors.save_file``, SQLite).
    Raises ``IsADirectoryError`` / ``NotAFileError`` if ``path`` exists and is not a regular file, before
    anything is written, and ``DiskFullError`` if the disk fills up.
    """
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(path) from None
        raise
    tmp = _tmp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file for {str(path)!r}")
        os.chmod(tmp, _umask_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, Exception) and not isinstance(e, DiskFullError) and is_disk_full(e):
            raise DiskFullError(path) from e
        if isinstance(e, OSError) and e.filename == str(tmp) and e.errno is not None:  # name the user's file
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result over ``path`` (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_savefig(fig: Any, path: str | Path, **kwargs: Any) -> None:
    """``fig.savefig(path, **kwargs)`` through a temporary file; the format comes from ``path``'s suffix."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)


def atomic_append_lines(path: str | Path, lines: list[str]) -> None:
    """Append ``lines`` (each without its newline) by rewriting the file atomically: no half line after a kill."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(line + "\n" for line in lines))


def is_stale_temp(p: Path) -> bool:
    """True for a temporary file name that an atomic writer of this or an older lowbit makes."""
    return bool(_TMP_RE.match(p.name) or _RUST_TMP_RE.match(p.name))


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files an interrupted writer left under ``folder`` (recursively); return them.

    Call it only while holding the folder's run lock: another live writer's temporary files look the same.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted({*folder.rglob(f".*{TMP_SUFFIX}"), *folder.rglob(".tmp*")}):
        if is_stale_temp(p) and p.is_file() and not p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
