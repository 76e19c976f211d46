"""``guard report``: one self-contained HTML page about a session or a time range.

:mod:`.data` reads the trail into one JSON document (the page's only data,
embedded in it, so tests and other tools read the same facts); :mod:`.page`
puts that document into the HTML page, whose inline script draws it. Nothing
is imported here.
"""

from __future__ import annotations

__all__: list[str] = []
