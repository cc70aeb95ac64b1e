"""Suggestive annotation (spec §6.1-6.3) against hand-computed cases, slow references and the edge cases."""

import itertools
import math

import pytest
import torch

from lowbit.active import (
    bootstrap_indices,
    ensemble_similarity,
    image_uncertainty,
    max_cover_greedy,
    score_images,
    suggest,
    top_k_uncertain,
)
from lowbit.models import create_model


def test_bootstrap_samples_with_replacement():
    a = bootstrap_indices(10, 4, seed=3)
    assert len(a) == 4 and all(t.shape == (10,) and t.min() >= 0 and t.max() < 10 for t in a)
    assert any(len(set(t.tolist())) < 10 for t in a)  # with replacement: repeats (P(no repeat) = 10!/10^10 per draw)
    assert all(torch.equal(x, y) for x, y in zip(a, bootstrap_indices(10, 4, seed=3)))
    with pytest.raises(ValueError):
        bootstrap_indices(0, 4)


def test_uncertainty_is_pixel_mean_of_population_variance():
    # 2 models, 1x2 image: pixel 0 p = (0, 1) -> var 0.25; pixel 1 p = (0.5, 0.5) -> var 0
    p = torch.tensor([[[0.0, 0.5]], [[1.0, 0.5]]])
    assert image_uncertainty(p) == pytest.approx(0.125)  # mean, not the sum (0.25)
    # 3 models, one pixel: values 0.2, 0.4, 0.9 -> mean 0.5, var = (0.09 + 0.01 + 0.16)/3 (ddof = 0)
    assert image_uncertainty(torch.tensor([[[0.2]], [[0.4]], [[0.9]]])) == pytest.approx(0.26 / 3)
    # multi-class (M, C, H, W): mean over classes of the per-class variance
    q = torch.tensor([[[[0.0]], [[1.0]]], [[[1.0]], [[0.0]]]])  # 2 models, 2 classes, 1 pixel
    assert image_uncertainty(q) == pytest.approx(0.25)
    assert image_uncertainty(torch.full((1, 4, 4), 0.3)) == 0.0  # one model: no variance
    with pytest.raises(ValueError, match="shape"):
        image_uncertainty(torch.zeros(4))


def test_top_k_ties_lower_index_and_short_lists():
    assert top_k_uncertain([0.1, 0.5, 0.5, 0.9, 0.2], 3) == [3, 1, 2]
    assert top_k_uncertain([0.3, 0.1], 16) == [0, 1]  # |S_u| < K: all of them
    with pytest.raises(ValueError):
        top_k_uncertain([0.1], 0)


def test_similarity_is_mean_of_per_model_cosines_and_zero_norm_is_zero():
    d1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # model 1: images 0 ⟂ 1, image 2 all-zero
    d2 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 0.0]])  # model 2: cos(0,1) = 1/√2
    s = ensemble_similarity(torch.stack([d1, d2]))
    assert s[0, 1] == pytest.approx((0 + 1 / math.sqrt(2)) / 2)
    assert s[0, 2] == pytest.approx((0 + 1) / 2)  # zero norm in model 1 -> cos 0 there
    assert s[2, 2] == pytest.approx(0.5)
    assert torch.allclose(s, s.T)


def _slow_greedy(sim, cand, k, u):
    """Reference: F evaluated literally for every candidate set, then the stated tie rules."""
    picked = []
    for _ in range(min(k, len(cand))):
        best = None
        for i in cand:
            if i in picked:
                continue
            sa = picked + [i]
            f = sum(max(float(sim[s, x]) for s in sa) for x in range(sim.shape[0]))
            key = (round(f, 9), u[i], -i)  # F equal up to rounding -> the tie rules decide
            if best is None or key > best[0]:
                best = (key, i)
        picked.append(best[1])
    return picked


