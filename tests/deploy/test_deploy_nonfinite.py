"""``freeze``, ``save_model`` and ``save_packed`` refuse NaN/inf weights and steps with one line naming the layer,
write nothing and change nothing (lowbit/finite.py). Before: a model whose training went NaN died in ``freeze``
with ``IndexError: index 326 is out of bounds`` (the codebook search of a NaN)."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.deploy import freeze, is_frozen, save_packed
from lowbit.models import create_model
from lowbit.quantizers import Quantizer
from lowbit.serialize import save_model

KW = {"width": 16, "depth": 3}


def _model(weight: str = "uniform") -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("fcdnn", **KW)
    cfg = lb.QuantConfig(weight=lb.quantizers.get(weight, bits=2), act=lb.quantizers.get("pact", bits=2))
    lb.quantize_(m, cfg)
    lb.calibrate(m, [torch.randn(32, 2)])
    return m.eval()


def _layer(m: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    return [(n, c) for n, c in m.named_modules() if isinstance(c, lb.nn.QuantMixin)][1]


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("weight", ["uniform", "dorefa_w"])  # affine codes and the codebook path
def test_freeze_refuses_a_nan_weight_naming_the_layer_and_leaves_the_model_as_it_was(weight):
    m = _model(weight)
    name, layer = _layer(m)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError) as e:
        freeze(m)
    assert f"layer {name!r} has a non-finite weight (1 NaN, 0 inf of" in _one_line(e)
    assert not is_frozen(m)  # no layer was frozen, not even the ones before the bad one
    after = m.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) or k.endswith("weight") for k in before)


class Overflowing(Quantizer):
    """A weight quantizer whose output overflows float32 (finite state, non-finite output)."""

    kind = "weight"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * 1e38 * 1e38


def test_freeze_refuses_a_quantizer_that_makes_a_finite_weight_non_finite():
    m = _model()
    name, layer = _layer(m)
    layer.weight_quant = Overflowing(8)
    with pytest.raises(ValueError) as e:
        freeze(m)
    assert f"layer {name!r}: the Overflowing quantizer turns the finite weight into non-finite values" in _one_line(e)
    assert not is_frozen(m)


def test_save_model_refuses_an_inf_step_and_writes_nothing(tmp_path):
    m = _model()
    name, layer = _layer(m)
    layer.act_quant.alpha.data.fill_(float("inf"))
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError) as e:
        save_model(path, m, "fcdnn", **KW)
    assert f"save_model: layer '{name}.act_quant' has a non-finite alpha (0 NaN, 1 inf of 1 values)" in _one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_save_packed_refuses_nan_and_keeps_an_existing_file(tmp_path):
    m = _model()
    path = save_packed(m, tmp_path / "m.lowbit", "fcdnn", KW)
    good = path.read_bytes()
    name, layer = _layer(m)
    with torch.no_grad():
        layer.bias.fill_(float("nan"))
    with pytest.raises(ValueError) as e:
        save_packed(m, path, "fcdnn", KW)
    assert f"save_packed: layer {name!r} has a non-finite bias" in _one_line(e)
    assert path.read_bytes() == good  # atomic: the earlier file is intact, no temporary file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lowbit"]


def test_several_bad_tensors_are_counted_in_the_one_line():
    m = _model()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"and \d+ more tensor\(s\): ") as e:
        freeze(m)
    _one_line(e)


def test_a_finite_model_still_freezes_and_saves(tmp_path):
    m = _model()
    x = torch.randn(5, 2)
    want = m(x)
    save_model(tmp_path / "m.safetensors", m, "fcdnn", **KW)
    save_packed(m, tmp_path / "m.lowbit", "fcdnn", KW)
    assert torch.equal(freeze(m)(x), want)
