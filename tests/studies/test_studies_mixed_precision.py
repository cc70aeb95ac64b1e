"""The mixed_precision study at its tiny scale: mixed vs uniform at equal bytes, seed-paired, and where the bits
went; the report is rebuilt from the store alone."""

from __future__ import annotations

import json

import pytest
from support.app_studies import reproduce_and_rebuild

from lowbit.engine.report.results import RunResults
from lowbit.engine.spec import load_spec, parse_spec
from lowbit.studies import study_path


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWBIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    md, _ = reproduce_and_rebuild("mixed_precision", out, {"LOWBIT_CACHE": str(tmp_path / "cache")})
    assert "Mixed against the best uniform precision at equal bytes (seed-paired)" in md
    assert "| bits | mixed_h − W |" in md and "figures/bits_per_layer.png" in md
    res = RunResults(out)
    mixed = [j for j in res.jobs.values() if j.config["recipe"]["kind"] == "mixed"]
    assert len(mixed) == 3 * 2 * 2  # criteria x seeds x budgets
    uniform = {(j.axes["seed"], j.axes["bits"]): j for j in res.jobs.values() if j.axes["method"] == "W"}
    for j in mixed:
        rec = json.loads((res.job_dir(j) / "mixed.json").read_text())
        alloc = rec["allocation"]
        # the budget is uniform W_b's memory, and the trained model's stored bytes are what the allocation predicted
        w = uniform[(j.axes["seed"], j.axes["bits"])]
        assert alloc["budget_bytes"] == alloc["uniform_bytes"][str(j.axes["bits"])]
        assert j.metrics["weight_kib"] * 1024 == pytest.approx(alloc["predicted_bytes"])
        assert alloc["predicted_bytes"] <= alloc["budget_bytes"] == pytest.approx(w.metrics["weight_kib"] * 1024)
        assert set(alloc["bits"].values()) <= {1, 2, 3, 4, 8}
        if j.axes["method"] == "mixed_h":
            assert {r["role"] for r in rec["sensitivity"]["rows"]} == {"weight"}


def test_a_mixed_method_is_checked(tmp_path):
    raw = load_spec(study_path("mixed_precision"), "tiny").raw
    for change, words in (
        ({"criterion": "best"}, "criterion"),
        ({"budget": "W3"}, "exactly one"),
        ({"budget_bits": 5}, "one of the candidates"),
        ({"parent": "W"}, "float parent"),
        ({"samples": 0}, "samples"),
    ):
        bad = json.loads(json.dumps(raw))
        bad["methods"]["mixed_h"].update(change)
        with pytest.raises(ValueError, match=words):
            parse_spec(bad, None, "mixed.toml")
    bad = json.loads(json.dumps(raw))
    del bad["methods"]["mixed_h"]["budget_bits"]
    bad["methods"]["mixed_h"]["budget"] = "W7"
    with pytest.raises(ValueError, match="W<bits>"):
        parse_spec(bad, None, "mixed.toml")


@pytest.mark.slow
def test_fmnist_cnn_tiny_end_to_end(tmp_path, monkeypatch):
    """The Fashion-MNIST CNN spec on generated idx files (the real format, random pixels)."""
    import numpy as np

    from lowbit.data.idx import write_idx

    root = tmp_path / "data" / "fashion-mnist"
    rng = np.random.default_rng(0)
    for stem, n in (("train", 60), ("t10k", 30)):
        write_idx(root / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    env = {"LOWBIT_DATA": str(tmp_path / "data"), "LOWBIT_CACHE": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    md, _ = reproduce_and_rebuild("mixed_precision_fmnist", tmp_path / "run", env)
    assert "resnet8 mixed_h bits=2" in md and "| bits | mixed_h − W |" in md
    res = RunResults(tmp_path / "run")
    layers = json.loads(
        (res.job_dir(next(j for j in res.jobs.values() if j.axes["method"] == "mixed_h")) / "mixed.json").read_text()
    )
    assert len(layers["allocation"]["bits"]) == 10  # 9 convs (stem, 2 blocks x 2, 2 shortcuts... as built) + FC
