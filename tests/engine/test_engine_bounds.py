"""Bounded resources on untrusted input (issue 27, item 3; ``lowbit.limits``, ``lowbit.engine.bounds``,
docs/reliability.md "Bounded resources"): absurd sizes in a spec, a stored spec, a store or a model file are refused
in one line naming the key and the estimate, before anything is allocated; every shipped study passes at every
scale with room to spare; the local user raises a limit with ``LOWBIT_LIMITS``, a spec or a run folder cannot."""

from __future__ import annotations

import json
import tomllib
import tracemalloc

import pytest
import torch
from torch.utils.data import TensorDataset

from lowbit import tomlio
from lowbit.cli import main
from lowbit.data.sets import DATASETS, Data
from lowbit.engine.bounds import STORE_ROW_BYTES, _info_for, data_sizes, job_estimate
from lowbit.engine.models import model_builder_of, model_kwargs
from lowbit.engine.plan import plan
from lowbit.engine.report.results import RunResults
from lowbit.engine.run import preflight
from lowbit.engine.spec import SpecError, parse_spec
from lowbit.engine.store import Store
from lowbit.limits import LIMITS, LimitExceeded, limit, show
from lowbit.models import MODELS
from lowbit.models.registry import TEST_KWARGS
from lowbit.models.size import model_size
from lowbit.studies import study_names, study_path

SPEC = """
name = "bounds"
[data]
name = "digits"
subset = 300
[grid]
model = ["small"]
method = ["float"]
seed = [0]
[models.small]
name = "fcdnn"
width = 8
depth = 3
[methods.float]
kind = "float"
"""
RAISE = 'the local user raises it: LOWBIT_LIMITS="{}=N")'


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch):
    monkeypatch.delenv("LOWBIT_LIMITS", raising=False)  # the defaults, whatever the environment running the tests


def _spec(old: str = "", new: str = "") -> dict:
    assert old in SPEC
    return tomllib.loads(SPEC.replace(old, new, 1))


def _refusal(raw: dict, source: str = "t.toml") -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(raw, source=source)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def fcdnn_params(width: int, depth: int, inputs: int, classes: int) -> int:
    """An independent count: depth - 1 hidden Linear layers and one output layer, each weights + biases."""
    dims = [inputs] + [width] * (depth - 1)
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:])) + width * classes + classes


# ---------------------------------------------------------------------------------------------- the cases
def test_a_grid_of_a_billion_jobs_is_refused_when_read_without_expanding_it():
    values = list(range(1, 1001))
    raw = _spec('method = ["float"]', f'method = ["W"]\na = {values}\nb = {values}\nc = {[v - 1 for v in values]}')
    raw["methods"] = {
        "float": {"kind": "float", "train": {"epochs": "${a}", "batch_size": "${b}"}},
        "W": {"kind": "qat", "parent": "float", "calibrate": "${c}", "quant": {"weight": {"name": "uniform"}}},
    }
    # 10⁹ QAT jobs plus their 10⁶ float parents: the method checks alone would visit 10⁹ cells, so this
    # returns at all only because the count comes first
    assert _refusal(raw) == (
        "t.toml: grid: the plan would have up to 1,001,000,000 jobs (method 'W': model 1 x seed 1 x a 1,000 x b "
        f"1,000 x c 1,000), over the limit jobs = 100,000 ({RAISE.format('jobs')}"
    )


def test_a_width_of_ten_million_is_refused_when_read():
    n = fcdnn_params(10**7, 3, 64, 10)  # digits: 64 features, 10 classes
    assert _refusal(_spec("width = 8", "width = 10000000")) == (
        f"t.toml: models.small (fcdnn width=10000000 depth=3): the model would have {n:,} parameters "
        f"({show('data_bytes', 4 * n)} as float32), over the limit params = 1,000,000,000 ({RAISE.format('params')}"
    )


