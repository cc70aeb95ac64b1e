"""Chaos: a full disk (a real small tmpfs where this machine allows mounting one, and a writer that raises ENOSPC
at the fileio layer) and the command line's one-line errors (exit 2, no traceback) for the bad days of issue 11."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lowbit as lb
import lowbit.fileio as fileio
from lowbit.cli import main
from lowbit.models import create_model
from lowbit.serialize import save_model
from lowbit.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.slow  # the chaos suite: `make test` runs it, `make test-fast` does not


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    m = create_model("fcdnn", width=8, depth=3)
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
    )
    lb.quantize_(m, cfg)
    m(torch.randn(64, 2))
    p = tmp_path / "m.safetensors"
    save_model(p, m, "fcdnn", width=8, depth=3)
    return p


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"lowbit {command}: error: "), err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str):
    """A tmpfs of ``size`` at ``mnt`` (root only; the test is skipped cleanly elsewhere)."""
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_tmpfs(tmp_path):
    with _tmpfs(tmp_path / "small", "64k") as mnt:
        yield mnt


def _fill(mnt: Path, leave: int) -> None:
    """Fill the tmpfs until about ``leave`` bytes are free."""
    with open(mnt / "filler", "wb") as f:
        while True:
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(4096, free - leave))
                f.flush()
            except OSError:
                break


def test_real_full_disk_export_and_checkpoint(small_tmpfs, model_file, capsys):
    mnt = small_tmpfs
    assert main(["export", str(model_file), "--format", "packed", "--out", str(mnt / "m.lowbit")]) == 0
    save_checkpoint(mnt / "last.safetensors", {"w": torch.ones(4)}, {"epoch": 1})
    capsys.readouterr()
    before = _snapshot(mnt)
    _fill(mnt, leave=0)
    before_fill = {k: v for k, v in _snapshot(mnt).items() if k != "filler"}
    assert before_fill == before
    rc = main(["export", str(model_file), "--format", "packed", "--out", str(mnt / "m.lowbit")])
    err = _one_line_error(capsys, "export")
    assert rc == 2
    assert err.endswith(f"no space left on device writing {mnt / 'm.lowbit'}; nothing already written was changed")
    with pytest.raises(fileio.DiskFullError, match="no space left on device writing .*last.safetensors"):
        save_checkpoint(mnt / "last.safetensors", {"w": torch.zeros(4096)}, {"epoch": 2})  # safetensors' own writer
    after = {k: v for k, v in _snapshot(mnt).items() if k != "filler"}
    assert after == before  # earlier files byte for byte, and no temporary file left
    assert sorted(os.listdir(mnt)) == ["filler", "last.safetensors", "m.lowbit"]


def test_enospc_at_the_fileio_layer_is_one_line_for_every_writer(tmp_path, model_file, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["export", str(model_file), "--format", "packed", "--out", str(out / "m.lowbit")]) == 0
    assert main(["quantizers", "--plot", str(out / "q.png")]) == 0
    capsys.readouterr()
    before = _snapshot(out)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    cases = [
        ("export", ["export", str(model_file), "--format", "packed", "--out", str(out / "m.lowbit")], "m.lowbit"),
        ("quantizers", ["quantizers", "--plot", str(out / "q.png")], "q.png"),
    ]
    try:
        import onnx  # noqa: F401

        onnx_args = ["export", str(model_file), "--format", "onnx", "--input-shape", "1,2", "--out"]
        cases.append(("export", [*onnx_args, str(out / "m.onnx")], "m.onnx"))
    except ImportError:
        pass
    for command, argv, name in cases:
        assert main(argv) == 2, argv
        err = _one_line_error(capsys, command)
        assert err.endswith(f"no space left on device writing {out / name}; nothing already written was changed")
    assert _snapshot(out) == before


def test_command_line_errors_are_one_line_exit_2(tmp_path, model_file, capsys):
    (tmp_path / "adir").mkdir()
    cases = [
        (["summary", str(model_file), "--input-shape", "1,5"], r"'1,5' does not fit|input has 5 features"),
        (["export", str(model_file), "--format", "packed", "--out", str(tmp_path / "adir")], "is a directory"),
        (["export", str(model_file), "--format", "packed", "--out", "/dev/null"], "not a regular file"),
    ]
    try:
        import onnx  # noqa: F401

        cases.append(
            (
                ["export", str(model_file), "--format", "onnx", "--input-shape", "1x3", "--out", str(tmp_path / "x")],
                r"--input-shape '1x3' does not fit|input has 3 features",
            )
        )
    except ImportError:
        pass
    for argv, want in cases:
        assert main(argv) == 2, argv
        assert re.search(want, _one_line_error(capsys, argv[0])), argv
    assert os.listdir(tmp_path / "adir") == [] and not (tmp_path / "x").exists()


def test_missing_optional_dependency_names_the_extra(tmp_path, model_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ModuleNotFoundError
    argv = ["export", str(model_file), "--format", "onnx", "--input-shape", "1,2", "--out", str(tmp_path / "m.onnx")]
    assert main(argv) == 2
    err = _one_line_error(capsys, "export")
    assert "onnx" in err and "not installed" in err and err.endswith("pip install 'lowbit[deploy]'")
    assert not (tmp_path / "m.onnx").exists()


def test_any_missing_optional_module_names_its_extra(model_file, capsys, monkeypatch):
    import lowbit.cli.summary as summary

    def needs_librosa(args):
        raise ModuleNotFoundError("No module named 'librosa'", name="librosa")

    monkeypatch.setattr(summary, "_run", needs_librosa)
    assert main(["summary", str(model_file)]) == 2
    assert _one_line_error(capsys, "summary").endswith("pip install 'lowbit[audio]'")


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from lowbit.train import TrainConfig, fit

    m = create_model("fcdnn", width=4, depth=2)
    data = torch.utils.data.TensorDataset(torch.randn(8, 2), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="'cuda': CUDA is not available on this machine"):
        fit(m, data, TrainConfig(epochs=1, device="cuda"), progress=False)


def test_closed_pipe_exits_quietly(model_file):
    """``lowbit summary --json | head -1``: the reader is gone before lowbit writes."""
    r, w = os.pipe()
    os.close(r)
    cmd = [sys.executable, "-m", "lowbit.cli", "summary", str(model_file), "--json"]
    p = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(w)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_sweep_on_a_full_disk_stops_cleanly_and_resumes_when_there_is_room(tmp_path, capsys):
    """A real full disk in the middle of a study: one line, exit 2, every file left whole; with room again,
    --resume ends with the results of a run that never saw a full disk."""
    from tinystudy import SPEC, check_folder, results

    spec = tmp_path / "study.toml"
    spec.write_text(SPEC)
    argv = ["sweep", str(spec), "--workers", "1", "--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "ref")]) == 0
    with _tmpfs(tmp_path / "disk", "96k") as mnt:  # room for the first job, not for the whole study
        out = mnt / "run"
        assert main([*argv, str(out)]) == 2
        err = _one_line_error(capsys, "sweep")
        assert re.search(r"no space left on device writing .*; nothing already written was changed$", err), err
        check_folder(out, finished=False)
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        assert main([*argv, str(out), "--resume"]) == 0
        check_folder(out)
        assert results(out) == results(tmp_path / "ref")
