"""The sweep engine: spec -> checked plan -> jobs on a backend -> rows in the store -> report (docs/architecture.md).

``sweep(spec, out)`` is what ``lowbit sweep``, ``lowbit run`` and ``lowbit reproduce`` call. Before anything
is written, the whole spec is checked against its data: every model is built with the data's sizes and runs
two samples, every QuantConfig is planned on its model. Then, holding ``RunLock(out)`` for the whole run:

- a fresh run refuses a folder whose store already holds results (a folder with only a ``spec.toml`` is
  fine: a run that never produced a result does not hold the folder hostage);
- ``resume`` removes stale temporary files and refuses a folder with results whose ``spec.toml`` differs
  from this resolved spec, naming the first differing key;
- ``spec.toml`` is written (the resolved spec: the config that ran is the config that was read);
- with ``--reuse DIR``, jobs finished in DIR under the same id (same config) are copied in (``reuse.py``);
- every job not in the store runs when its parents are finished; the job with the longest chain of work
  behind it goes first (work = measured seconds of one training step x epochs); each finished job is one store
  transaction;
- a job that fails (raises, or its worker process dies) is a row of the store's ``failures`` table with its
  error, and so are the jobs that need it ("not run"); every other job still runs. ``--resume`` runs them
  again (they are not finished). A full disk or Ctrl-C stops the sweep instead (every later job would hit it);
- the report is rebuilt from ``spec.toml`` and the store, failed jobs listed; when jobs failed, ``sweep`` then
  raises ``JobsFailed`` (the CLI: a one-line summary and exit status 1).
"""

from __future__ import annotations

import copy
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import torch

from ..api import plan as quant_plan
from ..config import QuantConfig
from ..fileio import atomic_write_text, clean_stale_temps
from ..progress import progress_bar
from ..runlock import RunLock
from . import fused
from .backends import JobFailed, check_backend, make_backend
from .backends.local import refuse_in_spawned_import
from .bounds import check_model_fits
from .entries import entry_label
from .models import check_fit, model_data
from .plan import Job, axes_label, plan
from .resources import job_resources, without_resources
from .reuse import check_sources, reuse_finished
from .rows import FAILED, NOT_RUN, FailedJob
from .safepath import check_run_folder
from .spec import Spec, first_difference
from .steps import run_job
from .store import Store
from .store_files import STORE_NAME, blank_store
from .tracking import Tracker

SPEC_NAME = "spec.toml"
REPORT_ONLY_KEYS = ("report", "description")  # may change between a run and its --resume
RUN_TRACES = ("jobs", "report.md", "report.html", "figures")  # what only a run that stored results writes


