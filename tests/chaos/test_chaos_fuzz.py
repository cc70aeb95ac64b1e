"""Chaos: every file lowbit reads, fuzzed (seeded; >= 2,000 inputs per format).

For each format a small good file is mutated (truncations, bit flips in header and payload, bursts, overwritten
runs, inserted/deleted bytes, appended garbage, random bytes, other formats and wrong versions) and handed to
lowbit's reader. Every input must end in a clear error (a ValueError subclass: CheckpointError,
PackedFormatError, SpecError, ...) or load exactly the original content: an altered file that loads as
something else is a failure, and so is any other exception.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from fuzzkit import KINDS, Tally, mutations

import lowbit as lb
from lowbit.deploy.packed import MAGIC, PackedFormatError, load_packed, parse_packed, save_packed
from lowbit.engine import store
from lowbit.models import create_model
from lowbit.serialize import load_model, save_model
from lowbit.train.checkpoint import encode_checkpoint, parse_checkpoint

pytestmark = pytest.mark.slow  # the chaos suite: `make test` runs it, `make test-fast` does not

N = 2400  # inputs per format (240 per mutation kind)
SEED = 20261129


def _model():
    torch.manual_seed(0)
    m = create_model("fcdnn", width=4, depth=3)
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
    )
    lb.quantize_(m, cfg)
    m(torch.randn(32, 2))
    return m


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _safetensors_header_end(blob: bytes) -> int:
    return 8 + struct.unpack_from("<Q", blob)[0]


def _packed_header_end(blob: bytes) -> int:
    return 20 + struct.unpack_from("<IQ", blob, 8)[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    m = _model()
    save_model(d / "m.safetensors", m, "fcdnn", width=4, depth=3)
    save_packed(m, d / "m.lowbit", "fcdnn", {"width": 4, "depth": 3})
    ckpt = encode_checkpoint(
        {"model.w": torch.randn(3, 4), "rng.torch": torch.get_rng_state()[:64], "step": torch.tensor([7])},
        {"epoch": 2, "history": [{"epoch": 0, "loss": 0.5}], "optimizer": {"lr": 0.01}},
    )
    return {
        "checkpoint": ckpt,
        "model": (d / "m.safetensors").read_bytes(),
        "packed": (d / "m.lowbit").read_bytes(),
        "toml": b'name = "x"\n[data]\nname = "spirals"\n',
    }


def _wrong_versions(files) -> list[bytes]:
    """A checkpoint of version 1 and 3, a packed file of version 2 (checksums valid: only the version is off)."""
    out = []
    for v in ("1", "3", ""):
        blob = files["checkpoint"]
        end = _safetensors_header_end(blob)
        head = json.loads(blob[8:end])
        head["__metadata__"]["version"] = v
        hb = json.dumps(head).encode()
        hb += b" " * (-len(hb) % 8)
        out.append(struct.pack("<Q", len(hb)) + hb + blob[end:])
    p = files["packed"]
    body = MAGIC + struct.pack("<I", 2) + p[12:-32]
    out.append(body + hashlib.sha256(body).digest())
    return out


def _fuzz(name, good, header_end, read, same, files, seed):
    others = [v for k, v in files.items() if k != name] + _wrong_versions(files) + [b"", b"\x00" * 64]
    t = Tally()
    original = read(good)
    valid = []  # another file of the same format (a model file is also a checkpoint) loads as itself
    for o in others:
        try:
            valid.append(read(o))
        except Exception:  # noqa: BLE001 - judged again in the loop below
            pass
    for i, (kind, data) in enumerate(mutations(good, header_end, seed, N, others)):
        try:
            got = read(data)
        except ValueError as e:
            t.add(kind, "error")
            if not str(e):
                t.fail(kind, i, f"{type(e).__name__} without a message")
            continue
        except Exception as e:  # anything else is a crash from the user's point of view
            t.fail(kind, i, f"{type(e).__name__}: {e}")
            continue
        if same(got, original):
            t.add(kind, "same content")
        elif kind == "other" and any(same(got, v) for v in valid):
            t.add(kind, "another valid file")
        else:
            t.fail(kind, i, "altered content loaded without an error")
    assert not t.bad, "\n".join(t.bad[:20])
    assert t.total == N and {k for k, _ in t.outcomes} == set(KINDS)
    return t


def test_fuzz_checkpoints(files):
    good = files["checkpoint"]
    t = _fuzz(
        "checkpoint",
        good,
        _safetensors_header_end(good),
        parse_checkpoint,
        lambda a, b: _same_tensors(a[0], b[0]) and a[1] == b[1],
        files,
        SEED,
    )
    assert t.outcomes[("flip_header", "error")] + t.outcomes[("flip_header", "same content")] == N // len(KINDS)


def test_fuzz_model_files(files, tmp_path):
    p = tmp_path / "m.safetensors"

    def read(data):
        p.write_bytes(data)
        model, meta = load_model(p)
        return model.state_dict(), meta

    good = files["model"]
    _fuzz("model", good, _safetensors_header_end(good), read, lambda a, b: _same_tensors(a[0], b[0]) and a[1] == b[1],
          files, SEED + 1)  # fmt: skip


def test_fuzz_packed_files(files, tmp_path):
    p = tmp_path / "m.lowbit"

    def read(data):
        p.write_bytes(data)
        return load_packed(p).state_dict()

    good = files["packed"]
    _fuzz("packed", good, _packed_header_end(good), read, _same_tensors, files, SEED + 2)


_NASTY = [-1, 0, 1, 2**31, 2**63, -(2**63), 1e308, float("nan"), "x", "", None, True, [], {}, [2**40, 2**40], [-3]]


def _paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, (*prefix, i))


def test_fuzz_packed_metadata_with_valid_checksum(files):
    """Forged files (metadata values replaced, checksum recomputed): the parser's own checks must hold."""
    good = files["packed"]
    end = _packed_header_end(good)
    meta = json.loads(good[20:end])
    payload = good[end:-32]
    paths = [p for p in _paths(meta) if p]
    rng = random.Random(SEED + 3)
    n, errors = 2000, 0
    for _ in range(n):
        m = json.loads(good[20:end])
        path = rng.choice(paths)
        node = m
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = rng.choice(_NASTY)
        mb = json.dumps(m).encode()
        body = MAGIC + struct.pack("<IQ", 1, len(mb)) + mb + payload
        try:
            parse_packed(body + hashlib.sha256(body).digest())
        except PackedFormatError:
            errors += 1
    assert errors > n // 4  # most forgeries hit a check; the rest decode to well-formed tensors


