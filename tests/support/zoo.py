"""Models nobody here wrote: the zoo that ``quantize_``, training, freezing and export are judged on.

Each entry builds a small, randomly initialised model (no downloads) and an example batch for it. The libraries
are the optional ``zoo`` extra (torchvision, timm, transformers); an entry whose library is missing is skipped
by the tests with the reason. ``nn.Transformer``, the encoder classifier, the LSTM classifier and the layer bag
need nothing but torch.

PyPI's torchvision wheel is built against the CUDA torch: with the pinned CPU torch its compiled ops do not load
and ``import torchvision`` fails on ``torchvision::nms``. ``import_torchvision`` defines the two op schemas that
``torchvision`` registers fake kernels for (``nms``, ``qnms``) before importing it; the classification models
never call them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

_TV_LIB = None  # the torch.library that holds the schemas (kept alive for the process)


def import_torchvision():
    """``import torchvision``, defining ``torchvision::nms``/``qnms`` first when its C++ ops cannot load."""
    global _TV_LIB
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
    for name in [m for m in list(sys.modules) if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    if _TV_LIB is None:
        _TV_LIB = torch.library.Library("torchvision", "DEF")
        _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TV_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold, float scale, int zero_point) -> Tensor")
    return importlib.import_module("torchvision")


@dataclass(frozen=True)
class ZooModel:
    name: str
    needs: str | None  # the import name of the library it needs (None: torch only)
    build: Callable[[], nn.Module]
    example: Callable[[int], tuple]  # batch size -> the positional inputs of forward
    num_classes: int = 10


def _images(n: int, size: int = 32) -> tuple:
    return (torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(n)),)


def _tokens(n: int, length: int = 12, vocab: int = 100) -> tuple:
    return (torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(n)),)


def _tv(name: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return getattr(import_torchvision().models, name)(num_classes=10, **kw)

    return build


def _tv_vit() -> nn.Module:
    tv = import_torchvision()
    return tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return importlib.import_module("timm").create_model(name, pretrained=False, num_classes=10)

    return build


class _HFLogits(nn.Module):
    """A transformers model whose forward returns the logits tensor (not a ModelOutput)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits


def _transformers():
    """``import transformers``; its models import torchvision when it is installed, so shim that first."""
    try:
        import_torchvision()
    except ImportError:
        pass  # no torchvision: transformers does without it
    return importlib.import_module("transformers")


def _bert() -> nn.Module:
    tr = _transformers()
    cfg = tr.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=10,
    )
    return _HFLogits(tr.BertForSequenceClassification(cfg))


def _gpt2() -> nn.Module:
    tr = _transformers()
    cfg = tr.GPT2Config(
        vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2, num_labels=10, bos_token_id=1, eos_token_id=1
    )
    cfg.pad_token_id = 0
    return _HFLogits(tr.GPT2ForSequenceClassification(cfg))


class EncoderClassifier(nn.Module):
    """nn.Embedding + nn.TransformerEncoder + mean pooling + a linear head (a text classifier)."""

    def __init__(self, vocab: int = 100, d: int = 32, classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(1))


class Seq2Seq(nn.Module):
    """nn.Transformer (encoder + decoder) on embedded tokens, decoder output pooled into classes."""

    def __init__(self, vocab: int = 100, d: int = 32, classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(
            d, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens)
        return self.head(self.transformer(e, e[:, : e.shape[1] // 2]).mean(1))


class LSTMClassifier(nn.Module):
    """Embedding -> 2-layer LSTM -> last hidden state -> linear head."""

    def __init__(self, vocab: int = 100, d: int = 32, classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, num_layers=2, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


class LayerBag(nn.Module):
    """Conv1d, ConvTranspose2d, Conv3d, GroupNorm and GRU in one model (image in, classes out)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv3d = nn.Conv3d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(12, 8, 2, stride=2)
        self.norm = nn.GroupNorm(2, 8)
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, H, W)
        v = torch.relu(self.conv3d(x.unsqueeze(1)))  # (N, 4, 3, H, W)
        v = v.flatten(1, 2)  # (N, 12, H, W)
        v = torch.relu(self.norm(self.up(v)))  # (N, 8, 2H, 2W)
        s = torch.relu(self.conv1d(v.mean(2)))  # (N, 8, 2W)
        out, _ = self.gru(s.transpose(1, 2))  # (N, 2W, 16)
        return self.head(out[:, -1])


ZOO: dict[str, ZooModel] = {
    z.name: z
    for z in [
        ZooModel("tv_resnet18", "torchvision", _tv("resnet18"), _images),
        ZooModel("tv_mobilenet_v3_small", "torchvision", _tv("mobilenet_v3_small"), _images),
        ZooModel("tv_efficientnet_b0", "torchvision", _tv("efficientnet_b0"), _images),
        ZooModel("tv_vit_tiny", "torchvision", _tv_vit, _images),
        ZooModel("timm_resnet18", "timm", _timm("resnet18"), _images),
        ZooModel("timm_mobilenetv3_small_100", "timm", _timm("mobilenetv3_small_100"), _images),
        ZooModel("hf_bert_tiny", "transformers", _bert, _tokens),
        ZooModel("hf_gpt2_tiny", "transformers", _gpt2, _tokens),
        ZooModel("nn_transformer", None, Seq2Seq, _tokens),
        ZooModel("nn_encoder_classifier", None, EncoderClassifier, _tokens),
        ZooModel("lstm_classifier", None, LSTMClassifier, _tokens),
        ZooModel("layer_bag", None, LayerBag, lambda n: (torch.randn(n, 3, 8, 8, generator=torch.Generator()),)),
    ]
}


def available(entry: ZooModel) -> str | None:
    """None when the entry can be built here, else the reason it cannot (the library is missing)."""
    if entry.needs is None:
        return None
    try:
        import_torchvision() if entry.needs == "torchvision" else importlib.import_module(entry.needs)
    except ImportError as e:
        return f"{entry.name} needs {entry.needs} (pip install 'lowbit[zoo]'): {e}"
    return None


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    """(model, example inputs of batch 4) for zoo entry ``name``, deterministic for ``seed``."""
    entry = ZOO[name]
    torch.manual_seed(seed)
    return entry.build(), entry.example(4)
