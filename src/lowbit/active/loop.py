"""The suggestive-annotation loop of spec §6 with quantization (seed §3.1, Table 1): SA / QSA, then NT / QNT.

Over a pool of unannotated training tiles (the annotation unit here; the seed annotates whole images):

    S_a ← ``initial`` tiles drawn at random (seeded); S_u ← the rest
    while |S_a| < budget:
        M members, each trained from scratch on a bootstrap sample of S_a (§6.1):
            SA: float FCNs;  QSA: each float member then INQ-quantized to ``bits`` (spec §1.3)
        U and the encoder descriptors of every tile of S_u (§6.2); S_c = the K most uncertain;
        k = min(pick, budget − |S_a|) of S_c by greedy max-cover of S_u (§6.3);  S_a ← S_a ∪ picked
    (``random``: the k tiles are drawn at random from S_u instead; no members)

then the segmentation network is trained on S_a from scratch in float (NT) and INQ-quantized from it (QNT), and
both are scored on the held-out test images. ``diversity`` is the mean over member pairs of the share of test
pixels whose masks (p > 0.5) differ, for the last round's members: the mechanism the seed credits for QSA (quantized
members disagree more, so their variance points at more informative tiles).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..train import TrainConfig, fit, fit_inq
from .suggest import bootstrap_indices, score_images, suggest, top_k_uncertain

SELECTORS = ("sa", "qsa", "random")


@dataclass
class AnnotationPlan:
    selector: str = "sa"
    initial: int = 8  # tiles annotated before the first round (random)
    budget: int = 24  # tiles annotated at the end
    candidates: int = 16  # K: the most uncertain tiles considered per round
    pick: int = 8  # k: tiles annotated per round
    members: int = 4  # M bootstrapped FCNs per round
    bits: int = 5  # INQ bits of the QSA members
    portions: tuple[float, ...] = (0.5, 0.75, 0.875, 1.0)
    member_train: TrainConfig = field(default_factory=TrainConfig)
    inq_train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.selector not in SELECTORS:
            raise ValueError(f"selector={self.selector!r} is not accepted; expected one of {', '.join(SELECTORS)}")
        for name in ("initial", "budget", "candidates", "pick", "members"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not accepted; expected a whole number >= 1")
        if self.initial > self.budget:
            raise ValueError(f"initial={self.initial} is not accepted; expected <= budget ({self.budget})")
        if self.pick > self.candidates:
            raise ValueError(f"pick={self.pick} is not accepted; expected <= candidates ({self.candidates})")


def _subset(data: TensorDataset, idx: list[int] | torch.Tensor) -> TensorDataset:
    idx = torch.as_tensor(idx, dtype=torch.long)
    return TensorDataset(*(t[idx] for t in data.tensors))


def train_members(
    build: Callable[[], nn.Module], annotated: TensorDataset, plan: AnnotationPlan, seed: int, fit_kwargs: dict
) -> list[nn.Module]:
    """M members on bootstrap samples of the annotated tiles; QSA members are INQ-quantized after float training."""
    out = []
    for m, boot in enumerate(bootstrap_indices(len(annotated), plan.members, seed)):
        torch.manual_seed(seed * 1000 + m)
        model = build()
        cfg = TrainConfig.from_dict({**plan.member_train.to_dict(), "seed": seed * 1000 + m})
        fit(model, _subset(annotated, boot), cfg, desc=f"member {m}", **fit_kwargs)
        if plan.selector == "qsa":
            icfg = TrainConfig.from_dict({**plan.inq_train.to_dict(), "seed": seed * 1000 + m})
            fit_inq(model, _subset(annotated, boot), icfg, bits=plan.bits, portions=plan.portions, **fit_kwargs)
        out.append(model.eval())
    return out


def select(
    pool: TensorDataset, build: Callable[[], nn.Module], plan: AnnotationPlan, seed: int, fit_kwargs: dict | None = None
) -> tuple[list[int], list[dict], list[nn.Module]]:
    """Run the rounds: (annotated pool indices in annotation order, one record per round, last round's members)."""
    fit_kwargs = {"progress": False, **(fit_kwargs or {})}
    n = len(pool)
    if plan.budget > n:
        raise ValueError(f"budget={plan.budget} is not accepted; the pool holds {n} tiles")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g).tolist()
    annotated, rounds, members = order[: plan.initial], [], []
    r = 0
    while len(annotated) < plan.budget:
        unannotated = [i for i in range(n) if i not in set(annotated)]
        k = min(plan.pick, plan.budget - len(annotated))
        if plan.selector == "random":
            picks = torch.randperm(len(unannotated), generator=g)[:k].tolist()
            record: dict = {}
        else:
            members = train_members(build, _subset(pool, annotated), plan, seed * 100 + r, fit_kwargs)
            u, desc = score_images(members, [pool.tensors[0][i] for i in unannotated])
            n_cand = min(plan.candidates, len(unannotated))
            picks = suggest(u, desc, n_candidates=n_cand, n_pick=k)
            record = {
                "candidates": [unannotated[i] for i in top_k_uncertain(u, n_cand)],
                "mean_uncertainty": sum(u) / len(u),
                "picked_uncertainty": sum(u[i] for i in picks) / k,
            }
        new = [unannotated[i] for i in picks]
        annotated += new
        rounds.append({"round": r, "picked": new, "annotated": len(annotated), **record})
        r += 1
    return annotated, rounds, members


@torch.no_grad()
def diversity(members: list[nn.Module], images: torch.Tensor, batch: int = 2) -> float:
    """Mean over member pairs of the share of pixels whose foreground masks (p > 0.5) differ."""
    if len(members) < 2:
        raise ValueError(f"diversity: {len(members)} member(s); expected at least 2")
    masks = []
    for m in members:
        m.eval()
        masks.append(torch.cat([m(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)]).bool())
    pairs = list(itertools.combinations(range(len(masks)), 2))
    return sum(float((masks[a] ^ masks[b]).float().mean()) for a, b in pairs) / len(pairs)


def train_nt_qnt(
    build: Callable[[], nn.Module],
    annotated: Dataset,
    train: TrainConfig,
    inq_train: TrainConfig,
    bits: int,
    portions: tuple[float, ...],
    seed: int,
    fit_kwargs: dict | None = None,
) -> tuple[nn.Module, nn.Module]:
    """NT: the network trained from scratch on the annotated tiles (float); QNT: INQ to ``bits`` from NT."""
    fit_kwargs = {"progress": False, **(fit_kwargs or {})}
    torch.manual_seed(seed)
    nt = build()
    fit(nt, annotated, TrainConfig.from_dict({**train.to_dict(), "seed": seed}), desc="NT", **fit_kwargs)
    qnt = copy.deepcopy(nt)
    icfg = TrainConfig.from_dict({**inq_train.to_dict(), "seed": seed})
    fit_inq(qnt, annotated, icfg, bits=bits, portions=portions, **fit_kwargs)
    return nt.eval(), qnt.eval()
