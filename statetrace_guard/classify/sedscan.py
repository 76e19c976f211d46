"""A small scanner for GNU sed programs: which files they write, whether they run.

Only what matters to the guard is recognised: the ``e`` command and the
``e`` flag of ``s`` (run a shell command), ``w``/``W`` and the ``w`` flag of
``s`` (write a file). Labels (``:a``, ``b a``, ``t a``, ``T a``) end at
whitespace, ``;`` or a newline as GNU sed reads them, so a command after a
label is still seen. Anything the scanner does not understand makes the
whole program unknown (``None``): fail closed.
"""

from __future__ import annotations

__all__ = ["scan_sed"]

_SIMPLE = frozenset("=dDgGhHnNpPxzF}")
_TO_EOL = frozenset("aicrR#")  # text or a file name up to the end of the line
_LABELLED = frozenset(":btTvqQlL")  # an optional word (label, number) follows
_ADDRESS = frozenset("0123456789$,~!+ \t")
_LABEL_END = frozenset(" \t;\n}")


class _Unknown(Exception):
    """Raised inside the scanner when the program cannot be read."""


def scan_sed(program: str) -> list[str] | None:
    """Return the files a sed program writes, or ``None`` if it may run code."""
    try:
        return _scan(program)
    except _Unknown:
        return None


def _scan(program: str) -> list[str]:
    writes: list[str] = []
    i, n = 0, len(program)
    while i < n:
        i = _skip_address(program, i)
        if i >= n:
            break
        cmd = program[i]
        i += 1
        if cmd in ";\n{ \t" or cmd in _SIMPLE:
            continue
        if cmd == "e":
            raise _Unknown
        if cmd in "wW":
            name, i = _to_eol(program, i)
            writes.append(name.strip())
        elif cmd in _TO_EOL:
            _, i = _to_eol(program, i)
        elif cmd in _LABELLED:
            i = _word(program, i)
        elif cmd in "sy":
            i = _substitute(program, i, writes, is_s=cmd == "s")
        else:
            raise _Unknown
    return writes


def _word(program: str, i: int) -> int:
    """Skip blanks, then a label or number up to whitespace, ``;`` or newline."""
    n = len(program)
    while i < n and program[i] in " \t":
        i += 1
    while i < n and program[i] not in _LABEL_END:
        i += 1
    return i


def _to_eol(program: str, i: int) -> tuple[str, int]:
    end = program.find("\n", i)
    end = len(program) if end < 0 else end
    return program[i:end], end


def _skip_address(program: str, i: int) -> int:
    n = len(program)
    while i < n:
        ch = program[i]
        if ch in _ADDRESS:
            i += 1
        elif ch == "/" or (ch == "\\" and i + 1 < n):
            delim = "/" if ch == "/" else program[i + 1]
            i = _delimited(program, i + (1 if ch == "/" else 2), delim)
            while i < n and program[i] in "IM":
                i += 1
        else:
            return i
    return i


def _delimited(program: str, i: int, delim: str) -> int:
    """Return the index after the closing ``delim``, honouring backslashes."""
    n = len(program)
    while i < n:
        if program[i] == "\\":
            i += 2
            continue
        if program[i] == delim:
            return i + 1
        i += 1
    raise _Unknown


def _substitute(program: str, i: int, writes: list[str], *, is_s: bool) -> int:
    if i >= len(program) or program[i] in "\\\n":
        raise _Unknown
    delim = program[i]
    i = _delimited(program, i + 1, delim)
    i = _delimited(program, i, delim)
    if not is_s:
        return i
    n = len(program)
    while i < n and program[i] not in ";\n}":
        flag = program[i]
        if flag == "e":
            raise _Unknown
        if flag == "w":
            name, i = _to_eol(program, i + 1)
            writes.append(name.strip())
            return i
        if not (flag.isdigit() or flag in "gpiImM \t"):
            raise _Unknown
        i += 1
    return i
