"""Method kind ``annotate``: one job runs the suggestive-annotation loop (``lowbit.active.loop``) up to its budget
and then trains the segmentation network on what it selected, in float (NT) and with INQ (QNT) (spec §6; seed
§3.1, Table 1). Its own file so that steps.py stays the engine's generic kinds.

    [methods.SA]
    kind = "annotate"
    selector = "sa"              # "sa" (float members), "qsa" (INQ members), "random" (no members)
    budget = "${budget}"         # tiles annotated at the end
    initial = 8                  # random tiles before the first round
    candidates = 16              # K
    pick = 8                     # k per round
    members = 4                  # M bootstrapped FCNs per round
    bits = 5                     # INQ bits of the QSA members and of QNT
    train = { epochs = 20 }      # NT (and, unless member_train says otherwise, each member)
    member_train = { epochs = 10 }
    inq_train = { epochs = 2 }   # per INQ portion stage (QSA members, QNT)

Records: the task's metrics of NT (``dice``, ``f1``, ``score``, ...) and of QNT (``<metric>_qnt``), ``diversity``
(the last round's members, on the test images; absent for ``random``), ``annotated`` and the memory columns of
NT and QNT (``weight_kib_qnt``, ``memory_reduction_qnt``). ``selection.json`` in the job folder lists the tiles
picked per round. The job does not resume mid-loop: a killed job starts its loop again (same seed, same picks).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..active.loop import AnnotationPlan, _subset, diversity, select, train_nt_qnt
from ..deploy.summary import memory_metrics
from ..fileio import atomic_write_text
from ..train import TrainConfig
from .models import build_model

KEYS = (
    "kind",
    "task",
    "selector",
    "budget",
    "initial",
    "candidates",
    "pick",
    "members",
    "bits",
    "portions",
    "train",
    "member_train",
    "inq_train",
)
PORTIONS = (0.5, 0.75, 0.875, 1.0)


def metric_names(task_metrics: tuple[str, ...]) -> list[str]:
    """What an annotate job records beyond the task's metrics and memory columns (speccheck lists them)."""
    return [f"{m}_qnt" for m in task_metrics] + ["diversity", "annotated", "weight_kib_qnt", "memory_reduction_qnt"]


def _train(recipe: dict, key: str) -> TrainConfig:
    """``train`` (planned: [train] + the method's, with the job's seed) overridden by the recipe's ``key`` table."""
    return TrainConfig.from_dict({**recipe["train"], **recipe.get(key, {})})


def plan_of(recipe: dict) -> AnnotationPlan:
    return AnnotationPlan(
        selector=recipe.get("selector", "sa"),
        initial=int(recipe.get("initial", 8)),
        budget=int(recipe["budget"]),
        candidates=int(recipe.get("candidates", 16)),
        pick=int(recipe.get("pick", 8)),
        members=int(recipe.get("members", 4)),
        bits=int(recipe.get("bits", 5)),
        portions=tuple(recipe.get("portions", PORTIONS)),
        member_train=_train(recipe, "member_train"),
        inq_train=_train(recipe, "inq_train"),
    )


def annotate(c) -> tuple[dict, str | None]:
    """The step (``c``: steps._Ctx)."""
    r, seed = c.recipe, int(c.config["seed"])
    plan = plan_of(r)
    pool, test = c.data.train, c.data.test

    def build():
        return build_model(c.config["model"], c.data.info)[0]

    kw = {"loss_fn": c.task.loss, "collate": c.task.collate, "progress": False}
    annotated, rounds, members = select(pool, build, plan, seed, kw)
    atomic_write_text(
        Path(c.job_dir) / "selection.json", json.dumps({"annotated": annotated, "rounds": rounds}, indent=1)
    )
    nt, qnt = train_nt_qnt(
        build, _subset(pool, annotated), _train(r, "train"), plan.inq_train, plan.bits, plan.portions, seed, kw
    )
    out = c.finish(nt)
    q = c.task.metrics(c.task.predict(qnt, test), test)
    out |= {f"{k}_qnt": v for k, v in q.items()}
    mq = memory_metrics(qnt)
    out |= {"weight_kib_qnt": mq["weight_kib"], "memory_reduction_qnt": mq["memory_reduction"]}
    out["annotated"] = float(len(annotated))
    if len(members) >= 2:
        out["diversity"] = diversity(members, test.tensors[0])
    return out, c.save(nt, build_model(c.config["model"], c.data.info)[1])
