"""Bug reports rendered from a ``DiffResult`` and the two captures it came from.

``view.py`` turns the data into display-ready view models (all formatting and
decisions live there), ``html.py`` / ``text.py`` feed them to jinja2 templates
in ``templates/`` that only loop and branch, ``bundle.py`` packs everything for
a bug tracker. Renderers format; they never recompute statistics.
"""

from __future__ import annotations

from regress.report.bundle import write_bundle
from regress.report.html import render_html
from regress.report.text import render_text
from regress.report.write import write_reports

__all__ = ["render_html", "render_text", "write_bundle", "write_reports"]
