"""Run reports: ``report.md`` and ``report.html`` from tables and figures, written atomically.

A study builds a ``Report`` (title, paragraphs, tables, figures with captions) and calls ``write``. Every
figure caption should name the data set, model, method, bits, seed(s) and number of runs behind it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...fileio import atomic_write_text
from ..safepath import inside


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def markdown(self) -> str:
        out = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in self.rows)
        note = f"<p>{inline_html(self.note)}</p>" if self.note else ""
        return f"<h3>{inline_html(self.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


@dataclass
class Figure:
    path: str  # relative to the run folder, e.g. "figures/decision_maps.png"
    caption: str


@dataclass
class Section:
    """A part of a report with its own heading, paragraphs, tables and figures (a report extra returns one)."""

    heading: str = ""
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.paragraphs or self.tables or self.figures)

    def markdown(self, level: int = 2) -> list[str]:
        parts = [f"{'#' * level} {self.heading}"] if self.heading else []
        parts += [*self.paragraphs, *(t.markdown() for t in self.tables)]
        return parts + [f"![{f.caption}]({f.path})\n\n*{f.caption}*" for f in self.figures]

    def html(self, level: int = 2) -> list[str]:
        parts = [f"<h{level}>{html.escape(self.heading)}</h{level}>"] if self.heading else []
        parts += [f"<p>{inline_html(p)}</p>" for p in self.paragraphs]
        parts += [t.html() for t in self.tables]
        return parts + [
            f"<figure><img src='{html.escape(f.path)}'><figcaption>{inline_html(f.caption)}</figcaption></figure>"
            for f in self.figures
        ]


@dataclass
class Report:
    """The spec's own tables and figures (``body``, no heading), then each extra's section in spec order."""

    title: str
    body: Section = field(default_factory=Section)
    sections: list[Section] = field(default_factory=list)
    config_text: str = ""  # the run's config, shown verbatim at the end

    def markdown(self) -> str:
        parts = [f"# {self.title}", *self.body.markdown()]
        for sec in self.sections:
            parts += sec.markdown()
        if self.config_text:
            parts += ["## Config", "```toml\n" + self.config_text.rstrip() + "\n```"]
        return "\n\n".join(parts) + "\n"

    def html(self) -> str:
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:3px 8px;text-align:right}img{max-width:100%}"
            "code{background:#f3f3f3;padding:0 3px}"
        )
        parts = [f"<h1>{html.escape(self.title)}</h1>", *self.body.html()]
        for sec in self.sections:
            parts += sec.html()
        if self.config_text:
            parts.append(f"<h2>Config</h2><pre>{html.escape(self.config_text)}</pre>")
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
        )

    def write(self, run_dir: str | Path) -> tuple[Path, Path]:
        md, ht = inside(run_dir, "report.md"), inside(run_dir, "report.html")  # a link out is refused
        atomic_write_text(md, self.markdown())
        atomic_write_text(ht, self.html())
        return md, ht


_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")


def inline_html(text: str) -> str:
    """The inline Markdown the reports write (``code``, **bold**, *italic*) as HTML; everything else escaped."""
    out, last = [], 0
    for m in _CODE.finditer(text):  # code spans first: nothing inside them is emphasis
        out.append(_emphasis(html.escape(text[last : m.start()])))
        out.append(f"<code>{html.escape(m.group(1))}</code>")
        last = m.end()
    out.append(_emphasis(html.escape(text[last:])))
    return "".join(out)


def _emphasis(escaped: str) -> str:
    return _EM.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", escaped))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return "" if v is None else str(v)


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1) of a non-empty list; the deviation is None for one value."""
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, None
    return m, (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def mean_std(values: list[float]) -> str:
    """'m ± s' over seeds (sample standard deviation, n − 1; '—' when empty)."""
    if not values:
        return "—"
    m, s = mean_sd(values)
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"