def test_a_depth_of_ten_million_is_stopped_while_it_is_built(monkeypatch):
    # each layer is a Python object even on the meta device: the build stops at the parts limit (lowered here to
    # keep the test fast; the default stops it the same way, 100 times later)
    monkeypatch.setenv("LOWBIT_LIMITS", "parts=300")
    msg = _refusal(_spec("depth = 3", "depth = 10000000"))
    assert msg.startswith("t.toml: models.small (fcdnn width=8 depth=10000000): building it registers more than 300 ")
    assert msg.endswith(f"over the limit parts = 300 ({RAISE.format('parts')}")


@pytest.mark.parametrize(
    "data, key, what, limit_name, estimate",
    [
        ('name = "image_folder"\nroot = "x"\nsize = 1000000', "data.size = 1000000", "item", "item_bytes", 3e12 * 4),
        ('name = "spirals"\ntest_resolution = 1000000', "data.test_resolution = 1000000", "set", "data_bytes", None),
        ('name = "isbi2012"\ntile = 100000', "data.tile = 100000", "item", "item_bytes", 1e10 * 4),
        (
            'name = "isbi2012"\ntiles_per_image = 100000000',
            "data.tile = 64 (default), data.tiles_per_image = 100000000",
            "set",
            "data_bytes",
            None,
        ),
        ('name = "glas"\nsize = 1000000', "data.size = 1000000", "item", "item_bytes", 3e12 * 4),
        (
            'name = "fsdd_digits"\nhop_ms = 0.0001',
            "data.hop_ms = 0.0001, data.n_features = 26 (default), data.context = 5 (default)",
            "item",
            "item_bytes",
            None,
        ),
        (
            'name = "fsdd_digits"\nn_train = 100000000',
            "data.n_train = 100000000, data.n_test = 200 (default), data.hop_ms = 30.0 (default)",
            "set",
            "data_bytes",
            None,
        ),
    ],
)
def test_absurd_data_sizes_are_refused_when_read(data, key, what, limit_name, estimate):
    raw = _spec('name = "digits"\nsubset = 300', data)
    msg = _refusal(raw)
    head = "one input item would take about" if what == "item" else "the data set would hold about"
    assert msg.startswith(f"t.toml: {key}"), msg
    assert f": {head} " in msg and msg.endswith(
        f"over the limit {limit_name} = {show(limit_name, limit(limit_name))} ({RAISE.format(limit_name)}"
    )
    if estimate is not None:  # float32 elements x 4 bytes, counted here by hand
        assert f"about {show(limit_name, estimate)} as float32" in msg


def test_spirals_estimate_counts_its_test_grid():
    sizes = data_sizes({"name": "spirals", "test_resolution": 1000})
    assert sizes.total_bytes == (20_000 + 1000**2) * (2 * 4 + 8) and sizes.info == {"in_features": 2, "num_classes": 2}


# ---------------------------------------------------------------------------------------------- where it is checked
def test_dry_run_and_plan_only_refuse_in_one_line_on_stderr(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("width = 8", "width = 10000000"))
    for flag in ("--dry-run", "--plan-only"):
        rc = main(["sweep", str(spec), "--out", str(tmp_path / "run"), flag])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and err.count("\n") == 1
        assert err.startswith("lowbit sweep: error: s.toml: models.small (fcdnn width=10000000 depth=3): the model ")
    assert not (tmp_path / "run").exists()


