"""How close the allocation's pick comes to the exhaustive best after retraining (issue 26, item 2's experiment).

A 6-layer FCDNN (2 -> 32 x 5 -> 2, ``fcdnn`` width 32 depth 6) is trained in float on the spirals, then every
assignment of {2, 4, 8} weight bits to its 6 layers (3^6 = 729) that fits the budget (the bytes of uniform 4-bit
weights, counted as ``lowbit.summary`` counts them) is quantized, calibrated and retrained briefly (the same seed,
batches and steps for all), and scored on the correct-answer test set. Printed: the number of feasible assignments,
the exhaustive best, where each criterion's exact pick (``lowbit.mixed.allocation``: first order, Hutchinson,
random) ranks among them after retraining, the rank correlation between each objective and the retrained accuracy,
and, as the noise scale, the spread of one assignment retrained with 3 seeds (the best of ~300 noisy scores is
biased upwards by about that much).

    python benchmarks/mixed_exhaustive.py [--quick]     (--quick: budget W2.5-ish subset of 60 assignments)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
import warnings

import torch

import lowbit as lb
from lowbit.data.sets import load_data
from lowbit.mixed import allocation, config_for, layer_costs, sensitivity
from lowbit.models import create_model
from lowbit.tasks import get_task

HP = {"width": 32, "depth": 6, "float_epochs": 60, "retrain_epochs": 2, "lr": 1e-3, "batch": 128, "subset": 3000}
BITS = (2, 4, 8)


def train(model, data, epochs, lr, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr)
    x, y = data.tensors
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), HP["batch"]):
            idx = perm[i : i + HP["batch"]]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def score(task, data, model) -> float:
    return task.metrics(task.predict(model, data.test), data.test)["accuracy"]


def retrained(model, cfg, data, task, seed=0) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = lb.quantize_(copy.deepcopy(model), cfg)
        lb.calibrate(q, [data.train.tensors[0][:1024]])
    torch.manual_seed(seed)
    return score(task, data, train(q, data.train, HP["retrain_epochs"], HP["lr"], seed))


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    for pos, i in enumerate(order):
        r[i] = pos
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = load_data({"name": "spirals", "subset": HP["subset"], "test_resolution": 61, "seed": 0})
    task = get_task("classification")
    torch.manual_seed(0)
    model = create_model("fcdnn", width=HP["width"], depth=HP["depth"])
    train(model, data.train, HP["float_epochs"], 3e-3, 0)
    print(f"float accuracy {score(task, data, model):.2f} %  ({time.perf_counter() - t0:.0f} s)")
    probe = torch.utils.data.Subset(data.train, range(1024))
    sens = sensitivity(model, probe, BITS, acts=False, samples=32, seed=0)
    base = lb.QuantConfig(weight={"name": "uniform", "bits": 2})
    costs = layer_costs(model, base, BITS)
    layers = costs.layers
    budget = costs.uniform_bytes(4) if not args.quick else (costs.uniform_bytes(2) + costs.uniform_bytes(4)) // 2
    feasible = [
        c for c in itertools.product(BITS, repeat=len(layers)) if costs.total_bytes(dict(zip(layers, c))) <= budget
    ]
    print(f"{len(layers)} layers, {3 ** len(layers)} assignments, {len(feasible)} within {budget} bytes")
    acc = {}
    for i, c in enumerate(feasible):
        acc[c] = retrained(model, config_for(model, base, dict(zip(layers, c))), data, task)
        if i % 50 == 0:
            print(f"  {i}/{len(feasible)} retrained ({time.perf_counter() - t0:.0f} s)", flush=True)
    best = max(acc, key=acc.get)
    ordered = sorted(acc.values(), reverse=True)
    med = statistics.median(ordered)
    print(f"exhaustive best {acc[best]:.2f} % at {best}; median {med:.2f} %; worst {ordered[-1]:.2f} %")
    uni = tuple([4] * len(layers)) if not args.quick else tuple([2] * len(layers))
    noise = [retrained(model, config_for(model, base, dict(zip(layers, uni))), data, task, seed=s) for s in (0, 1, 2)]
    seeds = ", ".join(f"{v:.2f}" for v in noise)
    print(f"noise: uniform {uni} retrained with seeds 0,1,2: {seeds} (sd {statistics.stdev(noise):.2f})")
    print("criterion    pick                 objective rank  retrained acc  rank among feasible  gap to best", end="")
    print("  Spearman(-objective, acc)")
    for crit in ("first_order", "hutchinson", "random"):
        a = allocation(model, budget, sens, criterion=crit, config=base, costs=costs)
        pick = tuple(a.bits[n] for n in layers)
        s = sens.score(crit)
        obj = [sum(s[n][b] for n, b in zip(layers, c)) for c in feasible]
        rho = spearman([-o for o in obj], [acc[c] for c in feasible])
        rank = 1 + sum(v > acc[pick] for v in acc.values())
        print(
            f"{crit:<12} {str(pick):<20} {'1 (exact)':<14} {acc[pick]:>12.2f}  {rank:>6} / {len(acc):<12} "
            f"{acc[best] - acc[pick]:>+9.2f}  {rho:+.2f}"
        )
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
