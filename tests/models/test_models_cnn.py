"""CIFAR ResNets (three block types), MobileNetV2 and Table 1's ImageNet ResNets: structure, parameter counts
against the papers' tables, and where the QA / QRA activation quantizers sit (Boo et al. Fig. 4, Tables 1 and 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.models import create_model
from lowbit.models.blocks import BasicBlock, DepthwiseBlock, PreActBlock, point_rules
from lowbit.models.resnet_cifar import TABLE5, param_count
from lowbit.models.resnet_imagenet import TABLE1
from lowbit.nn import ActPoint, QuantActPoint


def _meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):  # counting only: no memory, no init time
        return create_model(name, **kw)


def _main_path_layers(m: nn.Module) -> int:
    """Weighted layers on the main path: every conv and linear except the 1x1 shortcut projections."""
    return sum(isinstance(x, (nn.Conv2d, nn.Linear)) for n, x in m.named_modules() if ".shortcut" not in n)


@pytest.mark.parametrize("block, depth, width, n, millions", TABLE5)
def test_table5_configurations(block, depth, width, n, millions):
    m = _meta("cifar_resnet", block=block, depth=depth, width=width)
    assert [len(getattr(m, f"layer{g}")) for g in (1, 2, 3)] == [n, n, n]
    assert _main_path_layers(m) == depth
    assert m.fc.in_features == 4 * width and m.stem[0].out_channels == width
    # Table 5 counts BN's running statistics too (Keras-style); basic/pre-act within 1.1 %, depthwise 0.5 %
    counted = param_count(m, bn_stats=True) / 1e6
    assert counted == pytest.approx(millions, rel=0.011 if block != "depthwise" else 0.005)
    assert param_count(m) < param_count(m, bn_stats=True)


def test_param_count_by_hand():
    # ResNet-8, D = 2, basic: stem 3·9·2 + BN 4; group 1: 2·(2·2·9) + BN 2·4; group 2: 2·4·9 + 4·4·9 + BN 2·8
    # + shortcut 2·4 + BN 8; group 3: 4·8·9 + 8·8·9 + BN 2·16 + shortcut 4·8 + BN 16; FC 8·10 + 10
    by_hand = (54 + 4) + (72 + 8) + (72 + 144 + 16 + 8 + 8) + (288 + 576 + 32 + 32 + 16) + 90
    m = create_model("cifar_resnet", depth=8, width=2)
    assert param_count(m) == by_hand
    bn_channels = 2 + 2 * 2 + 2 * 4 + 4 + 2 * 8 + 8
    assert param_count(m, bn_stats=True) == by_hand + 2 * bn_channels


@pytest.mark.slow
@pytest.mark.parametrize("name, depth", [("resnet20", 20), ("resnet32", 32), ("resnet56", 56), ("resnet110", 110)])
def test_resnet_depths_and_width_multiplier(name, depth):
    m = _meta(name)
    assert _main_path_layers(m) == depth and m.width == 16
    assert len(m.layer1) == (depth - 2) // 6
    assert _meta(name, width_mult=10).width == 160  # ResNet×10 of Fig. 6
    if name == "resnet20":
        assert param_count(m) == 272_474  # 0.27 M (He et al.) plus the two 1x1 projection shortcuts


def test_mobilenetv2():
    # the ImageNet network (stem stride 2, 1000 classes) has torchvision's 3,504,872 parameters
    assert param_count(_meta("mobilenetv2_cifar", num_classes=1000, stem_stride=2)) == 3_504_872
    m = create_model("mobilenetv2_cifar", width_mult=0.25).eval()
    assert m.stem[0].stride == (1, 1)  # CIFAR: the first stride 2 becomes 1 (Boo et al. §5.2)
    feats = m.blocks(m.stem(torch.randn(1, 3, 32, 32)))
    assert feats.shape[-1] == 2  # 32 -> /2 four times (strides of the bottleneck table)
    assert m.stem[0].out_channels == 8 and m.last_channel == 1280  # 32·0.25 -> 8; 1280·max(1, w)
    assert [b.residual for b in m.blocks][:4] == [True, False, True, False]  # width 0.25: 8 -> 8 keeps shape
    wide = _meta("mobilenetv2_cifar", width_mult=1.4)
    assert wide.stem[0].out_channels == 48 and wide.last_channel == 1792


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_table1_imagenet_resnets(name):
    block, blocks, width, millions = TABLE1[name]
    m = _meta(f"imagenet_{name}")
    assert m.depth == int(name[6:].split("x")[0])  # ResNet<L>[x<k>]
    assert _main_path_layers(m) == m.depth
    assert [len(getattr(m, f"layer{g}")) for g in (1, 2, 3, 4)] == list(blocks)
    assert m.stem[0].out_channels == width
    assert param_count(m) / 1e6 == pytest.approx(millions, rel=0.005)


def test_imagenet_resnet_small_forward():
    m = create_model("imagenet_resnet50", width_scale=1 / 16, num_classes=7).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"depth=21 .*6·n \+ 2"):
        create_model("cifar_resnet", depth=21)
    with pytest.raises(ValueError, match="depth=22 .*9·n \\+ 2"):
        create_model("cifar_resnet", block="depthwise", depth=22)
    with pytest.raises(ValueError, match="block='bottle'"):
        create_model("cifar_resnet", block="bottle")
    with pytest.raises(ValueError, match="width_mult=0"):
        create_model("resnet20", width_mult=0)
    with pytest.raises(ValueError, match="width_mult"):
        create_model("mobilenetv2_cifar", width_mult=-1)
    with pytest.raises(ValueError, match="blocks="):
        create_model("imagenet_resnet", blocks=(1, 2))
    with pytest.raises(ValueError, match="role='x'"):
        ActPoint("x")


# -- QA / QRA placement (Fig. 4) -------------------------------------------------------------------------------
PACT2 = {"name": "pact", "bits": 2}
SHORTCUT8 = {"name": "pact", "bits": 8}
SIGNED8 = {"name": "lsq", "bits": 8, "signed": True}


def _quantized(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    m = create_model(name, **kw)
    rules = point_rules(m, PACT2, shortcut=SHORTCUT8, signed_shortcut=SIGNED8)
    cfg = lb.QuantConfig(weight={"name": "uniform", "bits": 2}, rules=rules, keep_float=("first", "last"))
    return lb.quantize_(m, cfg)


def _record(mods: dict[str, nn.Module]):
    seen: dict[str, tuple] = {}
    hs = [m.register_forward_hook(lambda mod, a, out, k=k: seen.__setitem__(k, (a[0], out))) for k, m in mods.items()]
    return seen, hs


# block class, its QA points -> the conv each feeds, the conv the QRA point feeds besides the shortcut
PLACES = {
    BasicBlock: ({"qa1": "conv1", "qa2": "conv2"}, None),
    PreActBlock: ({"qa1": "conv1", "qa2": "conv2"}, None),
    DepthwiseBlock: ({"qa1": "dw.0", "qa2": "project.0"}, "expand.0"),
}


@pytest.mark.parametrize(
    "name, kw, cls, signed",
    [
        ("cifar_resnet", {"depth": 14, "width": 4}, BasicBlock, False),
        ("cifar_resnet_preact", {"depth": 14, "width": 4}, PreActBlock, True),
        ("cifar_resnet_depthwise", {"depth": 20, "width": 4}, DepthwiseBlock, True),
    ],
)
def test_qa_qra_count_and_placement(name, kw, cls, signed):
    m = _quantized(name, **kw)
    block = m.layer1[1]  # an identity-shortcut block inside the network
    assert isinstance(block, cls)
    readers, stream_reader = PLACES[cls]
    pts = {n: p for n, p in block.named_children() if isinstance(p, QuantActPoint)}
    assert sorted(pts) == sorted([*readers, "qra"])  # two QA and one QRA per block
    assert all(pts[k].role == "qa" and not pts[k].signed for k in readers)
    assert pts["qra"].role == "qra" and pts["qra"].signed == signed
    assert [pts[k].act_quant.bits for k in readers] == [2] * len(readers) and pts["qra"].act_quant.bits == 8
    assert pts["qra"].act_quant.name == ("lsq" if signed else "pact")  # signed streams got the signed quantizer
    # the points are the block's only activation quantizers: its convolutions read them, unquantized themselves
    convs = [x for x in block.modules() if isinstance(x, lb.nn.QuantConv2d)]
    assert convs and all(c.act_quant is None and c.weight_quant is not None for c in convs)
    watch = {**pts, **{c: block.get_submodule(c) for c in readers.values()}, "block": block}
    if stream_reader:
        watch[stream_reader] = block.get_submodule(stream_reader)
    seen, hs = _record(watch)
    m.train()
    m(torch.randn(8, 3, 32, 32))
    for h in hs:
        h.remove()
    for point, conv in readers.items():
        assert torch.equal(seen[conv][0], seen[point][1])  # the conv's input is the point's output ...
        assert seen[point][1].unique().numel() <= 4 and seen[point][1].min() >= 0  # ... on 2-bit PACT's 4 levels
    x, out = seen["block"]
    assert torch.equal(seen["qra"][0], x)  # QRA reads the block input (the residual stream) ...
    shortcut = seen["qra"][1]
    assert 4 < shortcut.unique().numel() <= 256 and not torch.equal(shortcut, x)  # ... at the shortcut's 8 bits
    if stream_reader:  # a linear bottleneck: the expansion conv reads the same quantized stream
        assert torch.equal(seen[stream_reader][0], shortcut)
    if signed:  # pre-activation / linear-bottleneck streams are signed and stay so
        assert (x < 0).any() and (shortcut < 0).any()
        last = seen["conv2"][1] if cls is PreActBlock else block.project[1](seen["project.0"][1])
        assert torch.allclose(out - shortcut, last, atol=1e-5)  # out = branch + QRA(x), not branch + x


def test_basic_block_output_uses_quantized_shortcut():
    m = _quantized("cifar_resnet", depth=8, width=4).eval()
    block = m.layer1[0]
    x = torch.relu(torch.randn(2, 4, 8, 8))
    with torch.no_grad():
        h = block.bn2(block.conv2(block.qa2(torch.relu(block.bn1(block.conv1(block.qa1(x)))))))
        assert torch.equal(block(x), torch.relu(h + block.qra(x)))
        assert not torch.equal(block(x), torch.relu(h + x))


def test_point_rules_patterns_fit_every_family():
    for name, kw in [
        ("cifar_resnet", {"depth": 8, "width": 2}),
        ("cifar_resnet_preact", {"depth": 8, "width": 2}),
        ("cifar_resnet_depthwise", {"depth": 11, "width": 2}),
        ("mobilenetv2_cifar", {"width_mult": 0.1}),
        ("imagenet_resnet50", {"width_scale": 1 / 16}),
    ]:
        m = create_model(name, **kw)
        rules = point_rules(m, PACT2)
        assert list(rules) == ["*qa?", "*qra"]  # the same two patterns everywhere: one spec for all models
        lb.quantize_(m, lb.QuantConfig(rules=rules))  # a pattern matching nothing would raise here
        qmap = lb.quantization_map(m)
        points = [n for n, v in qmap.items() if v["type"] == "QuantActPoint"]
        assert points and all(qmap[n]["act"]["name"] == "pact" for n in points)
        assert all(v["act"] is None for v in qmap.values() if v["type"] != "QuantActPoint")
    deep = create_model("cifar_resnet_depthwise", depth=20, width=2)
    rules = point_rules(deep, PACT2, signed_shortcut=SIGNED8)
    assert "layer1.0.qra" not in rules and rules["layer2.0.qra"]["act"] == SIGNED8  # the stem output is unsigned


def test_inq_skips_activation_points():
    torch.manual_seed(0)
    m = create_model("resnet20", width_mult=0.25)
    inq = lb.INQ(m, bits=4)
    weighted = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    assert len(inq.layers) == len(weighted) == 22  # 19 convs + 2 projection shortcuts + FC; no ActPoint
    for _ in inq:
        pass
    assert inq.check()
    assert all(type(p) is ActPoint for p in m.modules() if isinstance(p, ActPoint))  # points stay float
    assert m.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
