"""One experiment from one config file: ``lowbit run CONFIG``.

    name = "fcdnn-w2"
    [data]              # a registered data set (lowbit.experiments.datasets) and its arguments
    name = "spirals"
    [model]             # a registered model and its arguments
    name = "fcdnn"
    width = 128
    depth = 4
    [train]             # float training (TrainConfig fields)
    epochs = 50
    [quant]             # optional: QuantConfig fields (quantizers as {name=..., bits=...} tables)
    weight = { name = "uniform", bits = 2 }
    [inq]               # optional, instead of or on top of [quant]: bits, portions, strategy
    bits = 4
    [retrain]           # TrainConfig for QAT/INQ retraining (INQ: epochs per portion)
    epochs = 10

The run folder gets config.toml, float/ and quant/ training folders (checkpoints, metrics.jsonl), the
final model.safetensors (loadable with ``lowbit summary`` / ``lowbit.serialize.load_model``), report.md/html.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .. import tomlio  # noqa: E402
from ..api import calibrate, plan, quantize_  # noqa: E402
from ..config import QuantConfig, check_keys  # noqa: E402
from ..models import create_model  # noqa: E402
from ..serialize import save_model  # noqa: E402
from ..train import TrainConfig, fit, fit_inq  # noqa: E402
from ..train.checkpoint import atomic_write_text  # noqa: E402
from ..train.loop import epoch_batches  # noqa: E402
from .datasets import build_dataset  # noqa: E402
from .report import Figure, Report, Table  # noqa: E402
from .runfolder import start_run_folder  # noqa: E402

INQ_KEYS = {"bits", "portions", "strategy"}


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: dict[str, Any] = field(default_factory=lambda: {"name": "spirals"})
    model: dict[str, Any] = field(default_factory=lambda: {"name": "fcdnn"})
    train: TrainConfig = field(default_factory=TrainConfig)
    quant: QuantConfig | None = None
    inq: dict[str, Any] | None = None
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=1e-3))

    def __post_init__(self):
        for key in ("data", "model"):
            d = getattr(self, key)
            if not isinstance(d, dict) or "name" not in d:
                raise ValueError(f"[{key}] needs a 'name' field, got {d!r}")
        if self.inq is not None:
            unknown = sorted(set(self.inq) - INQ_KEYS)
            if unknown or "bits" not in self.inq:
                raise ValueError(
                    f"[inq]: fields {sorted(self.inq)} are not accepted; expected 'bits' and optionally "
                    f"'portions', 'strategy'"
                )

    @classmethod
    def from_dict(cls, d: dict) -> ExperimentConfig:
        check_keys(d, cls, "experiment config")
        d = dict(d)
        for k in ("train", "retrain"):
            if k in d:
                d[k] = TrainConfig.from_dict(d[k])
        if "quant" in d:
            d["quant"] = QuantConfig.from_dict(d["quant"])
        return cls(**d)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "data": self.data,
            "model": self.model,
            "train": self.train.to_dict(),
            "quant": None if self.quant is None else self.quant.to_dict(),
            "inq": self.inq,
            "retrain": self.retrain.to_dict(),
        }


def _accuracy(model, test) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in epoch_batches(test, 4096, seed=0, epoch=0, shuffle=False):
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / max(1, total)


def run_experiment(cfg: ExperimentConfig, out: Path, resume: bool = False, progress: bool = True) -> Path:
    out = Path(out)
    text = tomlio.dumps({"experiment": cfg.to_dict()})
    data_kwargs = {k: v for k, v in cfg.data.items() if k != "name"}
    model_kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
    # everything that can be checked is checked before anything is written
    train, test = build_dataset(cfg.data["name"], **data_kwargs)
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model["name"], **model_kwargs)
    if cfg.quant is not None:
        plan(model, cfg.quant)
    start_run_folder(out, {"experiment": cfg.to_dict()}, resume)
    hist = {
        "float": fit(model, train, cfg.train, run_dir=out / "float", resume=resume, progress=progress, desc="float")
    }
    rows = [["float", "32", _accuracy(model, test)]]
    if cfg.quant is not None or cfg.inq is not None:
        if cfg.quant is not None:
            quantize_(model, copy.deepcopy(cfg.quant))
            calibrate(model, [next(epoch_batches(train, 4096, seed=cfg.train.seed, epoch=0))])  # spec §2.3
        if cfg.inq is not None:
            _, hist["quant"] = fit_inq(
                model, train, cfg.retrain, run_dir=out / "quant", resume=resume, progress=progress, **cfg.inq
            )
            label = f"INQ {cfg.inq['bits']}-bit" + (" + quant" if cfg.quant else "")
        else:
            hist["quant"] = fit(
                model, train, cfg.retrain, run_dir=out / "quant", resume=resume, progress=progress, desc="retrain"
            )
            label = "quantized"
        rows.append([label, _bits(cfg), _accuracy(model, test)])
    save_model(out / "model.safetensors", model, cfg.model["name"], **model_kwargs)
    atomic_write_text(out / "result.json", json.dumps({"rows": rows, "history": hist}))
    return _write_report(out, cfg, rows, hist, text)


def rebuild_report(out: Path) -> Path:
    """Rewrite report.md/html and the figure of a finished ``lowbit run`` folder."""
    out = Path(out)
    text = (out / "config.toml").read_text()
    cfg = ExperimentConfig.from_dict(tomlio.load(out / "config.toml")["experiment"])
    if not (out / "result.json").exists():
        raise ValueError(f"{out} has no result.json yet; finish the run with --resume first")
    res = json.loads((out / "result.json").read_text())
    return _write_report(out, cfg, res["rows"], res["history"], text)


def _bits(cfg: ExperimentConfig) -> str:
    w = cfg.inq["bits"] if cfg.inq else (cfg.quant.weight.bits if cfg.quant and cfg.quant.weight else 32)
    a = cfg.quant.act.bits if cfg.quant and cfg.quant.act else 32
    return f"W{w}A{a}"


def _write_report(out: Path, cfg: ExperimentConfig, rows: list, hist: dict, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3))
    offset = 0
    for k, h in hist.items():
        ax.plot([offset + i for i in range(len(h))], [r["loss"] for r in h], label=k)
        offset += len(h)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.set_title(f"{cfg.data['name']}, {cfg.model['name']}, seed {cfg.train.seed}, 1 run", fontsize=8)
    fig.tight_layout()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "figures" / "loss.png", dpi=100)
    plt.close(fig)
    rep = Report(
        title=f"Experiment {cfg.name}",
        tables=[Table("Test accuracy (%)", ["model", "bits", "accuracy"], rows)],
        figures=[
            Figure(
                "figures/loss.png",
                f"Training loss: data {cfg.data['name']}, model {cfg.model['name']}, "
                f"{_bits(cfg)}, seed {cfg.train.seed}, 1 run.",
            )
        ],
        config_text=text,
    )
    return rep.write(out)[0]