def test_a_model_whose_data_sizes_only_the_files_tell_is_sized_in_the_preflight(monkeypatch):
    """A data set without a ``sizes`` fact: the model is sized once the data is loaded, before it is built."""

    def unsized(n: int = 8) -> Data:
        x = TensorDataset(torch.randn(n, 5), torch.zeros(n, dtype=torch.long))
        return Data(x, x, {"in_features": 5, "num_classes": 2})

    DATASETS.register("bounds_unsized", unsized)
    try:
        monkeypatch.setenv("LOWBIT_LIMITS", "params=1000")
        spec = parse_spec(_spec('name = "digits"\nsubset = 300', 'name = "bounds_unsized"'))  # not known yet: passes
        n = fcdnn_params(8, 3, 5, 2)
        assert n <= 1000
        preflight(spec, plan(spec), timing=False)  # within the limit: built and checked as before
        raw = _spec('name = "digits"\nsubset = 300', 'name = "bounds_unsized"')
        raw["models"]["small"]["width"] = 64
        spec = parse_spec(raw)
        with pytest.raises(LimitExceeded) as e:
            preflight(spec, plan(spec), timing=False)
        n = fcdnn_params(64, 3, 5, 2)
        assert str(e.value) == (
            f"models.small (fcdnn width=64 depth=3): the model would have {n:,} parameters "
            f"({show('data_bytes', 4 * n)} as float32), over the limit params = 1,000 ({RAISE.format('params')}"
        )
    finally:
        DATASETS.unregister("bounds_unsized")


def _run_folder(tmp_path, raw: dict):
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text(tomlio.dumps({**raw, "scale": "default"}))
    return out


def test_a_stored_spec_is_checked_when_a_run_folder_is_read(tmp_path, capsys):
    out = _run_folder(tmp_path, _spec("width = 8", "width = 10000000"))
    with pytest.raises(SpecError, match=r"spec.toml: models.small \(fcdnn width=10000000 depth=3\): the model would"):
        RunResults(out)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the limit params = 1,000,000,000" in err
    assert not (out / "report.md").exists()


def test_a_stored_spec_file_larger_than_the_limit_is_not_parsed(tmp_path, monkeypatch):
    out = _run_folder(tmp_path, _spec())
    monkeypatch.setenv("LOWBIT_LIMITS", "spec_bytes=100")
    size = (out / "spec.toml").stat().st_size
    with pytest.raises(LimitExceeded) as e:
        RunResults(out)
    assert str(e.value) == (
        f"stored spec {str(out / 'spec.toml')!r} takes {size} bytes, over the limit spec_bytes = 100 bytes "
        f"({RAISE.format('spec_bytes')}"
    )


# ---------------------------------------------------------------------------------------------- who sets the limits
def test_the_local_user_raises_a_limit_and_a_spec_cannot(tmp_path, monkeypatch):
    wide = _spec("width = 8", "width = 10000000")
    # a spec (and so a stored spec.toml, or a scale overlay) has no way to set a limit: [limits] is an unknown key
    for raw in ({**wide, "limits": {"params": 10**15}}, {**wide, "scales": {"big": {"limits": {"params": 10**15}}}}):
        with pytest.raises(SpecError, match=r"^t.toml: \(top level\).limits: unknown key; accepted: name, "):
            parse_spec(raw, "big" if "scales" in raw else None, "t.toml")
    out = _run_folder(tmp_path, {**wide, "limits": {"params": 10**15}})
    with pytest.raises(SpecError, match="limits: unknown key"):
        RunResults(out)
    # the local user, through the environment: raised for this spec and this run folder alike
    monkeypatch.setenv("LOWBIT_LIMITS", "params=2e14")
    assert limit("params") == 2 * 10**14
    parse_spec(wide, source="t.toml")
    (out / "spec.toml").write_text(tomlio.dumps({**wide, "scale": "default"}))
    assert RunResults(out).spec.models["small"]["width"] == 10**7
    # ... and lowered
    monkeypatch.setenv("LOWBIT_LIMITS", "params = 100 , jobs=1_000")
    assert (limit("params"), limit("jobs")) == (100, 1000)
    assert "over the limit params = 100 " in _refusal(_spec())


