"""The paper scales' pieces run through the engine end to end on small files in the real formats: PASCAL VOC with
DeepLabV3-MobileNetV2 from a torchvision backbone file scored by mIoU (W4A4 retraining with CLR), and ILSVRC-2012
folders with VGG and INQ at a fixed top level (max_value = 4.0), from a spec with ``device = "auto"``."""

from __future__ import annotations

import pytest
import torch
from support.data_files import write_imagenet, write_voc
from support.zoo import import_torchvision

from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec
from lowbit.engine.store import Store

QUANT = {
    "weight": {"name": "uniform", "bits": 4},
    "keep_float": ["first", "last"],
    "rules": {"*qa?": {"act": {"name": "pact", "bits": 4}}, "qra": {"act": {"name": "uniform", "bits": 4}}},
}


def _rows(run) -> dict[str, dict]:
    """{method (bits): {metric: value}} of the run's stored rows."""
    out: dict[str, dict] = {}
    with Store(run) as store:
        for r in store.rows():
            label = r.axes["method"] + (f" bits={r.axes['bits']}" if "bits" in r.axes else "")
            out.setdefault(label, {})[r.metric] = r.value
    return out


@pytest.mark.slow
def test_voc_deeplab_miou_study_runs(tmp_path, monkeypatch):
    tv = import_torchvision()
    monkeypatch.setenv("LOWBIT_DATA", str(tmp_path))
    write_voc(tmp_path / "VOCdevkit" / "VOC2012")
    torch.save(tv.models.mobilenet_v2(weights=None, width_mult=0.25).state_dict(), tmp_path / "mnv2.pth")
    spec = parse_spec(
        {
            "name": "voc-tiny",
            "task": "segmentation_miou",
            "data": {"name": "voc2012", "crop": 32},
            "grid": {"model": ["m"], "method": ["float", "W4A4", "W4A4+CLR"], "seed": [0]},
            "models": {"m": {"name": "deeplabv3_mobilenetv2", "width_mult": 0.25, "head_channels": 8,
                             "backbone": "mnv2.pth"}},
            "train": {"epochs": 1, "batch_size": 2, "device": "auto", "optimizer": "sgd", "schedule": "poly",
                      "lr": 0.01},
            "methods": {
                "float": {"kind": "float"},
                "W4A4": {"kind": "qat", "parent": "float", "quant": QUANT, "calibrate": 2},
                "W4A4+CLR": {"kind": "qat", "parent": "W4A4", "quant": QUANT, "calibrate": 2,
                             "train": {"schedule": "cyclical", "lr": 1e-5, "cycle_stage": 1, "epochs": 2}},
            },
            "report": {"tables": [{"rows": "method", "columns": "model", "value": "miou"}]},
        }
    )  # fmt: skip
    sweep(spec, tmp_path / "run", workers=1, progress=False)
    rows = _rows(tmp_path / "run")
    assert len(rows) == 3
    for metrics in rows.values():
        assert 0.0 <= metrics["miou"] <= 100.0 and 0.0 <= metrics["pixel_accuracy"] <= 100.0
    assert "miou" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_imagenet_vgg_inq_fixed_top_runs(tmp_path):
    root = write_imagenet(tmp_path / "imagenet", per_class=2)
    spec = parse_spec(
        {
            "name": "imagenet-tiny",
            "task": "image_classification",
            "data": {"name": "imagenet", "root": str(root), "threads": 2},
            "grid": {"model": ["v"], "method": ["float", "INQ"], "seed": [0], "bits": [3]},
            "models": {"v": {"name": "vgg_small5", "width": 0.0625, "fc_hidden": 16, "batch_norm": False,
                             "pool_to": 7}},
            "train": {"epochs": 1, "batch_size": 2, "device": "auto", "optimizer": "sgd"},
            "methods": {
                "float": {"kind": "float"},
                "INQ": {"kind": "inq", "parent": "float", "bits": "${bits}", "max_value": 4.0,
                        "train": {"lr": 1e-4, "schedule": "inverse_time", "gamma": 1e-6}},
            },
        }
    )  # fmt: skip
    sweep(spec, tmp_path / "run", workers=1, progress=False)
    rows = _rows(tmp_path / "run")
    inq = next(m for label, m in rows.items() if "INQ" in label)
    assert inq["on_codebook"] == 1.0 and set(inq) >= {"accuracy", "train_accuracy"}
