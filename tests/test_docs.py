"""The documentation runs: every ```python block of README.md (in order, one namespace) and of docs/*.md.

A block is skipped only when the line before its fence is an HTML comment starting with ``<!-- no-run``
(used for fragments that need data or hardware the tests do not have); each skip says why in that comment.
Blocks run in a temporary working directory, so the files they write land there.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NO_RUN = "<!-- no-run"


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """(line number of the fence, code, runnable?) for every ```python block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(2):
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i
        i += 1
        body = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i][indent:])
            i += 1
        i += 1  # closing fence
        if lang != "python":
            continue
        prev = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        blocks.append((start + 1, "\n".join(body) + "\n", not prev.startswith(NO_RUN)))
    return blocks


def run_blocks(path: Path, cwd: Path, monkeypatch) -> int:
    """Run the runnable blocks of ``path`` in order in one namespace; returns how many ran."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # docs scripts that reuse test helpers
    ns: dict = {"__name__": f"doc_{path.stem}"}
    ran = 0
    for line, code, runnable in python_blocks(path):
        if not runnable:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"{path.name}:{line}", "exec"), ns)
        except Exception as e:  # noqa: BLE001  (report which block failed)
            where = f"{path.relative_to(ROOT)} block at line {line}"
            raise AssertionError(f"{where} failed: {type(e).__name__}: {e}") from e
        ran += 1
    return ran


def test_block_parser_finds_and_skips(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("a\n```python\nx = 1\n```\n\n<!-- no-run: needs a GPU -->\n```python\ny = 2\n```\n```bash\nls\n```\n")
    assert python_blocks(md) == [(2, "x = 1\n", True), (7, "y = 2\n", False)]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="the Shipping block exports ONNX (the deploy extra)")
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2, "README.md lost its code examples"
    assert run_blocks(ROOT / "README.md", tmp_path, monkeypatch) == sum(r for _, _, r in blocks)
    assert (tmp_path / "m.lowbit").is_file() and (tmp_path / "m.onnx").is_file()


def test_readme_says_where_the_data_lives():
    from lowbit.data.paths import CACHE_ENV_VAR, ENV_VAR

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ENV_VAR in text and CACHE_ENV_VAR in text


DOTTED = re.compile(r"`[^`\n]*?(?<![\w./-])((?:lowbit|lb)(?:\.[A-Za-z_]\w*)+)")  # not file names like RUN/.lowbit.lock


def _resolves(name: str) -> bool:
    import importlib

    parts = name.split(".")
    obj, path = importlib.import_module("lowbit"), "lowbit"
    for p in parts[1:]:
        path += f".{p}"
        if hasattr(obj, p):
            obj = getattr(obj, p)
            continue
        try:
            obj = importlib.import_module(path)
        except ImportError:
            return False
    return True


def test_names_the_docs_mention_exist():
    """Every ``lowbit.x.y`` / ``lb.x.y`` written in backticks in README.md or docs/*.md is a real name."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in sorted(set(DOTTED.findall(doc.read_text(encoding="utf-8")))):
            if not _resolves(name):
                missing.append(f"{doc.name}: {name}")
    assert not missing, f"documented names that do not exist: {missing}"


DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if python_blocks(p))


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_docs_python_blocks_run(doc, tmp_path, monkeypatch):
    if "export_onnx" in doc.read_text(encoding="utf-8"):
        pytest.importorskip("onnx", reason="this page exports ONNX (the deploy extra)")
    run_blocks(doc, tmp_path, monkeypatch)
