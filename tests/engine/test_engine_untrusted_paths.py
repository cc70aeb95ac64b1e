"""Run folders and specs from someone else (issue 27): nothing is written or read outside the run folder.

Every key of a spec that becomes a file name is fuzzed with names that would leave the folder (``..``, absolute
paths, separators of any platform, NUL, very long names, Unicode look-alikes of a slash); a run folder holding
links that lead out of it, and a store row whose ``model_path`` leads out under a valid checksum, are handed to
``lowbit report`` / ``results`` / ``sweep --resume`` / ``--reuse``. Each ends in a one-line refusal, and a listing
of the folder around the run (names, sizes, mtimes) is the same before and after.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.specs import SPIRALS_TINY

from lowbit.cli import main
from lowbit.engine import safepath
from lowbit.engine.report import build_report
from lowbit.engine.report.document import Report
from lowbit.engine.report.pivot import metric_figure
from lowbit.engine.report.results import RunResults
from lowbit.engine.safepath import OutsideRunFolder, check_run_folder, default_figure_name, inside, is_plain
from lowbit.engine.spec import SpecError, parse_spec
from lowbit.engine.store import Store, StoreError
from lowbit.serialize import load_model, save_model
from lowbit.train.checkpoint import CheckpointError

# one float job of the suite's tiny study (one epoch), with a report extra that loads the saved model
TINY = (
    SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]').replace("epochs = 3", "epochs = 1")
    + "[report.extras.spirals_decision_maps]\nresolution = 8\n"
)

BAD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "../../escaped",
    "x/../../y",
    "/abs/x",
    "a/b",
    "a\\b",
    "..\\..\\x",
    "a\x00b",
    "a\nb",
    "x" * 101,
    "y" * 10_000,
    "a\uff0fb",  # FULLWIDTH SOLIDUS
    "a\u2215b",  # DIVISION SLASH
    "a\u2044b",  # FRACTION SLASH
    "\u2025",  # TWO DOT LEADER, a look-alike of ".."
    "caf\u00e9",  # outside ASCII at all
    ".hidden",
    "-rf",
    "a b",
    "C:x",
]
GOOD_NAMES = ["accuracy_vs_bits", "a.b-c_1", "_x", "x" * 100, "Fig8", "0"]


def _raw() -> dict:
    return tomllib.loads(SPIRALS_TINY)


def _comparisons(raw: dict, **names) -> None:
    claims = [{"method": "W2", "against": "float", "expect": "lower"}]
    raw.setdefault("report", {}).setdefault("extras", {})["paired_comparisons"] = {"claims": claims, **names}


def _site_name(raw: dict, name) -> None:
    raw["name"] = name


def _site_figure_file(raw: dict, name) -> None:
    raw["report"]["figures"][0]["file"] = name


def _site_score_vs_axis(raw: dict, name) -> None:
    figures = {name: {"metric": "accuracy", "x": "seed"}}
    raw["report"].setdefault("extras", {})["score_vs_axis"] = {"figures": figures}


def _site_comparisons_figure(raw: dict, name) -> None:
    _comparisons(raw, figure=name)


def _site_comparisons_levels(raw: dict, name) -> None:
    _comparisons(raw, levels_figure=name)


# every key of a spec that becomes a path, and how its refusal starts (after "s.toml: ")
SITES = {
    "name": (_site_name, lambda n: f"name = {safepath.shown(n)}: a study name"),
    "report.figures.file": (_site_figure_file, lambda n: f"report.figures[0].file = {safepath.shown(n)}: a figure"),
    "score_vs_axis.figures": (
        _site_score_vs_axis,
        lambda n: f"{safepath.key_path('report.extras.score_vs_axis.figures', n)}: a figure name",
    ),
    "paired_comparisons.figure": (
        _site_comparisons_figure,
        lambda n: f"report.extras.paired_comparisons.figure = {safepath.shown(n)}: a figure name",
    ),
    "paired_comparisons.levels_figure": (
        _site_comparisons_levels,
        lambda n: f"report.extras.paired_comparisons.levels_figure = {safepath.shown(n)}: a figure name",
    ),
}


def _listing(folder: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Everything under ``folder`` except ``skip`` (links not followed): name -> (kind, size, mtime, link target)."""
    out = {}
    for d, dirs, files in os.walk(folder, followlinks=False):
        if skip is not None and Path(d) == skip:
            dirs[:] = []
            continue
        for n in (*dirs, *files):
            p = Path(d) / n
            if skip is not None and p == skip:
                continue
            s = os.lstat(p)
            link = os.readlink(p) if os.path.islink(p) else None
            out[str(p.relative_to(folder))] = (s.st_mode, s.st_size if not os.path.isdir(p) else 0, s.st_mtime_ns, link)
    return out


