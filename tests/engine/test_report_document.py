"""Report rendering: every section keeps its own heading, paragraphs, tables and figures, in order, in report.md
and report.html; the inline Markdown the reports write is HTML in report.html, everything else escaped."""

from __future__ import annotations

from support.specs import SPIRALS_TINY

from lowbit.engine.report.document import Figure, Report, Section, Table, inline_html
from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec

SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only


def _report() -> Report:
    body = Section(
        paragraphs=["Scale `tiny`; **2** jobs."], tables=[Table("Accuracy", ["model", "float"], [["a", 1.0]])]
    )
    extra = Section(
        heading="paired_comparisons",
        paragraphs=["W2 < float: *yes* (3 seeds)"],
        tables=[Table("Differences", ["claim", "mean"], [["W2 - float", -1.5]])],
        figures=[Figure("figures/change.png", "the change, `W2` vs float")],
    )
    return Report(title="demo", body=body, sections=[extra], config_text='name = "demo"\n')


def test_sections_keep_their_own_tables_and_figures_in_order():
    md = _report().markdown()
    order = [md.index(s) for s in ("**Accuracy**", "## paired_comparisons", "**Differences**", "figures/change.png")]
    assert order == sorted(order)
    html = _report().html()
    order = [html.index(s) for s in ("<h3>Accuracy</h3>", "<h2>paired_comparisons</h2>", "<h3>Differences</h3>")]
    assert order == sorted(order) and html.index("figures/change.png") > order[-1]


def test_html_renders_inline_markdown_and_escapes_the_rest():
    html = _report().html()
    assert "<code>tiny</code>" in html and "<strong>2</strong>" in html and "<em>yes</em>" in html
    assert "`" not in html.split("<h2>Config</h2>")[0]  # no literal backticks outside the config block
    assert inline_html("a < b & `x<y>` **c**") == "a &lt; b &amp; <code>x&lt;y&gt;</code> <strong>c</strong>"
    assert inline_html("2 * 3 * 4") == "2 * 3 * 4"  # a lone asterisk is not emphasis
    assert inline_html("`**not bold**`") == "<code>**not bold**</code>"


def _spec(extra: str = "", text: str = SMALL):
    import tomllib

    return parse_spec(tomllib.loads(text + extra), None, "edges.toml")


def test_a_figure_with_nothing_to_plot_still_gives_a_report(tmp_path):
    spec = _spec('[[report.figures]]\nmetric = "accuracy"\nx = "seed"\nwhere = { method = "float", seed = 5 }\n')
    report = sweep(spec, tmp_path / "run", workers=1, progress=False)
    assert report.is_file() and "accuracy" in report.read_text()
