"""The spirals data set (spec §8)."""

import math

import torch

from lowbit.data import spirals
from lowbit.models import create_model


def test_counts_and_balance():
    x, y = spirals.core_samples()
    assert x.shape == (2000, 2) and int((y == 0).sum()) == 1000
    tr = spirals.train_set()
    assert len(tr) == 20000 and int((tr.tensors[1] == 1).sum()) == 10000


def test_core_samples_lie_on_their_circles():
    x, y = spirals.core_samples()
    r = spirals.R
    # first half circle of label 0: upper, centre (0,0), radius r; the next: lower, centre (r,0), radius 2r
    assert torch.allclose(x[:100].norm(dim=1), torch.full((100,), r))
    assert torch.allclose((x[100:200] - torch.tensor([r, 0.0])).norm(dim=1), torch.full((100,), 2 * r))
    assert (x[:100, 1] >= -1e-6).all() and (x[100:200, 1] <= 1e-6).all()


def test_each_label_is_one_continuous_spiral():
    x, y = spirals.core_samples()
    for label in (0, 1):
        pts = x[y == label]
        steps = (pts[1:] - pts[:-1]).norm(dim=1)
        # consecutive points are close (half circles join end to end): no jump larger than one arc step
        assert float(steps.max()) < math.pi * 1.0 / 99 + 1e-4  # the outermost arc step (radius 1.0)
        radius = (pts - torch.tensor([spirals.R / 2, 0.0])).norm(dim=1)
        assert float(radius[-1]) > float(radius[0])  # it spirals outwards


def test_the_two_spirals_interleave():
    # along the positive x axis the labels alternate band by band: 0, 1, 0, 1, ...
    xs = torch.tensor([[k * spirals.R, 1e-4] for k in range(1, 11)])
    assert spirals.band_label(xs).tolist() == [0, 1] * 5
    xs = torch.tensor([[-k * spirals.R, 1e-4] for k in range(1, 11)])
    assert spirals.band_label(xs).tolist() == [0, 1] * 5


def test_band_rule_agrees_with_core_samples_and_noise_reading():
    x, y = spirals.core_samples()
    b = spirals.band_label(x)
    ok = b >= 0
    assert bool((b[ok] == y[ok]).all()) and int((~ok).sum()) <= 2  # the centre point is undefined
    assert spirals.band_label(torch.tensor([[0.0, 1.2]])).tolist() == [-1]  # outside rho > 10.5 r
    assert spirals.noise_sigma("std") == spirals.R / 3
    assert abs(spirals.noise_sigma("literal") - math.sqrt(spirals.R / 3)) < 1e-12


def test_test_set_and_grid():
    te = spirals.test_set(101)
    assert te.tensors[1].min() >= 0 and 0.4 < float(te.tensors[1].float().mean()) < 0.6
    pts, side = spirals.quarter_grid(50)
    assert pts.shape == (2500, 2) and side == 50 and float(pts.min()) > 0 and float(pts.max()) < 1


def test_fcdnn_shapes_params_and_residual():
    m = create_model("fcdnn", width=200, depth=4)
    assert sum(p.numel() for p in m.parameters()) == 81402  # "81K" in the paper's appendix
    assert sum(p.numel() for p in create_model("fcdnn", width=128, depth=6).parameters()) == 66690  # "66K"
    r = create_model("fcdnn", width=8, depth=3, residual=True)
    x = torch.randn(5, 2)
    h1 = torch.relu(r.hidden[0](x))
    h2 = 0.5 * (torch.relu(r.hidden[1](h1)) + h1)
    assert torch.allclose(r(x), r.out(h2))
