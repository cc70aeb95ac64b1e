"""Paths from a spec, a stored spec or a store row stay inside the run folder (issue 27; docs/reliability.md).

A run folder may come from someone else ("here is my sweep, rebuild the report"), and so may a spec: the names in
them are data, never paths. Two guards, the second behind the first:

- **At load time** every name that becomes a file name (a figure's ``file``, an extra's figure names, the study
  ``name`` that names the default run folder ``runs/NAME``) must be a *plain name*: 1 to 100 ASCII letters,
  digits, ``_``, ``-`` and ``.``, not starting with ``.`` or ``-``. The set is conservative on purpose: a name
  that passes holds no separator of any platform, cannot be ``.``/``..``, a hidden file, an option-looking
  ``-x``, or a control character, and no Unicode look-alike of a slash (``／`` U+FF0F, ``∕`` U+2215, ``⁄`` U+2044)
  or a combining trick has to be judged: outside ASCII nothing is accepted. A ``model_path`` in the store must be
  a relative path of plain names joined by ``/`` (``jobs/<id>/model.safetensors``, what a sweep writes).
  ``check_name`` / ``check_key_name`` raise ``SpecError`` (one line naming the key); ``model_path_problem``
  says what is wrong for the store to raise its own ``StoreError``.
- **At read and write time** ``inside(root, rel)`` resolves the final path, symbolic links followed, and refuses
  it unless it lies under the resolved run folder; ``check_run_folder`` refuses a run folder holding a symbolic
  link that leads out of it (or anything but files, folders and links: a FIFO would hang a reader). The run
  folder itself may be a link (``runs/x -> /scratch/x``): only what is inside it must stay inside.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from .checker import Checker, SpecError

MAX_NAME = 100
PATH_SHOWN = 300  # a path from the folder (a link's target) is shown up to this length in an error
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # a TOML bare key: printed as it is, anything else quoted
PLAIN_RULE = f"1 to {MAX_NAME} ASCII letters, digits, '_', '-' or '.', not starting with '.' or '-'; no path separators"
MODEL_PATH_RULE = "a relative path of plain names joined by '/', e.g. jobs/<id>/model.safetensors"


class OutsideRunFolder(ValueError):
    """A path lowbit was about to read or write leads out of its run folder."""


def is_plain(name: Any) -> bool:
    """Whether ``name`` is a plain file name (the module docstring's rule)."""
    return isinstance(name, str) and len(name) <= MAX_NAME and _PLAIN.fullmatch(name) is not None


def shown(name: Any, limit: int = 60) -> str:
    """``name`` as an error shows it: ``repr`` (control characters escaped: one line), cut beyond ``limit``."""
    if isinstance(name, str) and len(name) > limit:
        return f"{name[: limit - 20]!r}... ({len(name)} characters)"
    return repr(name)


def key_path(prefix: str, key: Any) -> str:
    """``prefix.key`` as TOML writes a dotted key: a bare key as it is, anything else quoted (long keys cut)."""
    bare = isinstance(key, str) and len(key) <= 60 and _BARE_KEY.fullmatch(key) is not None
    return f"{prefix}.{key if bare else shown(key)}"


def _rule(what: str) -> str:
    return f"a {what} must be a plain file name ({PLAIN_RULE})"


def check_name(c: Checker, path: str, value: Any, what: str = "figure name") -> None:
    """``path = value`` must be a plain name: ``s.toml: report.figures[0].file = '../x': a figure name must ...``."""
    if not is_plain(value):
        raise SpecError(f"{c.source}: {path} = {shown(value)}: {_rule(what)}")


def check_key_name(c: Checker, prefix: str, key: Any, what: str = "figure name") -> None:
    """A table key that is a name: ``s.toml: report.extras.score_vs_axis.figures.'../x': a figure name must ...``."""
    if not is_plain(key):
        raise SpecError(f"{c.source}: {key_path(prefix, key)}: {_rule(what)}")


def check_extra_names(c: Checker, path: str, extra: Any, options: dict) -> None:
    """The names a report extra's options give to files: an extra says which with a ``figure_names(options)``
    attribute returning ``(option, name, keyed)`` triples (``keyed``: the name is a key of the ``option`` table);
    an extra without one names no file from its options."""
    names = getattr(extra, "figure_names", None)
    for option, name, keyed in names(options) if names is not None else []:
        if keyed:
            check_key_name(c, f"{path}.{option}", name)
        else:
            check_name(c, f"{path}.{option}", name)


def plain(name: Any, what: str = "figure name") -> str:
    """``name`` if it is a plain name, else ``OutsideRunFolder`` (the write-time twin of ``check_name``)."""
    if not is_plain(name):
        raise OutsideRunFolder(f"{what} {shown(name)}: {_rule(what)}")
    return name


def default_figure_name(text: str) -> str:
    """A file name lowbit makes up (``accuracy_vs_bits_0`` from a metric and an axis, names it does not check as
    file names): every character outside the plain set becomes ``_``, cut to the length limit."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    name = "_" + name[1:] if name[:1] in (".", "-") else name
    return name[:MAX_NAME]


def model_path_problem(model_path: Any) -> str | None:
    """What is wrong with a store row's ``model_path`` (None: nothing; a row without a model has None)."""
    if model_path is None:
        return None
    ok = isinstance(model_path, str) and len(model_path) <= 4 * MAX_NAME and not model_path.startswith("/")
    parts = PurePosixPath(model_path).parts if ok else ()
    if not ok or not parts or "/".join(parts) != model_path or not all(is_plain(p) for p in parts):
        return f"a model file must be inside the run folder ({MODEL_PATH_RULE})"
    return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _real(path: Path) -> str:
    try:
        return os.path.realpath(path, strict=False)
    except (OSError, RuntimeError):  # a loop of links
        return ""


def inside(root: str | Path, rel: str | Path, what: str = "run folder") -> Path:
    """``root / rel`` if it stays inside ``root`` once every symbolic link on the way is followed; else
    ``OutsideRunFolder`` (one line). The path returned is the unresolved one (messages name what the user sees)."""
    path = Path(root) / rel
    real, base = _real(path), _real(Path(root))
    if not base or not real or not _under(real, base):
        to = f" (it leads to {shown(real, PATH_SHOWN)})" if real and real != os.path.abspath(path) else ""
        raise OutsideRunFolder(
            f"{what} {str(root)!r}: {shown(str(rel), PATH_SHOWN)} is outside it{to}; lowbit reads and writes only "
            "inside the run folder"
        )
    return path


def check_run_folder(root: str | Path, what: str = "run folder") -> None:
    """Refuse (``OutsideRunFolder``) a folder holding a symbolic link that leads out of it, or an entry that is
    neither a file, a folder nor a link (a FIFO, a device, a socket). Links are not followed while walking; a link
    inside the folder to another place inside it is fine. Nothing happens for a folder that does not exist."""
    root = Path(root)
    if not root.is_dir():
        return
    base = _real(root)
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            p = Path(folder) / name
            rel = str(p.relative_to(root))
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                real = _real(p)
                if not real or not _under(real, base):
                    raise OutsideRunFolder(
                        f"{what} {str(root)!r}: {shown(rel, PATH_SHOWN)} is a symbolic link out of it (to "
                        f"{shown(os.readlink(p), PATH_SHOWN)}); lowbit reads and writes only inside the run folder"
                    )
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise OutsideRunFolder(
                    f"{what} {str(root)!r}: {shown(rel, PATH_SHOWN)} is not a regular file or folder (a FIFO, "
                    "device or socket); a run folder holds files"
                )
