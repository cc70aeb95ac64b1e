"""The documentation runs: every ```python block of README.md and of every page of the docs site (docs/**/*.md),
each file's blocks in order in one namespace; every ``lowbit.x.y`` the docs name exists; the site builds strictly.

A block is skipped only when the line before its fence is an HTML comment starting with ``<!-- no-run``
(used for fragments that need data or hardware the tests do not have); each skip says why in that comment.
Blocks run in a temporary working directory, so the files they write land there. Fences may be indented (blocks
inside a collapsible ``??? example`` section).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NO_RUN = "<!-- no-run"
PAGES = sorted((ROOT / "docs").rglob("*.md"))  # every page of the site


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
    ns: dict = {"__name__": f"doc_{path.stem}"}  # not "__main__": a block must not rely on the main-module guard
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


@pytest.mark.slow  # trains: the CLI tour runs an experiment (about 7 s)
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="the Shipping block exports ONNX (the deploy extra)")
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2, "README.md lost its code examples"
    assert run_blocks(ROOT / "README.md", tmp_path, monkeypatch) == sum(r for _, _, r in blocks)
    assert (tmp_path / "m.lowbit").is_file() and (tmp_path / "m.onnx").is_file()
    assert (tmp_path / "runs" / "w2" / "report.md").is_file() and (tmp_path / "w2.lowbit").is_file()  # the CLI tour


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
    """Every ``lowbit.x.y`` / ``lb.x.y`` written in backticks in README.md or any docs page is a real name."""
    missing = []
    for doc in [ROOT / "README.md", *PAGES]:
        for name in sorted(set(DOTTED.findall(doc.read_text(encoding="utf-8")))):
            if not _resolves(name):
                missing.append(f"{doc.relative_to(ROOT)}: {name}")
    assert not missing, f"documented names that do not exist: {missing}"


def test_the_site_covers_the_docs_folder():
    """The site is every page under docs/ (the pages with code are found recursively, and pages moved into
    folders keep running)."""
    names = {p.relative_to(ROOT / "docs").as_posix() for p in PAGES}
    for page in ("index.md", "install.md", "tour.md", "spec.md", "math/index.md", "math/uniform.md", "studies/cnn.md"):
        assert page in names, f"docs/{page} is missing"
    assert len([p for p in PAGES if python_blocks(p)]) >= 10, "the docs lost their runnable examples"


NOTHING_OUTSIDE = re.compile(r"\.\./shared/(spec|DESIGN|STYLE|seeds)|DESIGN\.md|algorithms\.md|/work/")


def test_nothing_points_outside_the_project():
    """A clone of lowbit alone is whole: no page, README or docstring refers to files beside the project (the data
    folder, found through LOWBIT_DATA, is the one exception and is not matched here)."""
    hits = []
    for path in [ROOT / "README.md", *PAGES, *sorted((ROOT / "src").rglob("*.py"))]:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if NOTHING_OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    assert not hits, "references outside the project:\n" + "\n".join(hits)


def test_spec_reference_names_every_registered_key():
    """docs/spec.md documents every data set, model, task, report extra and [train] field the spec checker accepts,
    so the reference cannot fall behind the registries."""
    from lowbit.data.sets import dataset_names
    from lowbit.engine.report.extras import extra_names
    from lowbit.models import model_names
    from lowbit.tasks import task_names
    from lowbit.train.config import TrainConfig

    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    fields = [f for f in TrainConfig.__dataclass_fields__ if f != "seed"]
    names = [*dataset_names(), *model_names(), *task_names(), *extra_names(), *fields]
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/spec.md does not document: {missing}"


SLOW_PAGES = {"spec.md"}  # pages whose examples run a study (several seconds)
DOCS = [
    pytest.param(p, id=p.relative_to(ROOT / "docs").as_posix(), marks=pytest.mark.slow)
    if p.relative_to(ROOT / "docs").as_posix() in SLOW_PAGES
    else pytest.param(p, id=p.relative_to(ROOT / "docs").as_posix())
    for p in PAGES
    if python_blocks(p)
]


@pytest.mark.parametrize("doc", DOCS)
def test_docs_python_blocks_run(doc, tmp_path, monkeypatch):
    if "export_onnx" in doc.read_text(encoding="utf-8"):
        pytest.importorskip("onnx", reason="this page exports ONNX (the deploy extra)")
    assert run_blocks(doc, tmp_path, monkeypatch) == sum(r for _, _, r in python_blocks(doc))


def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict` (as `make docs` and CI run it): a broken link or anchor, or a page left out of the
    nav, fails the build."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs / mkdocs-material are not installed (the docs extra: pip install -e '.[docs]')")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    assert (tmp_path / "site" / "math" / "uniform" / "index.html").is_file()


CITED = re.compile(r"spec §(\d+[a-h]?)(?:\.(\d+))?")


def test_every_spec_section_the_code_cites_is_a_docs_section():
    """Docstrings and comments cite the math pages as "spec §N" / "spec §N.M": each cited section is a page
    (its title starts with §N) or a numbered heading N.M on one; §10–11 are the sources page and its numbered list."""
    math = ROOT / "docs" / "math"
    pages, headings = set(), set()
    for page in math.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        title = text.splitlines()[0]
        for sec in re.findall(r"§(\d+[a-h]?(?:\.\d+)?)", title):
            pages |= {sec, sec.split(".")[0]}
        headings |= set(re.findall(r"^#+ (\d+\.\d+) ", text, flags=re.M))
    missing = set()
    for path in sorted((ROOT / "src").rglob("*.py")):
        for top, sub in CITED.findall(path.read_text(encoding="utf-8")):
            ok = top in pages and (not sub or f"{top}.{sub}" in pages | headings or top in ("10", "11"))
            if not ok:
                missing.add(f"§{top}{'.' + sub if sub else ''} ({path.relative_to(ROOT)})")
    assert not missing, f"code cites spec sections the docs do not have: {sorted(missing)}"
