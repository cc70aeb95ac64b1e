"""Atomic file writing: every file lowbit writes is complete or absent.

The bottom of the layering (imports nothing from lowbit). A writer gets a temporary path in the target's own
folder (``.NAME.XXXXXXXX.tmp``, so the final ``os.replace`` is a rename on one file system), fills it, fsyncs
it and renames it over the target. On any error (a full disk, a kill signal turned into an exception, a
library that raises half-way) the temporary file is removed and the old target, if any, is untouched.
A SIGKILL can still leave a temporary file behind: ``clean_stale_temps`` removes those on resume.

Files get the mode an ordinary ``open(path, "w")`` would give them (0o666 minus the umask), not the 0o600
of ``mkstemp``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _umask_mode() -> int:
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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it becomes ``path``, otherwise it is removed.

    For libraries that write by file name (``savefig``, ``onnx.save``, ``safetensors.save_file``, SQLite).
    Raises ``IsADirectoryError`` if ``path`` is an existing directory, before anything is written.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{str(path)!r} is a directory; expected a file path", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
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


def atomic_append_lines(path: str | Path, lines: list[str]) -> None:
    """Append ``lines`` (each without its newline) by rewriting the file atomically: no half line after a kill."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(line + "\n" for line in lines))


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files an interrupted writer left under ``folder`` (recursively); return them.

    Call it only while holding the folder's run lock: another live writer's temporary files look the same.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(f".*{TMP_SUFFIX}"):
        if p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
