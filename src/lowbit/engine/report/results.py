"""The rows of a run as the report reads them: one ``JobResult`` per job, with labels and caption facts.

``RunResults(out)`` reads ``spec.toml`` and ``results.sqlite`` of a run folder and nothing else (figure extras may
also load the saved models the store points to). It imports none of the code the stored spec names (``plugins``,
``target`` entries) unless ``trust_code=True`` (``engine/usercode.py``): ``imported`` lists what it imported, and
``load_data`` / ``load_model`` / ``get_task`` / ``require_code`` raise ``UntrustedCode`` for what needs code it may
not import. Likewise ``load_data`` reads the files the stored spec's [data] names (``root``, ``archive``: outside
the run folder) only with ``trust_data=True`` (the sweep's own report; ``lowbit report --trust-data``), else it
raises ``UntrustedData``. ``unfinished`` holds the jobs of the plan with no result: ``failed`` and ``not run`` (a
job they need failed) from the store's failure rows, ``pending`` for the rest (a run that stopped, or is still
going), so tables can show their cells as missing rather than leave them out. ``select(where)`` filters jobs by axis
values; ``key_label`` names a pivot key the way tables and figures print it; ``caption_facts`` says what a figure is
made of (data set, models, methods, bits, seeds, number of runs), as docs/architecture.md asks of every figure.

Paths (``safepath.py``): a run folder holding a link that leads out of it is refused when it is read, and
``figure_path`` / ``job_dir`` / ``load_model`` give only paths inside it.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bounds import check_file_size
from ..entries import entry_label
from ..plan import plan
from ..safepath import check_run_folder, inside, plain
from ..spec import CORE_AXES, Spec, parse_spec
from ..store import STORE_NAME, Store
from ..usercode import UntrustedData, add_search_dirs, already_imported, named_code, require_trusted

PENDING = "pending"  # the status of a planned job with neither a result nor a failure row


@dataclass
class JobResult:
    id: str
    axes: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, float | None]
    model_path: str | None
    wall_s: float
    code_version: str


@dataclass
class Unfinished:
    """A planned job without a result: ``status`` is ``failed``, ``not run`` (a job it needs failed) or ``pending``."""

    id: str
    axes: dict[str, Any]
    config: dict[str, Any]
    status: str
    error: str = ""


def _bits(quant: dict | None, role: str) -> int:
    q = (quant or {}).get(role)
    if not isinstance(q, dict):  # set only by per-layer rules (e.g. PACT at the "*qa?" / "*qra" points)
        rules = [r.get(role) for r in (quant or {}).get("rules", {}).values() if isinstance(r, dict)]
        return min((r.get("bits", 32) for r in rules if isinstance(r, dict)), default=32)
    return q.get("bits", 32)


def bits_label(config: dict) -> str:
    """The precision of a job from its recipe: ``float``, ``W2``, ``A2``, ``W2A4``, ``W3 INQ``, ``ensemble``."""
    r = config["recipe"]
    w, a = _bits(r.get("quant"), "weight"), _bits(r.get("quant"), "act")
    if r["kind"] == "inq":
        return f"W{r['bits']} INQ" + (f" A{a}" if a != 32 else "")
    if r["kind"] == "qat":
        return (f"W{w}" if w != 32 else "") + (f"A{a}" if a != 32 else "") or "float"
    return "float" if r["kind"] == "finetune" else r["kind"]


def data_label(spec: Spec) -> str:
    args = ", ".join(f"{k}={v}" for k, v in spec.data.items() if k not in ("name", "target"))
    return entry_label(spec.data) + (f" ({args})" if args else "")


class RunResults:
    def __init__(self, out: str | Path, trust_code: bool = False, trust_data: bool = False):
        self.out = Path(out)
        self.trust_data = trust_data
        spec_path = self.out / "spec.toml"
        if not spec_path.is_file():
            raise FileNotFoundError(f"{str(self.out)!r} is not a run folder (no spec.toml in it)")
        check_run_folder(self.out)  # a folder from elsewhere: no link in it leads out of it (safepath.py)
        check_file_size(spec_path, "spec_bytes", "stored spec")  # parsed whole: within the local limit
        try:
            raw = tomllib.loads(spec_path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{spec_path}: not a readable spec ({e})") from None
        if isinstance(raw, dict) and trust_code:
            self.imported = [m for m in named_code(raw) if m not in sys.modules]  # what this import adds
            add_search_dirs([Path.cwd()])  # the user's modules where they run `lowbit report --trust-code`
        else:
            self.imported = []
        self.trusted = trust_code or (isinstance(raw, dict) and already_imported(raw))
        self._positions: dict[str, dict] = {}  # axis -> {value: position in the spec's list} (order())
        self.spec = parse_spec(raw, None, str(spec_path), code=trust_code)
        self.jobs: dict[str, JobResult] = {}
        if (self.out / STORE_NAME).is_file():
            with Store(self.out, create=False) as store:
                for r in store.rows():
                    j = self.jobs.setdefault(
                        r.job_id, JobResult(r.job_id, r.axes, r.config, {}, r.model_path, r.wall_s, r.code_version)
                    )
                    j.metrics[r.metric] = r.value
                failures = [f for f in store.failures() if f.job_id not in self.jobs]
        else:
            failures = []
        self.unfinished: dict[str, Unfinished] = {
            f.job_id: Unfinished(f.job_id, f.axes, f.config, f.status, f.error) for f in failures
        }
        try:
            planned = plan(self.spec)
        except ValueError:  # a spec that plans nothing has nothing pending either
            planned = []
        for j in planned:
            if j.id not in self.jobs and j.id not in self.unfinished:
                self.unfinished[j.id] = Unfinished(j.id, j.axes, j.config, PENDING)

    def require_code(self, what: str) -> None:
        """Raise ``UntrustedCode`` when ``what`` needs a module the spec names that this reader may not import."""
        require_trusted(self.spec.raw, self.trusted, what)

    def load_data(self):
        """The run's data set (``lowbit.data.sets.load_data``), for extras that evaluate models; a user's
        ``target`` data set is built only when the run's code may be imported."""
        from ...data.sets import load_data, named_files

        if "target" in self.spec.data:
            self.require_code(f"the data set {self.spec.data['target']!r}")
        if not self.trust_data and (files := named_files(self.spec.data)):
            # a run folder is data: the files its stored spec names outside it are read only when allowed
            names = ", ".join(files)
            raise UntrustedData(f"the data set reads files the stored spec names outside the run folder ({names})")
        return load_data(self.spec.data)

    def get_task(self):
        """The spec's task (a plugin's task only when the run's code may be imported)."""
        from ...tasks import TASKS

        if self.spec.task not in TASKS:
            self.require_code(f"the task {self.spec.task!r}")
        return TASKS.get(self.spec.task)

    def load_model(self, job: JobResult):
        """A job's saved model (``serialize.load_model``); a user's model (a ``target``, or a name a plugin
        registers) is rebuilt only when the run's code may be imported."""
        from ...models import MODELS
        from ...serialize import load_model
        from ..models import model_builder_of

        cfg = job.config["model"]
        if "target" in cfg or cfg.get("name") not in MODELS:
            self.require_code(f"the model {entry_label(cfg)!r}")
        path = inside(self.out, job.model_path)  # the store checked the name; this follows the links (safepath.py)
        return load_model(path, model_builder_of(cfg) if "target" in cfg else None)[0]

    def job_dir(self, job: JobResult) -> Path:
        """``jobs/<id>`` of a finished job (``OutsideRunFolder`` for an id that is not a plain name, or a folder
        that leads out of the run folder)."""
        return inside(self.out, Path("jobs") / plain(job.id, "job id"))

    def figure_path(self, name: str) -> Path:
        """``figures/<name>.png``, where an extra writes a figure: ``name`` must be a plain file name and the path
        must stay inside the run folder (links followed), else ``OutsideRunFolder``; the folder is created."""
        path = inside(self.out, Path("figures") / f"{plain(name)}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def select(self, where: dict[str, Any] | None = None, metric: str | None = None) -> list[JobResult]:
        def ok(value, want):  # a list in ``where`` accepts any of its values
            return value in want if isinstance(want, list) else value == want

        out = [j for j in self.jobs.values() if all(ok(j.axes.get(k), v) for k, v in (where or {}).items())]
        return [j for j in out if metric is None or j.metrics.get(metric) is not None]

    def select_unfinished(self, where: dict[str, Any] | None = None, metric: str | None = None) -> list[Unfinished]:
        """The unfinished jobs matching ``where`` that would have reported ``metric``: finished jobs of the same
        method report it, or (none finished) it is one of their task's metrics (``accuracy_before`` is not a float
        job's missing value)."""

        def ok(value, want):
            return value in want if isinstance(want, list) else value == want

        out = [u for u in self.unfinished.values() if all(ok(u.axes.get(k), v) for k, v in (where or {}).items())]
        return [u for u in out if metric is None or self._would_report(u, metric)]

    def _would_report(self, u: Unfinished, metric: str) -> bool:
        peers = [j for j in self.jobs.values() if j.axes.get("method") == u.axes.get("method")]
        if peers:
            return any(j.metrics.get(metric) is not None for j in peers)
        from ...tasks import get_task

        try:
            return metric in get_task(u.config.get("task", self.spec.task)).metric_names
        except (KeyError, ValueError):  # a task this lowbit does not know: the metric cannot be told apart
            return False

    def order(self, axis: str, value: Any) -> tuple[int, str]:
        """Sort key: the position of ``value`` in the spec's axis list (absent values first)."""
        values = self.spec.grid.get(axis, [])
        try:  # positions looked up in a dict built once per axis: list.index per row is quadratic on large stores
            pos = self._positions[axis]
        except KeyError:
            pos = self._positions[axis] = {}
            for i, v in enumerate(values):
                try:
                    pos.setdefault(v, i + 1)
                except TypeError:  # an unhashable axis value (a table): found by the scan below
                    pass
        try:
            if value in pos:
                return (pos[value], str(value))
        except TypeError:
            pass
        return (values.index(value) + 1 if value in values else 0, str(value))

    def key_label(self, axes: tuple[str, ...], key: tuple) -> str:
        parts = [str(v) if a in ("model", "method") else f"{a}={v}" for a, v in zip(axes, key) if v is not None]
        return " ".join(parts) or "-"

    def caption_facts(self, jobs: list[JobResult]) -> str:
        if not jobs:
            return f"data {data_label(self.spec)}; no runs yet"

        def uniq(values):
            out = []
            for v in values:
                if v not in out:
                    out.append(v)
            return ", ".join(str(v) for v in out)

        models = uniq(
            f"{j.axes['model']} ({entry_label(j.config['model'])})" for j in sorted(jobs, key=self._job_order)
        )
        methods = uniq(j.axes["method"] for j in sorted(jobs, key=self._job_order))
        bits = uniq(bits_label(j.config) for j in sorted(jobs, key=self._job_order))
        seeds = uniq(sorted({j.axes["seed"] for j in jobs if "seed" in j.axes}))
        n = len(jobs)
        return (
            f"data {data_label(self.spec)}; model {models}; method {methods}; bits {bits}; seeds {seeds or '-'}; "
            f"{n} run{'s' if n != 1 else ''}; scale {self.spec.scale}"
        )

    def _job_order(self, j: JobResult) -> tuple:
        return tuple(self.order(a, j.axes.get(a)) for a in [*CORE_AXES, *self.spec.extra_axes])
