"""DeepLabV3 + MobileNetV2 (Boo et al. §5.1): output stride 16 without ASPP, initialised from a torchvision
``mobilenet_v2`` state-dict file (torchvision is the test extra only)."""

from __future__ import annotations

import pytest
import torch
from support.zoo import import_torchvision

from lowbit.models.registry import create_model

try:
    tv = import_torchvision()
except ImportError:
    pytest.skip("torchvision (the zoo extra) is not installed", allow_module_level=True)


@pytest.fixture
def backbone(tmp_path_factory, monkeypatch):
    torch.manual_seed(0)
    m = tv.models.mobilenet_v2(weights=None)
    for mod in m.modules():  # non-trivial BN statistics, so a mis-mapped tensor shows
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
    root = tmp_path_factory.mktemp("bb")
    monkeypatch.setenv("LOWBIT_DATA", str(root))
    torch.save(m.state_dict(), root / "mobilenet_v2.pth")
    return m.eval(), "mobilenet_v2.pth"  # relative to the data root


def test_backbone_file_initialises_the_encoder_exactly(backbone):
    tvm, path = backbone
    ours = create_model("deeplabv3_mobilenetv2", output_stride=32, backbone=str(path)).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours.blocks(ours.stem(x)), tvm.features[:18](x))


def test_output_stride_16_dilates_after_the_last_stride_and_keeps_the_weights(backbone):
    tvm, path = backbone
    m = create_model("deeplabv3_mobilenetv2", backbone=str(path)).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = m.blocks(m.stem(x))
        assert feats.shape == (2, 320, 8, 8)  # 128 / 16
        assert m(x).shape == (2, 21, 128, 128)
    dil = [b.dw[0].dilation[0] for b in m.blocks]
    assert dil == [1] * 13 + [1, 2, 2, 2]  # the first 160-channel block keeps rate 1, the rest rate 2 (DeepLab)
    assert torch.equal(m.blocks[16].dw[0].weight, tvm.features[17].conv[1][0].weight)
    names = [n for n, _ in m.named_modules() if n in ("qra", "qa1", "qa2")]
    assert names == ["qra", "qa1", "qa2"]


def test_a_missing_wrong_or_outside_backbone_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWBIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing backbone: put torchvision's mobilenet_v2"):
        create_model("deeplabv3_mobilenetv2", backbone="none.pth")
    torch.save(tv.models.mobilenet_v2(weights=None, width_mult=0.5).state_dict(), tmp_path / "half.pth")
    with pytest.raises(ValueError, match="has shape"):
        create_model("deeplabv3_mobilenetv2", backbone="half.pth")
    for outside in (str(tmp_path / "half.pth"), "../half.pth"):
        with pytest.raises(ValueError, match="relative to the data root"):
            create_model("deeplabv3_mobilenetv2", backbone=outside)