def _spec_reader(tmp_path):
    """The study spec loader on a tiny valid spec (which must load: a broken loader fails here, never skips)."""
    from lowbit.engine.spec import load_spec

    p = tmp_path / "spec.toml"
    p.write_text(SPEC)
    load_spec(p)

    def read_spec(data):
        p.write_bytes(data)
        return load_spec(p).raw

    return "spec", SPEC.encode(), read_spec


SPEC = """name = "fuzz"
task = "classification"
[data]
name = "spirals"
[grid]
model = ["small"]
method = ["float", "W2"]
seed = [0]
[models.small]
name = "fcdnn"
width = 8
depth = 3
[train]
epochs = 1
batch_size = 64
[methods.float]
kind = "float"
[methods.W2]
kind = "qat"
parent = "float"
quant = { weight = { name = "uniform", bits = 2 } }
train = { epochs = 1 }
"""


def test_fuzz_toml_specs(files, tmp_path):
    """A TOML edit that is still a valid spec loads (it is a different spec, not corruption); anything else
    must be a clear ValueError (SpecError / not valid TOML / not UTF-8)."""
    name, good, read = _spec_reader(tmp_path)
    others = [files["checkpoint"], files["packed"], b"\xff\xfe\x00", b"[[[", b"name = 1\n" * 3]
    rng = random.Random(SEED + 4)
    t = Tally()
    for i, (kind, data) in enumerate(mutations(good, len(good) // 3, rng.randrange(2**32), N, others)):
        try:
            read(data)
            t.add(kind, "loaded")
        except ValueError as e:
            t.add(kind, "error")
            if "spec.toml" not in str(e):
                t.fail(kind, i, f"{type(e).__name__} that does not name the file: {e}")
        except Exception as e:
            t.fail(kind, i, f"{name}: {type(e).__name__}: {e}")
    assert not t.bad, "\n".join(t.bad[:20])
    assert t.total == N


def test_fuzz_result_store(files, tmp_path, monkeypatch):
    """results.sqlite: an altered store is an error (StoreError / a ValueError), or it reads the same rows."""
    # a flipped "read version" byte makes SQLite report "database is locked" only after the store's busy
    # timeout (meant for a live concurrent reader): the same StoreError, 60x sooner
    connect = store.sqlite3.connect
    monkeypatch.setattr(store.sqlite3, "connect", lambda path, timeout=5.0: connect(path, timeout=0.5))
    good_dir = tmp_path / "good"
    with store.Store(good_dir) as s:
        for j in range(3):
            axes = {"model": "small", "method": f"m{j}", "seed": 0}
            s.add_job(f"job{j}", {"accuracy": 90.0 + j, "loss": 0.25 * j}, axes, {"recipe": {"k": "float"}}, 1.5, None)
    good = (good_dir / store.STORE_NAME).read_bytes()
    shm = Path("/dev/shm")  # SQLite syncs on every open: a memory file system keeps 2,400 opens cheap
    d = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path / "run"
    d.mkdir(exist_ok=True)
    p = d / store.STORE_NAME

    def read(data):
        for extra in ("-wal", "-shm"):
            (d / (store.STORE_NAME + extra)).unlink(missing_ok=True)
        p.write_bytes(data)
        with store.Store(d, create=False) as s:
            return sorted(s.done()), [r.flat() for r in s.rows()]

    try:
        _fuzz("store", good, 100, read, lambda a, b: a == b, files, SEED + 5)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_altered_or_missing_store_rows_are_refused(tmp_path):
    """SQLite keeps no checksum of its own: an edited value, or a job that lost one of its rows, must not read."""
    import sqlite3

    with store.Store(tmp_path) as s:
        s.add_job("a", {"accuracy": 90.0, "loss": 0.5}, {"model": "m", "method": "float"}, {"k": 1}, 1.0, None)
        s.add_job("b", {"accuracy": float("nan"), "n": 3}, {"model": "m", "method": "W2"}, {"k": 2}, 1.0, None)
        assert s.done() == {"a", "b"}
    path = tmp_path / store.STORE_NAME
    for sql in (
        "UPDATE results SET value = 91.0 WHERE job_id = 'a' AND metric = 'accuracy'",
        'UPDATE results SET axes = \'{"model": "m", "method": "W3"}\' WHERE job_id = \'a\'',
        "DELETE FROM results WHERE job_id = 'b' AND metric = 'n'",
    ):
        with sqlite3.connect(path) as db:
            backup = db.execute("SELECT * FROM results").fetchall()
            db.execute(sql)
        with pytest.raises(store.StoreError, match="fails its checksum"), store.Store(tmp_path) as s:
            s.rows()
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM results")
            db.executemany(f"INSERT INTO results VALUES ({', '.join('?' * len(backup[0]))})", backup)
        with store.Store(tmp_path) as s:
            assert s.done() == {"a", "b"}
