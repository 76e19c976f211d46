"""PowerShell text helpers: node text, escapes, quotes, doc placeholders."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from statetrace_guard.classify.cmdlets import Arg

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = [
    "arg_from_node",
    "bare_array_items",
    "node_text",
    "retry_placeholders",
    "unescape_name",
]

_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_BACKTICK = re.compile(r"`(.)", re.DOTALL)
_PARAM_DASHES = "-\u2013\u2014\u2015"
_DOC_OPTIONAL = re.compile(r"\[\s*(-[A-Za-z][^\[\]\n]*)\]")
_DOC_BRACED = re.compile(r"(?<=[\w\-/\\.])\{(\w+)\}")
_DOC_BARE_ARRAY = re.compile(r"(\s-\w+\s+)([\w.\\/:-]+(?:,[\w.\\/:-]+)+)(?=\s|$)")
# Forms real PowerShell reads in command mode that the grammar rejects; each
# rewrite keeps the meaning (see retry_placeholders).
_GRAMMAR_GAPS = (
    (re.compile(r"(?<![\w$/.])\./(?=[\w.])"), r".\\"),  # ./Tools/X.ps1
    (re.compile(r"(?<=\s)--(?=\s|$)"), "'--'"),  # git diff -- path
    (
        re.compile(r"(?<=\s)-(split|join|f|replace|and|or|not|xor|band|bor)(?=\s|$)"),
        "-_\\1",
    ),
    (re.compile(r"(?<=\s)(\$\w+[\\/][^\s;|'\"]*)"), '"\\1"'),  # $HOME\x
    (re.compile(r"(?<=\w),\s+(?=[\w'\"])"), ","),  # Select-Object a, b
    # 1KB, 2.5MB: the grammar takes only lower-case multiplier suffixes.
    (
        re.compile(r"\b(\d+(?:\.\d+)?)(kb|mb|gb|tb|pb)\b", re.IGNORECASE),
        lambda m: m.group(1) + m.group(2).lower(),
    ),
)
_BARE_ARRAY = re.compile(r"(?<=\s)([\w.\\/:-]+(?:,[\w.\\/:-]+)+)(?=\s|$|;|\|)")


def node_text(node: Node | None) -> str:
    """Return a node's source text (empty for ``None``)."""
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")


def _unescape(text: str) -> str:
    """Apply PowerShell backtick escapes (`` `n `` newline, `` `x `` -> x)."""
    if "`" not in text:
        return text
    return _BACKTICK.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def unescape_name(text: str) -> str:
    """A command name as PowerShell looks it up: escapes and quotes removed."""
    name = _unescape(text.strip())
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":  # noqa: PLR2004
        name = name[1:-1]
    return name


def _string_arg(node: Node) -> Arg:
    """A quoted string: static unless it expands a variable or sub-expression."""
    text = node_text(node)
    inner = node.named_children[0] if node.named_children else None
    kind = inner.type if inner is not None else ""
    if kind.startswith("verbatim"):
        if kind == "verbatim_here_string_characters":
            return Arg(text[2:-2].strip("\r\n"), static=True)
        return Arg(text[1:-1].replace("''", "'"), static=True)
    if inner is not None and inner.named_children:
        return Arg(text, static=False, kind="expr")
    if kind == "expandable_here_string_literal":
        return Arg(_unescape(text[2:-2].strip("\r\n")), static=True)
    return Arg(_unescape(text[1:-1]), static=True)


def _token_arg(node: Node) -> Arg:
    """A bare word: a parameter when it starts with a dash PowerShell accepts."""
    text = node_text(node)
    if len(text) > 1 and text[0] in _PARAM_DASHES[1:] and text[1].isalpha():
        return Arg("-" + text[1:], static=True, kind="param", colon=text.endswith(":"))
    return Arg(_unescape(text), static="$" not in text)


def _array_arg(node: Node) -> Arg:
    """``a,b,c``: an array of elements."""
    items = [arg_from_node(c) for c in node.named_children]
    if len(items) == 1:
        return items[0]
    static = all(i.static for i in items)
    values = tuple(v for i in items for v in i.items)
    return Arg(
        ",".join(values),
        static=static,
        kind="word" if static else "expr",
        values=values,
    )


def _param_arg(node: Node) -> Arg:
    """``-Name`` or ``-Name:`` (the value follows)."""
    text = node_text(node)
    return Arg(text.rstrip(":"), static=True, kind="param", colon=text.endswith(":"))


def _unary_arg(node: Node) -> Arg:
    """A unary expression with one operand is that operand."""
    if node.named_child_count == 1:
        return arg_from_node(node.named_children[0])
    return Arg(node_text(node), static=False, kind="expr")


def _literal_arg(node: Node) -> Arg:
    """A number."""
    return Arg(node_text(node), static=True)


def _variable_arg(node: Node) -> Arg:
    """``$x`` is unknown; ``@x`` splats unknown parameters."""
    text = node_text(node)
    return Arg(text, static=False, kind="splat" if text.startswith("@") else "expr")


def _block_arg(node: Node) -> Arg:
    """A literal script block (its body is classified by the walker)."""
    return Arg(node_text(node), static=False, kind="block")


_ARG_BUILDERS = {
    "command_parameter": _param_arg,
    "generic_token": _token_arg,
    "string_literal": _string_arg,
    "array_literal_expression": _array_arg,
    "unary_expression": _unary_arg,
    "integer_literal": _literal_arg,
    "real_literal": _literal_arg,
    "decimal_integer_literal": _literal_arg,
    "variable": _variable_arg,
    "script_block_expression": _block_arg,
}


def arg_from_node(node: Node) -> Arg:
    """Turn one command element into an :class:`Arg`."""
    builder = _ARG_BUILDERS.get(node.type)
    if builder is None:
        return Arg(node_text(node), static=False, kind="expr")
    return builder(node)


def bare_array_items(text: str) -> str:
    """``a,b`` -> ``'a','b'``: the array PowerShell reads from bare words."""
    return ",".join("'" + item.replace("'", "''") + "'" for item in text.split(","))


def retry_placeholders(text: str, is_command: Callable[[str], bool]) -> str | None:
    """Rewrite documentation placeholders the grammar rejects, or ``None``.

    ``[-Switch]`` and ``[-Name <x>]`` lose their brackets, ``name-{id}.ext``
    becomes ``name-_id_.ext`` (never when ``id`` names a command), and
    ``-P a,b`` quotes its bare array. Real PowerShell reads all three as
    literal arguments, so the rewrite hides nothing that would run. The
    same holds for the grammar gaps: ``./x.ps1``, a bare ``--``, operator
    names used as native options (``certutil -split -f``), ``$HOME/x``
    barewords and ``a, b`` arrays.
    """

    def braced(match: re.Match[str]) -> str:
        word = match.group(1)
        if is_command(word.lower()):
            return match.group(0)
        return f"_{word}_"

    def bare_array(match: re.Match[str]) -> str:
        quoted = ",".join(f"'{item}'" for item in match.group(2).split(","))
        return match.group(1) + quoted

    fixed = _DOC_OPTIONAL.sub(r" \1 ", text)
    fixed = _DOC_BRACED.sub(braced, fixed)
    fixed = _DOC_BARE_ARRAY.sub(bare_array, fixed)
    for pattern, replacement in _GRAMMAR_GAPS:
        fixed = pattern.sub(replacement, fixed)
    fixed = _BARE_ARRAY.sub(lambda m: bare_array_items(m.group(1)), fixed)
    return None if fixed == text else fixed
