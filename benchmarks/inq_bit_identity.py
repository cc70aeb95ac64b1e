"""Do 6, 7, 8 and 9 INQ bits give the same model? Measured both ways: the per-layer codebook (n1 from max|W|,
Eq. 3) and the INQ edge paper's fixed top level (``max_value = 4.0``: n1 = 2 for every layer, spec §1.1).

    PYTHONPATH=src .venv/bin/python benchmarks/inq_bit_identity.py 2>/dev/null

A 64-wide, 3-layer FCDNN trained 20 epochs on the scikit-learn digits (Adam 3e-3, seed 0), then INQ at 5..9
bits from it (portions 0.5/0.75/0.875/1, 2 epochs Adam 3e-4 per stage); prints how many weights and test
predictions differ between neighbouring bit widths. Not a speed benchmark: a check of the codebook arithmetic on a
trained model (more bits add powers of two below 2^n2, and a trained model has almost no weights that small).
"""

from __future__ import annotations

import copy

import torch

from lowbit.data.sets import load_data
from lowbit.models.registry import create_model
from lowbit.train import TrainConfig, fit, fit_inq

BITS = (5, 6, 7, 8, 9)


def main() -> None:
    torch.set_num_threads(1)
    d = load_data({"name": "digits"})
    torch.manual_seed(0)
    model = create_model(
        "fcdnn", in_features=d.info["in_features"], num_classes=d.info["num_classes"], width=64, depth=3
    )
    fit(model, d.train, TrainConfig(epochs=20, lr=3e-3, batch_size=64))
    ws = [p.detach() for n, p in model.named_parameters() if n.endswith("weight")]
    print("max|W| per layer:", [round(float(w.abs().max()), 3) for w in ws])
    print("smallest nonzero |W|:", min(float(w.abs()[w != 0].min()) for w in ws))
    x, y = d.test.tensors
    for max_value in (None, 4.0):
        res = {}
        for b in BITS:
            m = copy.deepcopy(model)
            fit_inq(m, d.train, TrainConfig(epochs=2, lr=3e-4, batch_size=64), bits=b, max_value=max_value)
            m.eval()
            with torch.no_grad():
                out = m(x)
            w = torch.cat([p.detach().flatten() for n, p in m.named_parameters() if n.endswith("weight")])
            res[b] = (w, out)
            acc = (out.argmax(1) == y).float().mean().item() * 100
            print(
                f"max_value={max_value}: bits {b}: test accuracy {acc:.2f} %, "
                f"zero weights {(w == 0).float().mean() * 100:.1f} %"
            )
        for b in BITS[:-1]:
            (w0, o0), (w1, o1) = res[b], res[b + 1]
            print(
                f"max_value={max_value}: {b} vs {b + 1} bits: "
                f"{(w0 != w1).sum().item()} of {w0.numel()} weights differ, "
                f"max |logit difference| {(o0 - o1).abs().max().item():.2e}, "
                f"{(o0.argmax(1) != o1.argmax(1)).sum().item()} of {len(y)} predictions differ"
            )


if __name__ == "__main__":
    main()