@pytest.mark.parametrize(
    "value, message",
    [
        ("params=abc", "LOWBIT_LIMITS: params='abc' is not accepted; expected a number >= 1"),
        ("jobs=1GiB", "LOWBIT_LIMITS: jobs='1GiB' is not accepted; expected a number >= 1"),
        ("data_bytes=0", "LOWBIT_LIMITS: data_bytes='0' is not accepted; expected a number >= 1"),
        ("memory=1", "LOWBIT_LIMITS: 'memory=1' is not accepted; expected KEY=NUMBER with KEY one of jobs, params, "),
    ],
)
def test_a_malformed_limits_variable_is_one_line(monkeypatch, value, message):
    monkeypatch.setenv("LOWBIT_LIMITS", value)
    with pytest.raises(ValueError) as e:
        parse_spec(_spec(), source="t.toml")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_byte_limits_take_units(monkeypatch):
    monkeypatch.setenv("LOWBIT_LIMITS", "data_bytes=1.5GiB,item_bytes=64KiB,store_memory=1e6")
    assert (limit("data_bytes"), limit("item_bytes"), limit("store_memory")) == (3 * 2**29, 2**16, 10**6)
    assert limit("jobs") == LIMITS["jobs"].default


# ---------------------------------------------------------------------------------------------- the shipped studies
def _scales(name: str) -> list[str]:
    raw = tomllib.loads(study_path(name).read_text())
    return sorted({"default", *raw.get("scales", {})})


@pytest.mark.parametrize("name", study_names())
def test_every_shipped_study_passes_at_every_scale_with_room_to_spare(name):
    """Every estimate of every scale (paper included) is under a tenth of its limit: the limits stay generous."""
    raw = tomllib.loads(study_path(name).read_text())
    for scale in _scales(name):
        spec = parse_spec(raw, scale, name, code=False)  # the checks pass
        jobs, _ = job_estimate(spec.raw)
        planned = len(plan(spec))
        assert planned <= jobs <= limit("jobs") / 10, (scale, planned, jobs)
        if not spec.raw.get("exclude") and all(m["kind"] != "ensemble" for m in spec.methods.values()):
            assert jobs == planned, scale  # exact without excludes and ensembles
        sizes = data_sizes(spec.data)  # every shipped data set is estimated (none skipped)
        assert sizes.item_bytes <= limit("item_bytes") / 10 and sizes.total_bytes <= limit("data_bytes") / 10
        for label in spec.grid["model"]:
            cfg = spec.models[label]
            size = model_size(model_builder_of(cfg), model_kwargs(cfg, _info_for(cfg, sizes.info)), label)
            assert size is not None, (scale, label)  # built on the meta device, not skipped
            # VGG-16 as published (classification's paper scale, 138 M parameters) is 1/7 of the params limit
            assert size.params <= limit("params") / 5 and size.parts <= limit("parts") / 10, (scale, label)


def test_every_registered_model_is_sized_on_the_meta_device_as_built():
    for name in MODELS.names():
        kwargs = TEST_KWARGS[name]
        size = model_size(MODELS.get(name), kwargs, name)
        real = MODELS.get(name)(**kwargs)
        count = sum(p.numel() for p in real.parameters()) + sum(b.numel() for b in real.buffers())
        assert size is not None and size.params == count, name


# ---------------------------------------------------------------------------------------------- the store
def _store(tmp_path, jobs: int, metrics: int = 10):
    out = tmp_path / "run"
    config = json.loads(json.dumps({"task": "classification", "data": {"name": "digits"}, "recipe": {"kind": "float"}}))
    with Store(out) as s:
        for j in range(jobs):
            values = {f"m{i}": float(i + j) for i in range(metrics)}
            s.add_job(f"job{j:05d}", values, {"model": "m", "method": "float", "seed": j}, config, 1.0, None)
    return out