def _one_line_refusal(capsys, rc: int, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"lowbit {command}: error: "), err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


# --- load time: every key that becomes a path, fuzzed --------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:24])
@pytest.mark.parametrize("site", list(SITES))
@pytest.mark.parametrize("code", [True, False], ids=["spec", "stored-spec"])
def test_a_name_that_becomes_a_path_is_refused_at_load_time_naming_the_key(site, name, code):
    put, start = SITES[site]
    raw = _raw()
    put(raw, name)
    with pytest.raises(SpecError) as e:
        parse_spec(raw, source="s.toml", code=code)
    msg = str(e.value)
    if site == "name" and name == "":  # the check that was there first
        assert msg == "s.toml: name = '': expected a non-empty string"
        return
    assert "\n" not in msg and msg.startswith(f"s.toml: {start(name)}"), msg
    assert "must be a plain file name" in msg and len(msg) < 400


@pytest.mark.parametrize("name", GOOD_NAMES)
@pytest.mark.parametrize("site", list(SITES))
def test_plain_names_are_accepted_at_every_site(site, name):
    put, _ = SITES[site]
    raw = _raw()
    put(raw, name)
    parse_spec(raw, source="s.toml")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=120))
def test_a_plain_name_is_one_file_inside_the_folder_and_every_other_name_is_refused(name):
    ok = is_plain(name)
    assert ok == (
        0 < len(name) <= 100
        and all(ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in name)
        and name[0] not in ".-"
    )
    if ok:
        root = Path("/r/run")
        p = Path(os.path.normpath(root / "figures" / f"{name}.png"))
        assert p.parent == root / "figures" and p.name == f"{name}.png"
    else:
        with pytest.raises(OutsideRunFolder, match="must be a plain file name"):
            safepath.plain(name)


@given(st.text(max_size=300))
def test_a_made_up_figure_name_is_always_plain(text):
    name = default_figure_name(f"accuracy_vs_{text}_0")
    assert is_plain(name) and name.startswith("accuracy_vs_")


@pytest.mark.parametrize("site", list(SITES))
def test_the_issues_example_is_refused_by_dry_run_and_nothing_is_written(site, tmp_path, capsys):
    """``lowbit sweep t.toml --out run/inner`` with an escaping name: one line, no file anywhere around the run."""
    put, start = SITES[site]
    box = tmp_path / "box"
    box.mkdir()
    raw = _raw()
    name = "../../escaped" if site != "report.figures.file" else str(box / "abs3")
    put(raw, name)
    from lowbit import tomlio

    (box / "t.toml").write_text(tomlio.dumps(raw))
    before = _listing(tmp_path)
    for extra in (["--dry-run"], ["--workers", "1", "--no-progress"]):
        rc = main(["sweep", str(box / "t.toml"), "--out", str(box / "run" / "inner"), *extra])
        _one_line_refusal(capsys, rc, "sweep", f"t.toml: {start(name)}")
    assert _listing(tmp_path) == before


# --- a run folder from elsewhere -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny sweep (one float job), copied by each test that alters it."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.toml").write_text(TINY)
    assert main(["sweep", str(d / "tiny.toml"), "--out", str(d / "run"), "--workers", "1", "--no-progress"]) == 0
    return d / "run"


def _copy(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """(box, run, job id): a copy of the tiny run in ``tmp_path/box/run``, its spec beside it as ``box/tiny.toml``."""
    box = tmp_path / "box"
    run = box / "run"
    shutil.copytree(tiny_run, run)
    (box / "tiny.toml").write_text(TINY)
    (job,) = [p.name for p in (run / "jobs").iterdir()]
    return box, run, job


def _outside(box: Path, rel: str) -> Path:
    """Move ``box/run/rel`` to ``box/outside/rel`` and put a link to it in its place."""
    src, dest = box / "run" / rel, box / "outside" / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dest)
    src.symlink_to(dest)
    return dest


