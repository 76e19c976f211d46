"""``guard hook RUNTIME``: read one hook call on stdin, answer, fail closed.

Any failure (input that is not a hook call this guard knows, a tool it has
no rule for, a broken policy, a log that cannot be written, a bug) becomes
the runtime's block answer: one line on stderr and exit 2. Never a
traceback (``GUARD_DEBUG=1`` adds it), never a silent allow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import BinaryIO, TextIO

from statetrace_guard.hooks.protocol import (
    MAX_INPUT,
    RUNTIMES,
    Answer,
    HookInputError,
    block,
    parse_input,
)

__all__ = ["answer_hook", "main"]


def main(argv: Sequence[str]) -> int:
    """Run ``guard hook RUNTIME`` on this process's stdio; return the exit code."""
    runtime = argv[0] if len(argv) == 1 else ""
    answer = answer_hook(runtime, sys.stdin.buffer, sys.argv[0], sys.executable)
    _emit(answer, sys.stdout, sys.stderr)
    return answer.exit_code


def answer_hook(runtime: str, stdin: BinaryIO, argv0: str, executable: str) -> Answer:
    """Answer one hook call read from ``stdin``; every failure blocks."""
    label = f"guard: hook {runtime or '?'}"
    try:
        if runtime not in RUNTIMES:
            return block(f"guard: hook: usage: guard hook {{{'|'.join(RUNTIMES)}}}")
        hook = parse_input(runtime, _read(stdin))
        from statetrace_guard.hooks.handler import handle  # noqa: PLC0415
        from statetrace_guard.hooks.wrap import guard_program  # noqa: PLC0415

        return handle(hook, guard_program(argv0, executable))
    except HookInputError as exc:
        return block(f"{label}: {exc}; blocked")
    except Exception as exc:  # noqa: BLE001 - a failing hook must block, not allow
        return block(f"{label}: {_describe(exc)}; blocked")


def _describe(exc: Exception) -> str:
    from statetrace_guard.errors import GuardError  # noqa: PLC0415

    if os.environ.get("GUARD_DEBUG") == "1":
        import traceback  # noqa: PLC0415

        traceback.print_exc()
    if isinstance(exc, GuardError):
        hint = exc.hint()
        return exc.message + (f" ({hint})" if hint else "")
    return f"internal error {type(exc).__name__}: {exc}"


def _read(stdin: BinaryIO) -> str:
    data = stdin.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise HookInputError(f"input is larger than {MAX_INPUT} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HookInputError(f"input is not UTF-8 ({exc.reason})") from None


def _emit(answer: Answer, stdout: TextIO, stderr: TextIO) -> None:
    if answer.stdout:
        stdout.write(answer.stdout + "\n")
    if answer.stderr:
        stderr.write(answer.stderr.rstrip("\n") + "\n")
    stdout.flush()
    stderr.flush()
