"""Repository path globs, as ``.gitignore`` spells them, case-insensitive.

A glob without a slash matches a file name at any depth (``*.accdb`` is
``Data/WLLS/WLLS.accdb`` too); one with a slash is anchored at the repository
root (``Logs/**``); ``**`` crosses directories, ``*`` and ``?`` do not; a
trailing slash means everything below (``Logs/`` is ``Logs/**``). Matching
ignores case: on Windows and macOS ``DATA/x.ACCDB`` is the same file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["compile_globs", "glob_regex"]


def glob_regex(glob: str) -> str:
    """Translate one repository glob into a regular expression (no anchors).

    Raises:
        ValueError: the glob is empty.
    """
    text = glob.strip().replace("\\", "/").removeprefix("./").lstrip("/")
    if text.endswith("/"):
        text += "**"
    if not text:
        msg = f"empty path glob {glob!r}"
        raise ValueError(msg)
    body = _translate(text)
    return body if "/" in text else f"(?:.*/)?{body}"


def compile_globs(globs: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern matching any of ``globs`` (None when there are none)."""
    parts = [glob_regex(glob) for glob in globs]
    if not parts:
        return None
    return re.compile(f"(?:{'|'.join(parts)})", re.IGNORECASE | re.DOTALL)


def _translate(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif text[i] == "?":
            out.append("[^/]")
            i += 1
        elif text[i] == "[" and (end := text.find("]", i + 2)) > 0:
            inner = text[i + 1 : end].replace("\\", "\\\\")
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append(f"[{inner}]")
            i = end + 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)
