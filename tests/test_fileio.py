"""lowbit.fileio (every file complete or absent, umask modes, stale temporary files, a full disk) and the
integrity of checkpoints and model files (one checksum over tensors and metadata)."""

import errno
import json
import os
import stat
import struct

import pytest
import torch
from safetensors.torch import save_file

import lowbit as lb
from lowbit.fileio import (
    DiskFullError,
    NotAFileError,
    atomic_append_lines,
    atomic_path,
    atomic_savefig,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    clean_stale_temps,
)
from lowbit.models import create_model
from lowbit.serialize import load_model, save_model
from lowbit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_writes_are_complete_and_get_umask_modes(tmp_path, umask):
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    save_checkpoint(tmp_path / "c.safetensors", {"x": torch.ones(2)}, {"k": 1})
    assert (tmp_path / "a.txt").read_text() == "hello" and (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    for p in ("a.txt", "sub/b.bin", "c.safetensors"):
        assert _mode(tmp_path / p) == 0o644, p  # what open(path, "w") gives, not mkstemp's 0o600
    os.umask(0o027)
    atomic_write_text(tmp_path / "d.txt", "x")
    assert _mode(tmp_path / "d.txt") == 0o640


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_text(p, "old")

    def half(tmp):
        tmp.write_text("half a fi")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write(p, half)
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        atomic_write(tmp_path / "never.txt", lambda tmp: None)
    assert os.listdir(tmp_path) == ["r.json"]


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("Error while serializing: IoError(Os { code: 28, message: No space left on device"),
    ],
)
def test_a_full_disk_is_one_error_naming_the_target(tmp_path, exc):
    p = tmp_path / "model.safetensors"
    atomic_write_bytes(p, b"earlier")

    def full(tmp):
        tmp.write_bytes(b"par")
        raise exc

    with pytest.raises(DiskFullError) as info:
        atomic_write(p, full)
    e = info.value
    assert e.errno == errno.ENOSPC and e.filename == str(p)
    assert str(e) == f"no space left on device writing {p}; nothing already written was changed"
    assert p.read_bytes() == b"earlier" and os.listdir(tmp_path) == ["model.safetensors"]


def test_errors_name_the_target_not_the_temporary_file(tmp_path):
    def denied(tmp):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))

    with pytest.raises(PermissionError) as info:
        atomic_write(tmp_path / "report.md", denied)
    assert info.value.filename == str(tmp_path / "report.md") and info.value.errno == errno.EACCES


def test_targets_that_are_not_files_are_refused_before_writing(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_bytes(tmp_path / "d", b"x")
    with pytest.raises(NotAFileError, match="not a regular file"):
        atomic_write_bytes("/dev/null", b"x")  # as root, a rename would replace the device node
    assert os.listdir(tmp_path / "d") == [] and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]


def test_savefig_is_atomic(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    p = tmp_path / "f.png"
    atomic_savefig(fig, p, dpi=20)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    good = p.read_bytes()

    class Dies:
        def savefig(self, tmp, **kw):
            fig.savefig(tmp, **kw)
            with open(tmp, "r+b") as f:
                f.truncate(10)
            raise KeyboardInterrupt  # a kill turned into an exception while the figure is half written

    with pytest.raises(KeyboardInterrupt):
        atomic_savefig(Dies(), p, dpi=20)
    plt.close(fig)
    assert p.read_bytes() == good and os.listdir(tmp_path) == ["f.png"]


def test_append_lines_keeps_whole_lines(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"a": 1}')  # a file without its final newline
    atomic_append_lines(p, ['{"a": 2}', '{"a": 3}'])
    assert p.read_text().splitlines() == ['{"a": 1}', '{"a": 2}', '{"a": 3}']


def test_clean_stale_temps_removes_only_writer_temporaries(tmp_path):
    (tmp_path / "jobs" / "j1").mkdir(parents=True)
    stale = [
        tmp_path / ".metrics.jsonl.0a1b2c3d.tmp",  # this lowbit's name
        tmp_path / "jobs" / "j1" / ".last.safetensors.k_9zq2xw.tmp",  # an older lowbit's mkstemp name
        tmp_path / "jobs" / "j1" / ".tmp6io2Sg",  # safetensors' own temporary file (Rust tempfile), killed mid-write
    ]
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / "metrics.jsonl", tmp_path / ".lowbit.lock"]
    keep += [tmp_path / ".tmpdir_notes", tmp_path / ".tmp12345"]
    for p in stale + keep:
        p.write_text("x")
    with atomic_path(tmp_path / "live.txt") as tmp:  # a temp of this process that is being written
        tmp.write_text("y")
        assert sorted(clean_stale_temps(tmp_path)) == sorted(stale + [tmp])
        tmp.write_text("y")
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert clean_stale_temps(tmp_path / "absent") == []


# ---------------------------------------------------------------- checkpoints and model files


def _tiny_model():
    torch.manual_seed(0)
    m = create_model("fcdnn", width=8, depth=3)
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
    )
    lb.quantize_(m, cfg)
    m(torch.randn(64, 2))
    return m


def test_altered_metadata_is_refused_not_loaded(tmp_path):
    """Issue 11 item 1: one bit of the JSON metadata ("bits": 2 -> 3) used to load as a different model."""
    p = tmp_path / "m.safetensors"
    save_model(p, _tiny_model(), "fcdnn", width=8, depth=3)
    load_model(p)
    raw = bytearray(p.read_bytes())
    i = raw.find(b'\\"bits\\": 2')
    assert i > 0
    raw[i + len(b'\\"bits\\": ')] ^= 0x01  # "2" -> "3": a single bit
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum does not match its tensors and metadata"):
        load_model(p)


def test_checkpoint_fields_are_all_covered(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(0)}, {"epoch": 3, "lr": 0.1})
    tensors, meta = load_checkpoint(p)
    assert meta == {"epoch": 3, "lr": 0.1} and torch.equal(tensors["w"], torch.arange(6.0).reshape(2, 3))
    good = p.read_bytes()
    (n,) = struct.unpack_from("<Q", good)
    header = json.loads(good[8 : 8 + n])
    for field, value in (("meta", '{"epoch": 4, "lr": 0.1}'), ("format", "other"), ("version", "3")):
        h = dict(header, __metadata__=dict(header["__metadata__"], **{field: value}))
        hb = json.dumps(h).encode()
        p.write_bytes(struct.pack("<Q", len(hb)) + hb + good[8 + n :])
        with pytest.raises(CheckpointError):
            load_checkpoint(p)


def test_version_1_checkpoints_are_refused_as_older(tmp_path):
    p = tmp_path / "old.safetensors"
    save_file({"a": torch.ones(2)}, str(p), metadata={"format": "lowbit-checkpoint", "version": "1", "meta": "{}"})
    with pytest.raises(CheckpointError, match="written by an older lowbit"):
        load_checkpoint(p)


def _w4(**kw):
    return lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), **kw)


def test_save_model_refuses_a_frozen_model(tmp_path):
    m = lb.models.create_model("fcdnn", width=8, depth=2)
    lb.quantize_(m, _w4())
    m(torch.randn(4, 2))
    lb.freeze(m)
    with pytest.raises(ValueError, match="frozen.*save_packed"):
        save_model(tmp_path / "m.safetensors", m, "fcdnn", width=8, depth=2)
    assert not (tmp_path / "m.safetensors").exists()
