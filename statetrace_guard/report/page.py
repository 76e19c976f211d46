r"""The report as one self-contained HTML page.

NOTE(templating): the page draws itself from the embedded JSON document with
a small inline script, so the server side substitutes exactly two things: the
title and the document. ``str.replace`` on two markers does that; a template
engine (Jinja2 is well kept, 3.1.6) would add a dependency and an escaping
context we would not use. The document is embedded in a
``<script type="application/json">`` element with ``<``, ``>`` and ``&``
escaped as ``\u003c`` etc., so no record can close the element or start
markup. A Content-Security-Policy meta tag forbids every network request the
page could make: it loads nothing, from file:// or as a CI artifact.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

__all__ = ["DATA_ELEMENT_ID", "render"]

DATA_ELEMENT_ID = "guard-report-data"
_TITLE = "<!--TITLE-->"
_DATA = "/*REPORT-DATA*/"


def _template() -> str:
    return (
        resources.files("statetrace_guard.report")
        .joinpath("template.html")
        .read_text("utf-8")
    )


def _embed(document: dict[str, Any]) -> str:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render(document: dict[str, Any], title: str) -> str:
    """Return the page for a report document."""
    page = _template()
    page = page.replace(_TITLE, html.escape(title), 1)
    return page.replace(_DATA, _embed(document), 1)