def test_greedy_hand_computed_cover():
    # 4 unannotated images. Image 0 is like 1, image 2 like 3; candidates 0, 1, 2.
    sim = torch.tensor(
        [
            [1.0, 0.9, 0.0, 0.1],
            [0.9, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.8],
            [0.1, 0.0, 0.8, 1.0],
        ]
    )
    u = [0.3, 0.2, 0.1, 0.5]
    # F({0}) = 2.0, F({1}) = 1.9, F({2}) = 1.8 -> 0 first; then F({0,1}) = 2.1, F({0,2}) = 1+.9+1+.8 = 3.7 -> 2
    assert max_cover_greedy(sim, [0, 1, 2], 2, u) == [0, 2]
    assert _slow_greedy(sim, [0, 1, 2], 2, u) == [0, 2]


def test_greedy_ties_higher_uncertainty_then_lower_index():
    sim = torch.eye(3)  # every single pick covers exactly 1
    assert max_cover_greedy(sim, [0, 1, 2], 1, [0.1, 0.4, 0.2]) == [1]  # tie in F -> higher U
    assert max_cover_greedy(sim, [2, 0, 1], 1, [0.3, 0.3, 0.3]) == [0]  # tie in F and U -> lower index
    assert max_cover_greedy(sim, [2, 1], 5, [0.3, 0.3, 0.3]) == [1, 2]  # |S_c| < k: all of S_c


@pytest.mark.parametrize("seed", range(6))
def test_greedy_matches_slow_reference(seed):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(3, 9, 5, generator=g)
    sim = ensemble_similarity(d)
    u = torch.rand(9, generator=g).tolist()
    cand = top_k_uncertain(u, 6)
    assert max_cover_greedy(sim, cand, 3, u) == _slow_greedy(sim, cand, 3, u)


def test_greedy_first_pick_is_best_single_set():
    g = torch.Generator().manual_seed(7)
    sim = ensemble_similarity(torch.randn(2, 6, 4, generator=g))
    u = [0.5] * 6
    first = max_cover_greedy(sim, list(range(6)), 1, u)[0]
    totals = [float(sim[i].sum()) for i in range(6)]
    assert totals[first] == max(totals)  # F({I}) = Σ_x sim(I, x): negative similarities count too


def test_greedy_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        max_cover_greedy(torch.zeros(2, 3), [0], 1, [0, 0])
    with pytest.raises(ValueError, match="distinct"):
        max_cover_greedy(torch.eye(2), [0, 0], 1, [0, 0])
    with pytest.raises(ValueError, match="distinct"):
        max_cover_greedy(torch.eye(2), [5], 1, [0, 0])


def test_suggest_chains_uncertainty_and_cover():
    # 5 images, K = 3 most uncertain are 4, 0, 2; descriptors from 2 models
    u = [0.4, 0.1, 0.3, 0.0, 0.9]
    d = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.05]])
    desc = torch.stack([d, d])
    picked = suggest(u, desc, n_candidates=3, n_pick=2)
    assert set(picked) <= {4, 0, 2} and len(picked) == 2
    sim = ensemble_similarity(desc)
    assert picked == _slow_greedy(sim, [4, 0, 2], 2, u)
    assert 2 in picked  # the only candidate that covers the second cluster
    assert suggest([], torch.zeros(2, 0, 3)) == []
    with pytest.raises(ValueError, match="descriptors"):
        suggest(u, torch.zeros(2, 4, 2))


def test_score_images_with_fcns():
    models = [create_model("fcn_sa", width=1 / 32, depth=2) for _ in range(3)]
    imgs = [torch.rand(1, 8, 8), torch.rand(1, 12, 16)]  # different sizes
    u, desc = score_images(models, imgs)
    assert len(u) == 2 and all(v >= 0 for v in u)
    assert desc.shape == (3, 2, models[0].channels[-1])
    # one model repeated -> zero variance
    u1, _ = score_images([models[0]] * 2, imgs)
    assert u1 == [0.0, 0.0]
    assert list(itertools.chain(suggest(u, desc, 2, 1))) in ([0], [1])