def test_a_store_over_the_row_or_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch, capsys):
    out = _store(tmp_path, 3)
    path = str(out / "results.sqlite")
    monkeypatch.setenv("LOWBIT_LIMITS", "store_rows=20")
    with pytest.raises(LimitExceeded) as e:
        Store(out, create=False)
    assert str(e.value) == (
        f"{path!r} holds 30 rows; reading them takes about 29.3 KiB (~1 KB a row), over the limit store_rows = 20 "
        f"({RAISE.format('store_rows')}"
    )
    for command in (["results", str(out)], ["report", str(out)]):
        if command[0] == "report":
            (out / "spec.toml").write_text(tomlio.dumps({**_spec(), "scale": "default"}))
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{path!r} holds 30 rows" in err, err
    monkeypatch.setenv("LOWBIT_LIMITS", "store_memory=1KiB")
    with pytest.raises(LimitExceeded, match=r"results.sqlite' takes .* on disk, over the limit store_memory = 1.0 KiB"):
        Store(out, create=False)
    monkeypatch.setenv("LOWBIT_LIMITS", "store_rows=30")  # at the limit: read
    with Store(out, create=False) as s:
        assert len(s.rows()) == 30


def test_rows_made_to_expand_are_refused_while_the_store_is_read(tmp_path, monkeypatch):
    """JSON of empty tables takes 24x its text once parsed: the estimate counts it row by row and stops the read."""
    out = tmp_path / "run"
    with Store(out) as s:
        for j in range(3):
            s.add_job(f"j{j}", {"m": 1.0}, {"seed": j}, {"x": [{}] * 20_000}, 1.0, None)  # 60 KB of text a job
    assert (out / "results.sqlite").stat().st_size < 1 * 2**20
    monkeypatch.setenv("LOWBIT_LIMITS", "store_memory=8MiB")  # the file passes; its rows would not
    with Store(out, create=False) as s, pytest.raises(LimitExceeded) as e:
        s.rows()
    assert str(e.value) == (
        f"{str(out / 'results.sqlite')!r}: reading its rows would hold more than 8.0 MiB (estimated row by row; 2 rows "
        f"read so far), over the limit store_memory = 8.0 MiB ({RAISE.format('store_memory')}"
    )
    monkeypatch.setenv("LOWBIT_LIMITS", "store_memory=64MiB")
    with Store(out, create=False) as s:
        assert len(s.rows()) == 3


def test_reading_a_store_shares_each_jobs_parsed_config_and_stays_under_the_stated_bytes_a_row(tmp_path):
    out = _store(tmp_path, 500, 20)  # 10,000 rows
    with Store(out, create=False) as s:
        tracemalloc.start()
        try:
            rows = s.rows()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(rows) == 10_000
    assert [(r.job_id, r.metric, r.value) for r in rows[19:21]] == [("job00000", "m19", 19.0), ("job00001", "m0", 1.0)]
    assert rows[0].config is rows[19].config and rows[0].axes is rows[19].axes  # one parse per job
    assert rows[19].config is not rows[20].config and rows[20].axes == {"model": "m", "method": "float", "seed": 1}
    assert peak / len(rows) < STORE_ROW_BYTES, peak / len(rows)


# ---------------------------------------------------------------------------------------------- model files
def test_a_model_file_describing_a_huge_model_is_refused_before_it_is_built(tmp_path):
    from lowbit.deploy import load_packed, save_packed
    from lowbit.serialize import load_model, save_model

    small = MODELS.get("fcdnn")(width=4, depth=2)
    path = tmp_path / "m.safetensors"
    save_model(path, small, "fcdnn", width=10**7, depth=3)  # the description lies; the checksum is valid
    n = fcdnn_params(10**7, 3, 2, 2)
    tail = f"the model would have {n:,} parameters ({show('data_bytes', 4 * n)} as float32), over the limit params"
    with pytest.raises(LimitExceeded) as e:
        load_model(path)
    assert str(e.value).startswith(f"{str(path)!r} (model 'fcdnn' depth=3 width=10000000): {tail}")
    packed = save_packed(small, tmp_path / "m.lowbit", "fcdnn", {"width": 10**7, "depth": 3})
    with pytest.raises(LimitExceeded) as e:
        load_packed(packed)
    assert str(e.value).startswith(f"{str(packed)!r} (model 'fcdnn' depth=3 width=10000000): {tail}")
