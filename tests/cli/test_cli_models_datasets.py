"""``lowbit models``, ``lowbit datasets`` and ``lowbit train-config``: what a spec can name, with each one's arguments,
defaults and the input it takes or gives, as text and as JSON; read from the registries and signatures."""

from __future__ import annotations

import inspect
import json

import pytest

from lowbit.cli import main
from lowbit.data.sets import DATASETS
from lowbit.models import MODELS
from lowbit.models.registry import INPUTS
from lowbit.train.config import TrainConfig


def _json(capsys, *argv: str):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_lists_every_registered_model_with_its_input_and_arguments(capsys):
    entries = _json(capsys, "models")
    assert [e["name"] for e in entries] == MODELS.names()
    by = {e["name"]: e for e in entries}
    assert by["fcdnn"]["input"] == INPUTS["vector"] and "flattened" in by["fcdnn"]["input"]
    assert by["cifar_resnet"]["input"] == "(N, C, H, W) images" and by["deepspeech"]["input"].startswith("(N, T, D)")
    for e in entries:  # every model says what it takes and has a doc line
        assert e["input"] in INPUTS.values() and e["output"] and e["doc"], e["name"]
    args = {a["name"]: a for a in by["fcdnn"]["arguments"]}
    sig = inspect.signature(MODELS.get("fcdnn")).parameters
    assert list(args) == list(sig) and all(args[n]["default"] == sig[n].default for n in sig)
    assert args["width"]["type"] == "a whole number >= 1" and args["residual"]["type"] == "true or false"
    assert args["depth"]["type"] == "a whole number >= 2"
    assert args["in_features"]["from_data"] and not args["width"]["from_data"]
    block = {a["name"]: a for a in by["cifar_resnet"]["arguments"]}["block"]
    assert block["type"] == "one of 'basic', 'preact', 'depthwise'"
    assert "layers" not in {a["name"] for a in by["vgg16"]["arguments"]}  # fixed by the builder, not an argument


def test_models_text_names_the_input_and_the_defaults(capsys):
    assert main(["models", "fcdnn"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "fcdnn"
    assert "  takes: (N, in_features) vectors; image data is flattened for it" in out
    assert "    width: a whole number >= 1 (default 128)" in out
    assert "    in_features: a whole number >= 1 (default 2; set from the data unless given)" in out
    assert out.splitlines()[-1] == "1 registered"
    assert main(["models", "fcdn"]) == 2
    assert "unknown model 'fcdn'; did you mean 'fcdnn'" in capsys.readouterr().err


def test_datasets_lists_what_each_gives_and_its_argument_ranges(capsys):
    entries = _json(capsys, "datasets")
    assert [e["name"] for e in entries] == DATASETS.names()
    for e in entries:
        assert e["gives"] and e["targets"] and e["task"] and e["doc"], e["name"]
    by = {e["name"]: e for e in entries}
    assert by["fashion_mnist"]["gives"] == "(N, C, H, W) images" and by["digits"]["gives"] == "(N, 64) vectors"
    folder = {a["name"]: a for a in by["image_folder"]["arguments"]}
    assert folder["root"]["required"] and folder["subset"]["type"] == "a whole number >= 0"
    assert folder["channels"] == {
        "name": "channels",
        "type": "one of 1, 3",
        "default": 3,
        "required": False,
        "from_data": False,
    }
    seg = {a["name"]: a for a in by["segmentation_folder"]["arguments"]}
    assert seg["tile"]["type"] == "a whole number >= 1" and by["segmentation_folder"]["task"] == "segmentation"
    assert main(["datasets", "image_folder"]) == 0
    out = capsys.readouterr().out
    assert "  gives: (N, C, H, W) images" in out and "    root: a string (required)" in out


def test_train_config_says_the_default_optimizer(capsys):
    rows = _json(capsys, "train-config")
    default = {**vars(TrainConfig()), "milestones": []}  # every field (to_dict leaves the later ones out at default)
    assert [r["name"] for r in rows] == list(default) and all(r["default"] == default[r["name"]] for r in rows)
    assert {r["name"]: r["default"] for r in rows}["optimizer"] == "adam"
    assert main(["train-config"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("optimizer") and '"adam"' in line and "Adam" in line for line in out.splitlines())


@pytest.mark.parametrize("command", ["models", "datasets", "train-config"])
def test_help_mentions_the_other_listings(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps at hyphens
    assert {"models": "lowbit train-config", "datasets": "target", "train-config": "Adam"}[command] in out
