r"""Bash word evaluation: quote removal and escapes, exactly as bash does them.

``word_of`` turns a word-level node into a :class:`Word`. Expansions
(variables, substitutions, arithmetic), unquoted globs and brace expansions
make the word non-static; its text then keeps their source. ANSI-C strings
(``$'\\x63url'``) are decoded, so ``$'\\x63url'`` is ``curl``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from statetrace_guard.classify.model import Word

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["decode_ansi_c", "unescape_double", "unescape_unquoted", "word_of"]

_SPECIAL = frozenset("*?[{\\")
_GLOB = re.compile(r"[*?]|\[.*\]")
_BRACE = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_ANSI = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_DOUBLE_ESCAPE = re.compile(r"\\([$`\"\\\n])")
_UNQUOTED_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_EXPANDING = frozenset(
    {
        "simple_expansion",
        "expansion",
        "command_substitution",
        "process_substitution",
        "arithmetic_expansion",
    }
)


def _ansi_one(match: re.Match[str]) -> str:
    esc = match.group(1)
    head = esc[0]
    if head in "xuU":
        try:
            return chr(int(esc[1:], 16))
        except (ValueError, OverflowError):
            return "\\" + esc
    if head.isdigit() and head in "01234567":
        return chr(int(esc, 8) & 0xFF)
    if head == "c" and len(esc) == 2:  # noqa: PLR2004 - \cX control character
        return chr(ord(esc[1]) & 0x1F)
    return _SIMPLE_ESCAPES.get(esc, "\\" + esc)


def decode_ansi_c(body: str) -> str:
    """Decode the body of ``$'...'`` as bash does."""
    return _ANSI.sub(_ansi_one, body)


def unescape_double(text: str) -> str:
    """Remove the backslashes bash removes inside double quotes."""
    return _DOUBLE_ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), text)


def unescape_unquoted(text: str) -> str:
    """Remove the backslashes bash removes outside quotes."""
    if "\\" not in text:
        return text
    return _UNQUOTED_ESCAPE.sub(
        lambda m: "" if m.group(1) == "\n" else m.group(1), text
    )


def _text(src: bytes, node: Node) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")


def _unquoted_static(raw: str) -> bool:
    """Tell whether an unquoted word has no glob or brace expansion."""
    if _SPECIAL.isdisjoint(raw):
        return True
    plain = _UNQUOTED_ESCAPE.sub("", raw)  # escaped characters do not expand
    return not (_GLOB.search(plain) or _BRACE.search(plain))


def _double(src: bytes, node: Node) -> tuple[str, bool]:
    """Evaluate a double-quoted string by byte ranges between its parts."""
    start, end = node.start_byte + 1, node.end_byte - 1
    if node.type == "translated_string":
        start += 1
    pieces: list[str] = []
    static = True
    pos = start
    for child in node.named_children:
        if child.type in _EXPANDING:
            pieces.append(
                unescape_double(
                    src[pos : child.start_byte].decode("utf-8", "surrogateescape")
                )
            )
            pieces.append(_text(src, child))
            static = False
            pos = child.end_byte
    if pos < end:
        pieces.append(unescape_double(src[pos:end].decode("utf-8", "surrogateescape")))
    return "".join(pieces), static


def _part(src: bytes, node: Node, raw_unquoted: list[str]) -> tuple[str, bool]:
    kind = node.type
    if kind in ("word", "number"):
        raw = _text(src, node)
        raw_unquoted.append(raw)
        return unescape_unquoted(raw), True
    if kind == "raw_string":
        return _text(src, node)[1:-1], True
    if kind == "ansi_c_string":
        return decode_ansi_c(_text(src, node)[2:-1]), True
    if kind in ("string", "translated_string"):
        return _double(src, node)
    if kind == "concatenation":
        return _concat(src, node, raw_unquoted)
    return _text(src, node), False


def _concat(src: bytes, node: Node, raw_unquoted: list[str]) -> tuple[str, bool]:
    pieces: list[str] = []
    static = True
    pos = node.start_byte
    for child in node.children:
        if child.start_byte > pos:  # bytes no child covers: literal text
            gap = src[pos : child.start_byte].decode("utf-8", "surrogateescape")
            raw_unquoted.append(gap)
            pieces.append(unescape_unquoted(gap))
        text, ok = _part(src, child, raw_unquoted)
        pieces.append(text)
        static = static and ok
        pos = max(pos, child.end_byte)
    return "".join(pieces), static


def word_of(src: bytes, node: Node) -> Word:
    """Evaluate a word-level node to the word bash would pass."""
    raw_unquoted: list[str] = []
    text, static = _part(src, node, raw_unquoted)
    if static and raw_unquoted and not _unquoted_static("".join(raw_unquoted)):
        static = False
    return Word(text, static)
