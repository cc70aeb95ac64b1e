"""Helpers of the application-study tests: tiny generated data sets in the shared-data layout, and a study run
through ``lowbit reproduce`` whose report is then rebuilt by ``lowbit report`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from lowbit.cli import main


def write_cifar_jpeg(data: Path, classes: int = 3, n_train: int = 8, n_test: int = 4, side: int = 32) -> None:
    """``data/cifar10-jpeg.tar.gz``: cifar10-jpeg/{train,test}/<class>/*.jpg of class-coloured noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    src = data / "src"
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(classes):
            folder = src / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 96, (side, side, 3)) + 40 * c
                Image.fromarray(a.astype(np.uint8)).save(folder / f"{i:04d}.jpg")
    with tarfile.open(data / "cifar10-jpeg.tar.gz", "w:gz") as t:
        t.add(src, arcname="cifar10-jpeg")


def reproduce_and_rebuild(name: str, out: Path, env: dict[str, str]) -> tuple[str, str]:
    """Run ``lowbit reproduce NAME --scale tiny``; delete the report and figures; rebuild them with ``lowbit
    report`` in a fresh process; check the rebuild equals the original; return (report.md, report.html)."""
    assert main(["reproduce", name, "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    figdir = out / "figures"
    figures = sorted(p.name for p in figdir.iterdir()) if figdir.is_dir() else []
    for p in figdir.glob("*"):
        p.unlink()
    (out / "report.md").unlink()
    (out / "report.html").unlink()
    full_env = {**os.environ, **env, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "lowbit.cli", "report", str(out)], check=True, env=full_env, capture_output=True
    )
    assert (out / "report.md").read_text() == md and (out / "report.html").read_text() == html
    assert sorted(p.name for p in figdir.glob("*")) == figures
    return md, html
