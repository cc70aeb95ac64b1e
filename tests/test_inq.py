"""INQ (spec §1): partition schedule, frozen weights exactly on the codebook after every step."""

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers.pot import inq_exponents, inq_levels


def mlp():
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))


def train_steps(model, opt, n=5):
    for _ in range(n):
        opt.zero_grad()
        x = torch.randn(16, 4)
        nn.functional.cross_entropy(model(x), torch.randint(0, 3, (16,))).backward()
        opt.step()


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-3),
        lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=1e-3),
    ],
    ids=["sgd-momentum-wd", "adam"],
)
@pytest.mark.parametrize("bits", [2, 3, 5])
def test_frozen_weights_stay_on_codebook_after_every_step(make_opt, bits):
    torch.manual_seed(1)
    m = mlp()
    pre = {i: float(m[i].weight.abs().max()) for i in (0, 2, 4)}
    opt = make_opt(m.parameters())
    inq = lb.INQ(m, bits=bits, optimizer=opt)
    seen = []
    for portion in inq:
        for _ in range(3):
            train_steps(m, opt, 2)
            assert inq.check()  # after every optimizer step
        for i in (0, 2, 4):
            f = m[i].weight_quant.frozen()
            n = f.numel()
            assert int(f.sum()) == (n if portion == 1.0 else round(portion * n))
        seen.append(portion)
    assert seen == [0.5, 0.75, 0.875, 1.0]
    for i in (0, 2, 4):
        n1, n2 = inq_exponents(pre[i], bits)  # codebook from the pretrained weights
        levels = set(inq_levels(n1, n2).tolist())
        assert set(m[i].weight.detach().unique().tolist()) <= levels
        assert len(levels) == 2 ** (bits - 1) + 1


def test_frozen_values_do_not_move_even_with_momentum():
    m = mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    inq = lb.INQ(m, bits=4, optimizer=opt)
    inq.step()
    f = m[2].weight_quant.frozen()
    before = m[2].weight.detach()[f].clone()
    free_before = m[2].weight.detach()[~f].clone()
    train_steps(m, opt, 10)
    assert torch.equal(m[2].weight.detach()[f], before)
    assert not torch.equal(m[2].weight.detach()[~f], free_before)  # the free half still trains


def test_magnitude_strategy_freezes_largest_first():
    m = nn.Sequential(nn.Linear(10, 10))
    inq = lb.INQ(m, bits=5, portions=(0.3, 1.0))
    w = m[0].weight.detach().abs().clone()
    inq.step()
    f = m[0].weight_quant.frozen()
    assert int(f.sum()) == 30
    assert w[f].min() >= w[~f].max()


def test_random_strategy_is_seeded():
    def frozen(seed):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(10, 10))
        inq = lb.INQ(m, bits=3, portions=(0.5, 1.0), strategy="random", seed=seed)
        inq.step()
        return m[0].weight_quant.frozen().clone()

    assert torch.equal(frozen(1), frozen(1)) and not torch.equal(frozen(1), frozen(2))


def test_inq_on_quantized_model_keeps_activation_quantizers():
    m = mlp()
    lb.quantize_(
        m,
        lb.QuantConfig(
            weight=lb.quantizers.get("uniform", bits=2),
            act=lb.quantizers.get("pact", bits=4),
            keep_float=("first",),
        ),
    )
    inq = lb.INQ(m, bits=3)
    assert len(inq.layers) == 2 and type(m[0]) is nn.Linear
    for _ in inq:
        pass
    q = lb.quantization_map(m)
    assert q["2"]["weight"]["name"] == "inq" and q["2"]["act"]["name"] == "pact"
    assert inq.check()


def test_all_zero_layer_is_frozen_at_zero_and_bad_args_rejected():
    m = mlp()
    with torch.no_grad():
        m[2].weight.zero_()
    inq = lb.INQ(m, bits=3)
    assert bool(m[2].weight_quant.frozen().all())
    for _ in inq:
        pass
    assert torch.equal(m[2].weight.detach(), torch.zeros(32, 32))
    for kwargs, msg in [
        ({"bits": 1}, "bits=1"),
        ({"bits": 2.5}, "bits=2.5"),
        ({"bits": 3, "portions": (0.5, 0.9)}, "must end with 1.0"),
        ({"bits": 3, "portions": (0.6, 0.5, 1.0)}, "strictly increasing"),
        ({"bits": 3, "strategy": "biggest"}, "strategy='biggest'"),
    ]:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(".", r"\.")):
            lb.INQ(mlp(), **kwargs)


def test_inq_state_survives_state_dict_round_trip():
    m = mlp()
    inq = lb.INQ(m, bits=3)
    inq.step()
    inq.step()
    m2 = mlp()
    inq2 = lb.INQ(m2, bits=3)
    m2.load_state_dict(m.state_dict())
    assert inq2.stage == 1
    assert torch.equal(m2[2].weight_quant.frozen(), m[2].weight_quant.frozen())
    assert list(inq2) == [0.875, 1.0]  # continues where it stopped


def _w4(**kw):
    return lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), **kw)


def test_inq_refuses_layers_with_folded_batchnorm():
    m = lb.models.create_model("vgg_small5")
    lb.quantize_(m, _w4(fold_bn=True))
    with pytest.raises(ValueError, match="BatchNorm folded"):
        lb.INQ(m, bits=5)