class JobsFailed(RuntimeError):
    """A sweep ended with jobs that failed (or were not run because a job they need failed). Every other job
    finished and the report, which lists them, is written: ``report`` is its path, ``failures`` the store's
    failure rows, ``total`` the number of jobs. ``str()`` is the one-line summary."""

    def __init__(self, report: Path, failures: list[FailedJob], total: int):
        self.report, self.failures, self.total = report, failures, total
        failed = [f for f in failures if f.status == FAILED]
        shown = "; ".join(f"{f.job_id} ({axes_label(f.axes)}): {f.error}" for f in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        blocked = len(failures) - len(failed)
        not_run = f", {blocked} more not run because a job they need failed" if blocked else ""
        super().__init__(
            f"{len(failed)} of {total} jobs failed{not_run}: {shown}{more}; see {report} "
            "(fix the cause, then --resume runs them again)"
        )


def preflight(spec: Spec, jobs: list[Job], timing: bool = True) -> dict[str, float]:
    """Load the data, build every model on it and plan every QuantConfig; return {model label: cost of a step}.

    Every check that needs the data or a built model runs here, before anything trains (and in ``--dry-run``,
    with ``timing=False``): the model fits its data (``check_fit``, on the data as the job sees it: flattened
    for a model that takes vectors), ``keep_float`` / ``rules`` match layers, an INQ method has layers to quantize.

    The cost orders the jobs only (results never depend on it): the measured time of a forward + backward pass
    on two training samples (``step_seconds``). Parameter counts and multiply-accumulates both rank a depthwise
    net far too cheap on a CPU: dw-74 has the weights and 1.1x the MACs of basic-20 of Table 5, but a step takes
    3-4x as long (its expanded activations). Inputs that are not one tensor fall back to the parameter count.
    """
    costs, built = {}, {}
    for label, cfg in spec.models.items():
        if label in spec.grid["model"]:
            data = model_data(spec.data, cfg)
            flat = spec.data.get("flatten") is True
            check_model_fits(label, cfg, data.info)  # its size on the meta device, within the limits (bounds.py)
            model = built[label] = check_fit(label, cfg, data, entry_label(spec.data), flat)  # built once, used below
            x = data.train[0][0]
            costs[label] = (
                step_seconds(model, torch.stack([x, x]))
                if timing and isinstance(x, torch.Tensor)
                else sum(p.numel() for p in model.parameters())
            )
    seen = set()
    for j in jobs:
        quant = j.config["recipe"].get("quant")
        key = (j.axes["model"], repr(quant), j.kind)
        if quant is None or key in seen:
            continue
        seen.add(key)
        where = f"methods.{j.axes['method']}.quant on model {j.axes['model']!r}"
        try:  # plan() only reads the model: the one built above serves every method
            layers = quant_plan(built[j.axes["model"]], QuantConfig.from_dict(copy.deepcopy(quant)))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: {e}") from None
        if j.kind == "inq" and not any(r is not None and r.weight is not None for r in layers.values()):
            raise ValueError(
                f"{where}: gives no layer a weight quantizer, so INQ (which replaces them) has none to run on"
            )
    return costs


def start_run(out: Path, spec: Spec, resume: bool) -> None:
    """The run-folder rules above (call while holding the lock)."""
    spec_path = out / SPEC_NAME
    _blank_store(out)
    has_results = False
    if (out / STORE_NAME).is_file():
        with Store(out) as store:
            has_results = bool(store.done())
    clean_stale_temps(out)  # what a killed run left (a fresh start may follow a run killed before any result)
    if resume:
        if spec_path.is_file():
            old = without_resources(tomllib.loads(spec_path.read_text()))  # where jobs run may change
            new = without_resources(tomllib.loads(spec.to_toml()))
            for k in REPORT_ONLY_KEYS:  # what the report shows does not change what was trained
                old.pop(k, None)
                new.pop(k, None)
            diff = first_difference(old, new)
            if diff is not None and has_results:
                raise ValueError(
                    f"{spec_path} was written by a different spec (first difference: {diff}); resume with the same "
                    "spec and --scale, or choose another --out"
                )
    elif has_results:
        raise ValueError(
            f"run folder {str(out)!r} already holds a run with results; pass --resume to continue it or choose "
            "another --out"
        )
    atomic_write_text(spec_path, spec.to_toml())


def _blank_store(out: Path) -> None:
    """A ``results.sqlite`` with no lowbit tables (0 bytes, or SQLite with no tables) is what a sweep killed while
    creating its store leaves, before any job started; the store comes before anything under ``jobs/``, and the
    report after it. So with no job folder and no report beside it, nothing was stored: it is removed and the run
    starts afresh. With them, the results it held were lost (truncated or replaced after the fact): refused, since
    starting over would hide that, and the file is the user's to restore."""
    what = blank_store(out)
    if what is None:
        return
    path = out / STORE_NAME
    traces = [n + "/" * (out / n).is_dir() for n in RUN_TRACES if (out / n).is_file() or any((out / n).glob("*"))]
    if traces:
        raise ValueError(
            f"{path} is {what}, but {out} holds {', '.join(traces)} of a run that stored results: they were lost. "
            "Restore the file from a backup, or delete it and run with --resume to record the jobs again (each "
            "continues from its checkpoints in jobs/)"
        )
    for p in (path, path.with_name(STORE_NAME + "-wal"), path.with_name(STORE_NAME + "-shm")):
        p.unlink(missing_ok=True)


def step_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int = 2) -> float:
    """Fastest of ``repeats`` timed forward + backward passes of ``x`` (after one untimed warm-up)."""
    model.train()
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = model(x)
        (out if isinstance(out, torch.Tensor) else out[0]).float().sum().backward()
        if i:
            times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return min(times)


