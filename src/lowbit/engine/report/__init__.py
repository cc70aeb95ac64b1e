"""Reports from rows: ``build_report(run_dir)`` rewrites report.md, report.html and figures/*.png of any run
from its ``spec.toml`` and ``results.sqlite`` alone (docs/architecture.md).

The spec's ``[report]`` says what to show: pivot tables and metric-vs-axis figures (``pivot.py``) and
registered extras (``extras.py``) for study-specific pictures. With no ``[report]`` tables, one default table
shows every metric of the task by model and method. ``document.py`` renders Markdown and HTML.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..rows import FAILED, NOT_RUN
from .document import Figure, Report, Section, Table, mean_std
from .extras import EXTRAS, get_extra, register_extra
from .results import PENDING, RunResults

__all__ = ["Figure", "Report", "RunResults", "Section", "Table", "build_report", "mean_std", "register_extra"]


def _default_tables(res: RunResults) -> list[dict]:
    from ...tasks import TASKS

    cols = ["method", *res.spec.extra_axes]
    if res.spec.task in TASKS:
        metrics = list(TASKS.get(res.spec.task).metric_names)
    else:  # a plugin's task that was not imported: every metric the store holds
        metrics = sorted({m for j in res.jobs.values() for m in j.metrics})
    return [{"rows": "model", "columns": cols, "value": m} for m in metrics]


def _unfinished_text(res: RunResults) -> str:
    """ " (1 failed, 2 not run, 3 not run yet)" for the planned jobs without a result; "" when there are none."""
    counts = Counter(u.status for u in res.unfinished.values())
    parts = [f"{counts[s]} {s}" for s in (FAILED, NOT_RUN) if counts[s]]
    if counts[PENDING]:
        parts.append(f"{counts[PENDING]} not run yet")
    return f" ({', '.join(parts)})" if parts else ""


def failed_section(res: RunResults) -> Section | None:
    """ "Failed jobs": one line per job that failed or was not run because a job it needs failed."""
    bad = [u for u in res.unfinished.values() if u.status in (FAILED, NOT_RUN)]
    if not bad:
        return None
    axes = [a for a in ["model", "method", "seed", *res.spec.extra_axes] if any(a in u.axes for u in bad)]
    bad.sort(key=lambda u: (u.status != FAILED, *(res.order(a, u.axes.get(a)) for a in axes)))
    n, m = sum(u.status == FAILED for u in bad), sum(u.status == NOT_RUN for u in bad)
    what = f"{n} job{'s' * (n != 1)} failed" + (
        f"; {m} {'was' if m == 1 else 'were'} not run because a job {'it needs' if m == 1 else 'they need'} failed"
        if m
        else ""
    )
    return Section(
        heading="Failed jobs",
        paragraphs=[
            f"{what}. Their cells in the tables above are marked. Fix the cause and run the same command with "
            f"`--resume`: it runs these jobs again and keeps every finished one. `lowbit results {res.out} --failed` "
            "prints them (`--json` with their tracebacks)."
        ],
        tables=[
            Table(
                "Jobs without a result",
                ["job", *axes, "status", "error"],
                [[u.id, *(u.axes.get(a) for a in axes), u.status, u.error] for u in bad],
            )
        ],
    )


def build_report(run_dir: str | Path, trust_code: bool = False, trust_data: bool = False) -> Path:
    """Rebuild the report of ``run_dir``; return the path of report.md.

    trust_code: import the modules the stored spec names (``RunResults``); trust_data: read the data files its
    [data] names (``root``, ``archive``). Without them, an extra that needs them is skipped with a one-line note
    and the rest of the report is built."""
    from ..usercode import UntrustedCode
    from .pivot import metric_figure, pivot_table

    res = RunResults(run_dir, trust_code, trust_data)
    spec, rep = res.spec, res.spec.report
    n_jobs = len(res.jobs)
    versions = sorted({j.code_version for j in res.jobs.values()})
    wall = sum(j.wall_s for j in res.jobs.values())
    paragraphs = [
        spec.description,
        f"Scale `{spec.scale}`; {n_jobs} finished job(s){_unfinished_text(res)}, {wall / 60:.1f} worker-minutes; "
        f"code: {'; '.join(versions) or '-'}. Rebuild with `lowbit report {run_dir}`; query with `lowbit results`.",
        *rep.get("paragraphs", []),
    ]
    body = Section(
        paragraphs=[p for p in paragraphs if p],
        tables=[pivot_table(res, t) for t in rep.get("tables") or _default_tables(res)],
        figures=[metric_figure(res, f, i) for i, f in enumerate(rep.get("figures", []))],
    )
    sections = [failed] if (failed := failed_section(res)) else []
    for name, options in rep.get("extras", {}).items():
        try:
            if name not in EXTRAS:  # a plugin's extra: the plugin was not imported (the spec check let it pass)
                res.require_code(f"report extra {name!r}")
            sec = get_extra(name)(res, **options)
        except UntrustedCode as e:
            body.paragraphs.append(f"Skipped: {e}; rebuild with `lowbit report {run_dir} {e.flag}` to run it.")
            continue
        if not sec.empty():
            sec.heading = sec.heading or name
            sections.append(sec)
    report = Report(title=f"{spec.name}", body=body, sections=sections, config_text=(res.out / "spec.toml").read_text())
    return report.write(res.out)[0]
