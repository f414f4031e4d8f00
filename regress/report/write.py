"""Write the HTML and/or text report next to other output (``regress diff --html``)."""

from __future__ import annotations

from pathlib import Path

from regress.model.capture import Capture, atomic_write_text
from regress.model.result import DiffResult


def write_reports(
    result: DiffResult,
    old: Capture,
    new: Capture,
    *,
    html: Path | None = None,
    text: Path | None = None,
) -> list[Path]:
    """Render and atomically write the requested reports; returns what was written."""
    from regress.report.html import render_html
    from regress.report.text import render_text

    written: list[Path] = []
    if html is not None:
        atomic_write_text(Path(html), render_html(result, old, new))
        written.append(Path(html))
    if text is not None:
        atomic_write_text(Path(text), render_text(result, old, new))
        written.append(Path(text))
    return written