def _priorities(jobs: list[Job], costs: dict[str, float]) -> dict[str, float]:
    """Longest chain of work from each job to the end of the plan (work = the model's step cost x epochs)."""
    children: dict[str, list[str]] = {j.id: [] for j in jobs}
    for j in jobs:
        for p in j.parents:
            children[p].append(j.id)
    level: dict[str, float] = {}
    for j in reversed(jobs):  # children come after parents in the plan
        r = j.config["recipe"]
        epochs = r.get("train", {}).get("epochs", 0) * (len(r.get("portions", [0, 1])) - 1 if j.kind == "inq" else 1)
        cost = costs.get(j.axes["model"], 1) * max(epochs, 0.1)
        level[j.id] = cost + max((level[c] for c in children[j.id]), default=0.0)
    return level


def run_jobs(
    jobs: list[Job],
    out: Path,
    store: Store,
    backend: str,
    workers: int,
    progress: bool,
    costs,
    options: dict | None = None,
    resources: dict[str, dict[str, float]] | None = None,
    on_done: Callable[[Job, dict], None] | None = None,
    fuse: bool = True,
) -> None:
    """Run every job not finished in ``store``, parents first; record each result or failure as it comes.

    ``options``: the backend's own (``--address`` ...); ``resources``: job id -> what it asks for (resources.py);
    ``on_done(job, result)``: called after each finished job is stored (``--tensorboard``: tracking.py);
    ``fuse``: jobs that differ only in seed run as one task, trained stacked (``fused.py``) — on the local backend
    only, whose workers share the run folder (a Ray task ships one job's folder and its parents')."""
    done = store.done()
    waiting = {j.id: j for j in jobs if j.id not in done}
    level = _priorities(jobs, costs)
    by_id = {j.id: j for j in jobs}
    children: dict[str, list[str]] = {j.id: [] for j in jobs}
    for j in jobs:
        for p in j.parents:
            children[p].append(j.id)
    bar = progress_bar(enabled=progress, total=len(jobs), initial=len(jobs) - len(waiting), desc="jobs", unit="job")
    n_failed = 0
    tasks: dict[str, list[Job]] = {}  # submitted task key -> its jobs
    fuse = fuse and backend == "local"
    with make_backend(backend, workers, options) as be:
        be.set_job_resources(resources or {})
        while waiting or be.pending:
            ready = sorted(
                (j for j in waiting.values() if all(p in done for p in j.parents)), key=lambda j: -level[j.id]
            )
            # jobs that differ only in seed go as one task, trained stacked (fused.py); one row per job still
            for key, fn, kwargs, members in fused.tasks(ready, out, progress and workers == 1, fuse, run_job)[
                : max(0, be.capacity - be.pending)
            ]:
                be.submit(key, fn, kwargs)
                tasks[key] = members
                for j in members:
                    del waiting[j.id]
            if not be.pending:  # every waiting job needs one that is neither finished nor waiting
                raise RuntimeError(f"internal error: jobs {sorted(waiting)} wait for jobs that will not run")
            try:
                key, res = be.next_result()
            except JobFailed as f:
                for job in tasks.pop(f.key):
                    blocked = [by_id[d] for d in _descendants(job.id, children) if d in waiting]
                    store.add_failures(
                        [FailedJob(job.id, FAILED, job.axes, job.config, f.error_type, f.message, f.wall_s, f.detail)]
                        + [
                            FailedJob(
                                d.id,
                                NOT_RUN,
                                d.axes,
                                d.config,
                                "NotRun",
                                f"needs job {job.id} ({job.label}), which failed",
                            )
                            for d in blocked
                        ]
                    )
                    for d in blocked:
                        del waiting[d.id]
                    n_failed += 1
                    bar.set_postfix_str(f"{n_failed} failed")
                    bar.update(1 + len(blocked))
                continue
            for job, r in fused.results_of(key, res, tasks.pop(key)):
                model = f"jobs/{job.id}/{r['model']}" if r["model"] else None
                store.add_job(job.id, r["metrics"], job.axes, job.config, r["wall_s"], model)
                done.add(job.id)
                if on_done is not None:
                    on_done(job, r)
                bar.set_postfix_str(job.label[:40] + (f"; {n_failed} failed" if n_failed else ""))
                bar.update(1)
    bar.close()


