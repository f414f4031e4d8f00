"""The self-contained HTML report: one file, inline CSS and SVG, no fetches.

jinja2 runs with autoescape on and ``StrictUndefined`` so that every string
from a capture or workload is escaped and a template typo fails loudly instead
of rendering an empty cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from regress import __version__
from regress.model.capture import Capture
from regress.model.result import DiffResult
from regress.report import svg
from regress.report.view import RowView, build_view


@dataclass
class HtmlRow:
    """A divergence row plus its charts (markup built by ``svg.py``)."""

    row: RowView
    dots: Markup
    hist: Markup


@cache
def environment() -> jinja2.Environment:
    """The template environment shared by the HTML and text renderers' loaders."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("regress.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _html_rows(rows: list[RowView], *, alpha: float | None = None) -> list[HtmlRow]:
    """Rows with their charts. Among the rows not shown by default (``alpha`` given) only
    those that changed past the FDR (return-value context rows) keep charts; the others
    keep their per-run numbers, so the page grows with what changed, not with what was
    tested."""
    empty = Markup("")

    def charted(r: RowView) -> bool:
        return alpha is None or r.sort_q <= alpha

    return [
        HtmlRow(
            r,
            svg.dots(r.old_values, r.new_values, r.label) if charted(r) else empty,
            svg.histogram(r.histogram, r.label) if charted(r) else empty,
        )
        for r in rows
    ]


def render_html(result: DiffResult, old: Capture, new: Capture) -> str:
    """The HTML report for ``result`` (the diff of ``old`` against ``new``)."""
    view = build_view(result, old, new)
    template = environment().get_template("report.html.j2")
    return template.render(
        v=view,
        rows=_html_rows(view.rows),
        more=_html_rows(view.more_rows, alpha=result.thresholds.alpha),
        overview=svg.overview(list(result.shown)),
        version=__version__,
    )


def render_ci_index(summary: dict[str, Any]) -> str:
    """The ``regress ci`` index page: ``summary.json`` rendered, every string escaped."""
    return environment().get_template("ci-index.html.j2").render(s=summary)
