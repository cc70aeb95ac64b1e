"""Reports from rows: ``build_report(run_dir)`` rewrites report.md, report.html and figures/*.png of any run
from its ``spec.toml`` and ``results.sqlite`` alone (docs/architecture.md).

The spec's ``[report]`` says what to show: pivot tables and metric-vs-axis figures (``pivot.py``) and
registered extras (``extras.py``) for study-specific pictures. With no ``[report]`` tables, one default table
shows every metric of the task by model and method. ``document.py`` renders Markdown and HTML.
"""

from __future__ import annotations

from pathlib import Path

from .document import Figure, Report, Section, Table, mean_std
from .extras import get_extra, register_extra
from .results import RunResults

__all__ = ["Figure", "Report", "RunResults", "Section", "Table", "build_report", "mean_std", "register_extra"]


def _default_tables(res: RunResults) -> list[dict]:
    from ...tasks import get_task

    cols = ["method", *res.spec.extra_axes]
    return [{"rows": "model", "columns": cols, "value": m} for m in get_task(res.spec.task).metric_names]


def build_report(run_dir: str | Path) -> Path:
    """Rebuild the report of ``run_dir``; return the path of report.md."""
    from .pivot import metric_figure, pivot_table

    res = RunResults(run_dir)
    spec, rep = res.spec, res.spec.report
    n_jobs = len(res.jobs)
    versions = sorted({j.code_version for j in res.jobs.values()})
    wall = sum(j.wall_s for j in res.jobs.values())
    paragraphs = [
        spec.description,
        f"Scale `{spec.scale}`; {n_jobs} finished job(s), {wall / 60:.1f} worker-minutes; code: "
        f"{'; '.join(versions) or '-'}. Rebuild with `lowbit report {run_dir}`; query with `lowbit results`.",
        *rep.get("paragraphs", []),
    ]
    body = Section(
        paragraphs=[p for p in paragraphs if p],
        tables=[pivot_table(res, t) for t in rep.get("tables") or _default_tables(res)],
        figures=[metric_figure(res, f, i) for i, f in enumerate(rep.get("figures", []))],
    )
    sections = []
    for name, options in rep.get("extras", {}).items():
        sec = get_extra(name)(res, **options)
        if not sec.empty():
            sec.heading = sec.heading or name
            sections.append(sec)
    report = Report(title=f"{spec.name}", body=body, sections=sections, config_text=(res.out / "spec.toml").read_text())
    return report.write(res.out)[0]