LINKS = ["figures", "spec.toml", "results.sqlite", "report.md", "jobs/{job}", "jobs/{job}/model.safetensors"]
# (the command's name in its error, its arguments, what the refusal calls the folder)
COMMANDS = {
    "report": ("report", lambda box, run: ["report", str(run)], "run folder"),
    "report --trust-code": ("report", lambda box, run: ["report", str(run), "--trust-code"], "run folder"),
    "results": ("results", lambda box, run: ["results", str(run)], "run folder"),
    "sweep --resume": (
        "sweep",
        lambda box, run: ["sweep", str(box / "tiny.toml"), "--out", str(run), "--resume", "--workers", "1"],
        "run folder",
    ),
    "--reuse": (
        "sweep",
        lambda box, run: ["sweep", str(box / "tiny.toml"), "--out", str(box / "new"), "--reuse", str(run)],
        "--reuse",
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("link", LINKS)
def test_a_link_out_of_the_run_folder_is_refused(tiny_run, tmp_path, capsys, link, command):
    box, run, job = _copy(tiny_run, tmp_path)
    rel = link.format(job=job)
    _outside(box, rel)
    before = _listing(box, skip=run)
    name, argv, what = COMMANDS[command]
    line = _one_line_refusal(capsys, main(argv(box, run)), name, f"{rel!r} is a symbolic link out of it (to ")
    assert f"error: {what} {str(run)!r}: " in line
    assert _listing(box, skip=run) == before


def test_a_link_inside_the_run_folder_is_fine_and_a_fifo_is_refused(tiny_run, tmp_path, capsys):
    box, run, job = _copy(tiny_run, tmp_path)
    (run / "notes").mkdir()
    (run / "notes" / "model").symlink_to(Path("..") / "jobs" / job / "model.safetensors")
    assert main(["results", str(run)]) == 0 and main(["report", str(run)]) == 0
    capsys.readouterr()
    os.mkfifo(run / "notes" / "pipe")
    before = _listing(box, skip=run)
    _one_line_refusal(capsys, main(["report", str(run)]), "report", "'notes/pipe' is not a regular file or folder")
    assert _listing(box, skip=run) == before


def test_the_lock_file_is_never_followed(tiny_run, tmp_path, capsys):
    box, run, _ = _copy(tiny_run, tmp_path)
    victim = box / "victim.txt"
    victim.write_text("do not truncate me")
    (run / ".lowbit.lock").unlink(missing_ok=True)
    (run / ".lowbit.lock").symlink_to(victim)
    before = _listing(box, skip=run)
    rc = main(["sweep", str(box / "tiny.toml"), "--out", str(run), "--resume", "--workers", "1", "--no-progress"])
    _one_line_refusal(capsys, rc, "sweep", "'.lowbit.lock' is a symbolic link out of it")
    assert _listing(box, skip=run) == before and victim.read_text() == "do not truncate me"
    from lowbit.runlock import RunLock

    with pytest.raises(OSError):  # the lock itself does not follow a link either (O_NOFOLLOW)
        RunLock(run).acquire()
    assert victim.read_text() == "do not truncate me"


def test_paths_are_checked_again_where_they_are_read_and_written(tiny_run, tmp_path):
    """Defence in depth: a link made after the folder was checked is refused where the file is used."""
    box, run, job = _copy(tiny_run, tmp_path)
    res = RunResults(run)
    (job_result,) = res.jobs.values()
    assert res.load_model(job_result) is not None
    (box / "outside").mkdir()
    shutil.rmtree(run / "figures")
    (run / "figures").symlink_to(box / "outside")
    with pytest.raises(OutsideRunFolder, match=r"'figures/x.png' is outside it \(it leads to"):
        res.figure_path("x")
    with pytest.raises(OutsideRunFolder, match="a figure name must be a plain file name"):
        res.figure_path("../x")
    _outside(box, f"jobs/{job}/model.safetensors")
    with pytest.raises(OutsideRunFolder, match="model.safetensors' is outside it"):
        res.load_model(job_result)
    (run / "report.md").unlink()
    (run / "report.md").symlink_to(box / "outside" / "r.md")
    with pytest.raises(OutsideRunFolder, match="'report.md' is outside it"):
        Report("t").write(run)
    job_result.id = "../../x"
    with pytest.raises(OutsideRunFolder, match="a job id must be a plain file name"):
        res.job_dir(job_result)
    assert sorted(p.name for p in (box / "outside").iterdir()) == ["jobs"]  # nothing was written through the links


def test_inside_and_check_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "a").mkdir(parents=True)
    assert inside(run, "a/b.png") == run / "a" / "b.png"
    for rel in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(OutsideRunFolder):
            inside(run, rel)
    (run / "loop").symlink_to(run / "loop")
    (run / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutsideRunFolder, match="'dangling' is a symbolic link out of it"):
        check_run_folder(run)
    (run / "dangling").unlink()
    check_run_folder(run)  # a loop inside the folder leads nowhere outside it
    linked = tmp_path / "linked"
    linked.symlink_to(run)  # the run folder itself may be a link
    check_run_folder(linked)
    assert inside(linked, "a/b.png") == linked / "a" / "b.png"


# --- store rows ----------------------------------------------------------------------------------------------


def _point_model_path(run: Path, model_path) -> None:
    """Rewrite the job's rows with another ``model_path``, through ``add_job``: the checksum is valid."""
    with Store(run) as s:
        rows = s.rows()
        job = rows[0].job_id
        s._db.execute("DELETE FROM results WHERE job_id = ?", (job,))
        s._db.commit()
        s.add_job(job, {r.metric: r.value for r in rows}, rows[0].axes, rows[0].config, rows[0].wall_s, model_path)
        s._checked_rows()  # every checksum holds


@pytest.mark.parametrize(
    "model_path",
    ["../outside/model.safetensors", "{abs}", "jobs/../../outside/model.safetensors", "jobs\\..\\x", "", "./m", "a//b"],
)
def test_a_store_row_whose_model_path_leads_out_is_refused(tiny_run, tmp_path, capsys, model_path):
    box, run, job = _copy(tiny_run, tmp_path)
    model = box / "outside" / "model.safetensors"
    model.parent.mkdir()
    shutil.copy(run / "jobs" / job / "model.safetensors", model)
    model_path = model_path.format(abs=model)
    _point_model_path(run, model_path)
    before = _listing(box, skip=run)
    for cmd in (["report", str(run)], ["results", str(run)]):
        needle = f"model_path = {safepath.shown(model_path)}: a model file must be inside the run folder"
        _one_line_refusal(capsys, main(cmd), cmd[0], needle)
    rc = main(["sweep", str(box / "tiny.toml"), "--out", str(box / "new"), "--reuse", str(run), "--dry-run"])
    _one_line_refusal(capsys, rc, "sweep", "model_path")
    with pytest.raises(StoreError, match="a model file must be inside the run folder"):
        RunResults(run)
    assert _listing(box, skip=run) == before


# --- models only from registered names -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["os:system", "builtins:eval", "no_such_model"])
def test_a_model_file_naming_code_or_an_unknown_model_is_not_built(tiny_run, tmp_path, name):
    """The run's model file re-saved (valid checksum) under a name that is code or not registered: the report's
    model loader refuses it instead of importing anything."""
    box, run, job = _copy(tiny_run, tmp_path)
    path = run / "jobs" / job / "model.safetensors"
    model, meta = load_model(path)
    save_model(path, model, name, **meta["model"].get("kwargs", {}))
    res = RunResults(run)
    with pytest.raises((CheckpointError, ValueError, KeyError), match="user's function|unknown model|no_such_model"):
        res.load_model(next(iter(res.jobs.values())))
    with pytest.raises((CheckpointError, ValueError, KeyError)):
        build_report(run)  # the extra that draws the model stops with the same error; nothing ran


def test_a_stored_spec_naming_code_imports_nothing_without_trust_code(tiny_run, tmp_path, capsys):
    """(Already so before issue 27; checked again on a folder from elsewhere.) Without --trust-code nothing the
    stored spec names is imported; with it the import is tried, and a module that is not there is one line."""
    import sys

    box, run, _ = _copy(tiny_run, tmp_path)
    mod = "never_imported_issue27"
    (run / "spec.toml").write_text(f'plugins = ["{mod}"]\n' + (run / "spec.toml").read_text())
    assert main(["results", str(run)]) == 0 and main(["report", str(run)]) == 0 and mod not in sys.modules
    capsys.readouterr()
    rc = main(["report", str(run), "--trust-code"])
    _one_line_refusal(capsys, rc, "report", f"plugins[0] = '{mod}': cannot be imported")


def test_a_figure_name_made_from_odd_axis_names_stays_inside(tiny_run, tmp_path):
    box, run, _ = _copy(tiny_run, tmp_path)
    res = RunResults(run)
    fig = metric_figure(res, {"metric": "../../accuracy", "x": "seed"}, 0)  # not a valid metric: nothing to plot
    assert fig.path == "figures/_._.._accuracy_vs_seed_0.png" and (run / fig.path).is_file()


def test_reproduce_takes_a_shipped_study_name_never_a_path(tmp_path, capsys):
    (tmp_path / "mine.toml").write_text(TINY)
    from lowbit.studies import studies_dir

    rel = os.path.relpath(tmp_path / "mine", studies_dir())  # ../../.../mine: the spec exists at that path
    rc = main(["reproduce", rel, "--dry-run"])
    _one_line_refusal(capsys, rc, "reproduce", f"unknown study {rel!r}; available: ")


def test_the_refusal_of_the_issues_example_reads_as_documented(tmp_path):
    raw = _raw()
    _site_score_vs_axis(raw, "../../escaped")
    with pytest.raises(SpecError) as e:
        parse_spec(raw, source="s.toml")
    assert str(e.value) == (
        "s.toml: report.extras.score_vs_axis.figures.'../../escaped': a figure name must be a plain file name "
        "(1 to 100 ASCII letters, digits, '_', '-' or '.', not starting with '.' or '-'; no path separators)"
    )
