"""A run folder is data: the data files its stored spec names outside it (``[data] root`` / ``archive``) are read by
``lowbit report`` only with ``--trust-data``; the sweep's own report reads them (it has just trained on them)."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest
from support.specs import SPIRALS_TINY

import lowbit.data.sets as sets
from lowbit.cli import main
from lowbit.engine.report import build_report
from lowbit.engine.report.document import Section
from lowbit.engine.report.extras import EXTRAS
from lowbit.engine.report.results import RunResults
from lowbit.engine.usercode import UntrustedData

ONE_JOB = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')
EXTRA = "needs_the_data"


def test_every_data_set_argument_that_names_a_file_is_known():
    """A new data set whose plain string argument names files must be added to FILE_ARGS (or this test fails)."""
    for name in sets.DATASETS.names():
        params = inspect.signature(sets.DATASETS.get(name)).parameters.values()
        strings = {p.name for p in params if p.annotation in (str, "str")}
        assert strings <= set(sets.FILE_ARGS), (name, strings - set(sets.FILE_ARGS))


def test_named_files_lists_only_explicit_paths():
    assert sets.named_files({"name": "isbi2012", "root": "/data/isbi"}) == ["root = '/data/isbi'"]
    assert sets.named_files({"name": "cifar10_jpeg", "archive": "../x.tar.gz", "root": ""}) == [
        "archive = '../x.tar.gz'"
    ]
    assert sets.named_files({"name": "digits"}) == []  # from $LOWBIT_DATA or bundled: the local user's choice


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data_trust")
    (d / "t.toml").write_text(ONE_JOB)
    assert main(["sweep", str(d / "t.toml"), "--out", str(d / "run"), "--workers", "1", "--no-progress"]) == 0
    return d / "run"


def test_load_data_refuses_files_a_stored_spec_names_unless_trusted(run, monkeypatch):
    loaded = []
    monkeypatch.setattr(sets, "load_data", lambda cfg: loaded.append(cfg) or "data")
    res = RunResults(run)
    assert res.load_data() == "data"  # the spirals are generated: no file named
    res.spec.data["root"] = "/somewhere/else"
    with pytest.raises(UntrustedData, match=r"outside the run folder \(root = '/somewhere/else'\)"):
        res.load_data()
    assert len(loaded) == 1  # nothing was read for the refused call
    trusted = RunResults(run, trust_data=True)
    trusted.spec.data["root"] = "/somewhere/else"
    assert trusted.load_data() == "data" and loaded[-1]["root"] == "/somewhere/else"


@pytest.fixture
def data_extra(run, monkeypatch):
    """An extra that reads the data, named in the stored spec; the stored spec names a data root."""
    calls = []

    def extra(res):
        res.load_data()
        calls.append(res.out)
        return Section(paragraphs=["the data was read"])

    EXTRAS.register(EXTRA, extra)
    spec = run / "spec.toml"
    before = spec.read_text()
    raw = tomllib.loads(before)
    assert "extras" not in raw.get("report", {})
    spec.write_text(before + f"\n[report.extras.{EXTRA}]\n")
    monkeypatch.setattr(sets, "named_files", lambda cfg: ["root = '/data/elsewhere'"])
    monkeypatch.setattr(sets, "load_data", lambda cfg: "data")
    yield calls
    EXTRAS.unregister(EXTRA)
    spec.write_text(before)


def test_report_skips_what_needs_the_data_with_a_note_naming_the_flag(run, data_extra, capsys):
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert data_extra == [] and "the data was read" not in md
    assert (
        "Skipped: the data set reads files the stored spec names outside the run folder (root = '/data/elsewhere'); "
        f"rebuild with `lowbit report {run} --trust-data` to run it."
    ) in md
    assert main(["report", str(run), "--trust-data"]) == 0
    assert data_extra == [run] and "the data was read" in (run / "report.md").read_text()


def test_the_sweeps_own_report_reads_its_data(run, data_extra, tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text((run / "spec.toml").read_text())
    assert main(["sweep", str(spec), "--out", str(run), "--resume", "--workers", "1", "--no-progress"]) == 0
    assert data_extra == [run]  # the report the sweep wrote after (not) training read the data it trained on
    build_report(run)
    assert data_extra == [run]  # rebuilt from the folder alone: not read