def _device(job: Job) -> str | None:
    return job.config["recipe"].get("train", {}).get("device")


def _descendants(key: str, children: dict[str, list[str]]) -> list[str]:
    """Every job that needs ``key``, directly or through others, each once, nearest first."""
    out: list[str] = []
    todo = list(children[key])
    while todo:
        c = todo.pop(0)
        if c not in out:
            out.append(c)
            todo += children[c]
    return out


def sweep(
    spec: Spec,
    out: str | Path,
    resume: bool = False,
    workers: int = 2,
    backend: str = "local",
    progress: bool = True,
    reuse: list[str | Path] = (),
    backend_options: dict | None = None,
    tensorboard: str | Path | None = None,
) -> Path:
    """Run every job of ``spec`` into ``out`` and build its report; return the path of report.md.

    ``reuse``: run folders whose finished jobs with the same id are copied instead of trained (``reuse.py``).
    ``backend_options``: the backend's own options (ray: address, storage, retries; backends/ray.py).
    ``tensorboard``: a folder for TensorBoard event files, one run per job (tracking.py).
    Raises ``JobsFailed`` (after writing the report) when jobs failed; every job that did not need them finished.
    With ``workers > 1`` the workers re-import the calling script: call ``sweep`` under
    ``if __name__ == "__main__":`` (a script without the guard gets ``WorkerStartFailed`` saying so)."""
    from .report import build_report

    refuse_in_spawned_import()  # in a worker re-importing an unguarded script: say so and exit, run nothing
    out = Path(out)
    jobs = plan(spec)
    check_backend(backend, workers, backend_options)  # before anything is written
    tracker = Tracker(tensorboard, out) if tensorboard is not None else None  # its extra is there, before any job
    check_sources(out, [Path(r) for r in reuse])
    costs = preflight(spec, jobs)
    check_run_folder(out)  # a folder to resume may come from elsewhere: no link in it may lead out of it
    with RunLock(out):
        start_run(out, spec, resume)
        with Store(out) as store:
            for src, n in reuse_finished(jobs, out, store, [Path(r) for r in reuse]).items():
                print(f"reused {n} finished job{'s' * (n != 1)} from {src}")
            store.forget_failures({j.id for j in jobs})  # of a spec no longer in this folder (it held no results)
            resources = {j.id: job_resources(spec.raw, j.axes["method"], _device(j)) for j in jobs}
            on_done = tracker.job_done if tracker is not None else None
            if tracker is not None:  # the jobs a resumed run (or --reuse) already holds
                tracker.catch_up(jobs, store.rows())
            run_jobs(jobs, out, store, backend, workers, progress, costs, backend_options, resources, on_done)
            failures = store.failures()
        report = build_report(out, trust_data=True)  # the data this sweep just trained on
        if failures:
            raise JobsFailed(report, failures, len(jobs))
        return report
