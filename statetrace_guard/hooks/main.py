"""``guard hook RUNTIME``: read one hook call on stdin, answer, fail closed.

The call is first offered to the resident helper (which has the policy,
the classifier and the trail loaded: a few milliseconds instead of a cold
start); when no helper answers, the same handler runs in this process.
Either way any failure (input that is not a hook call this guard knows, a
tool it has no rule for, a broken policy, a log that cannot be written, a
bug) becomes the runtime's block answer: one line on stderr and exit 2.
Never a traceback (``GUARD_DEBUG=1`` adds it), never a silent allow.
"""

from __future__ import annotations

import os
import sys

# NOTE(speed): this module is on the path of every tool call. The way
# through the helper imports nothing but the helper's client (no json,
# dataclasses or typing); the in-process answer imports what it needs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

    from statetrace_guard.hooks.protocol import Answer

_RUNTIMES = ("claude-code", "codex")  # protocol.RUNTIMES, without its imports
_MAX_INPUT = 64 * 1024 * 1024  # protocol.MAX_INPUT
_BLOCK_EXIT = 2

__all__ = ["answer_hook", "main", "serve_hook"]


def main(argv: Sequence[str]) -> int:
    """Run ``guard hook RUNTIME`` on this process's stdio; return the exit code."""
    runtime = argv[0] if len(argv) == 1 else ""
    data = sys.stdin.buffer.read(_MAX_INPUT + 1)
    if _is_session_end(data) and not _in_detached_child():
        note = "guard: the guard session ends in the background (Logs/Sessions/ID.md)"
        _emit((0, "", note), sys.stdout, sys.stderr)
        return 0
    answer = _from_helper(runtime, data)
    if answer is None:
        here = answer_hook(runtime, data, sys.argv[0], sys.executable, os.environ)
        answer = (here.exit_code, here.stdout, here.stderr)
    _emit(answer, sys.stdout, sys.stderr)
    return answer[0]


def _is_session_end(data: bytes) -> bool:
    """True for a well-formed SessionEnd call (nothing to decide, only work)."""
    import json  # noqa: PLC0415 - a few hundred microseconds, only here

    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("hook_event_name") == "SessionEnd"


def _in_detached_child() -> bool:
    """Fork the rest of the work off; True in the detached child, False in the hook.

    Runtimes give a SessionEnd hook well under a second before they kill it
    at exit (Codex 0.169 does; a report takes longer on a loaded machine), so
    the ending runs in a child of its own session with stdio on /dev/null.
    Where there is no fork, the work is done here (True).
    """
    if not hasattr(os, "fork"):
        return True
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return False
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, 1 << 20)
    return True


def answer_hook(
    runtime: str,
    data: bytes,
    argv0: str,
    executable: str,
    env: Mapping[str, str],
) -> Answer:
    """Answer one hook call (``data``: the runtime's JSON); every failure blocks.

    ``argv0`` and ``executable`` name the guard that rewritten commands run;
    ``env`` is the environment of the runtime's hook process.
    """
    from statetrace_guard.hooks.protocol import (  # noqa: PLC0415
        RUNTIMES,
        HookInputError,
        block,
        parse_input,
    )

    label = f"guard: hook {runtime or '?'}"
    try:
        if runtime not in RUNTIMES:
            return block(f"guard: hook: usage: guard hook {{{'|'.join(RUNTIMES)}}}")
        hook = parse_input(runtime, _decode(data))
        from statetrace_guard.hooks.handler import handle  # noqa: PLC0415
        from statetrace_guard.hooks.wrap import guard_program  # noqa: PLC0415

        return handle(hook, guard_program(argv0, executable), env)
    except HookInputError as exc:
        return block(f"{label}: {exc}; blocked")
    except Exception as exc:  # noqa: BLE001 - a failing hook must block, not allow
        return block(f"{label}: {_describe(exc, env)}; blocked")


def serve_hook(request: dict[str, Any]) -> dict[str, Any]:
    """The resident helper's side: answer a ``hook`` request from a client."""
    from statetrace_guard.hooks.protocol import block  # noqa: PLC0415

    try:
        answer = answer_hook(
            str(request["runtime"]),
            bytes(request["payload"]),
            str(request["argv0"]),
            str(request["executable"]),
            {str(key): str(value) for key, value in request["env"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        answer = block(f"guard: hook: malformed helper request ({exc}); blocked")
    return {
        "op": "answer",
        "exit_code": answer.exit_code,
        "stdout": answer.stdout,
        "stderr": answer.stderr,
    }


def _from_helper(runtime: str, data: bytes) -> tuple[int, str, str] | None:
    """The helper's answer, or None to answer here (no helper, or it failed)."""
    from statetrace_guard.daemon.client import ask  # noqa: PLC0415
    from statetrace_guard.daemon.protocol import MAX_MESSAGE  # noqa: PLC0415

    if runtime not in _RUNTIMES or len(data) > min(_MAX_INPUT, MAX_MESSAGE // 2):
        return None
    reply = ask(
        {
            "op": "hook",
            "runtime": runtime,
            "payload": data,
            "argv0": sys.argv[0],
            "executable": sys.executable,
            "env": dict(os.environ),
        }
    )
    if not reply or reply.get("op") != "answer":
        return None  # stale, refused or failed before answering: do it here
    try:
        code, out, err = int(reply["exit_code"]), reply["stdout"], reply["stderr"]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(out, str) or not isinstance(err, str):
        return None
    if code not in {0, _BLOCK_EXIT}:
        return None  # not an answer a hook gives: do it here
    return code, out, err


def _describe(exc: Exception, env: Mapping[str, str]) -> str:
    from statetrace_guard.errors import GuardError  # noqa: PLC0415

    if env.get("GUARD_DEBUG") == "1":
        import traceback  # noqa: PLC0415

        traceback.print_exc()
    if isinstance(exc, GuardError):
        hint = exc.hint()
        return exc.message + (f" ({hint})" if hint else "")
    return f"internal error {type(exc).__name__}: {exc}"


def _decode(data: bytes) -> str:
    from statetrace_guard.hooks.protocol import MAX_INPUT, HookInputError  # noqa: PLC0415

    if len(data) > MAX_INPUT:
        raise HookInputError(f"input is larger than {MAX_INPUT} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HookInputError(f"input is not UTF-8 ({exc.reason})") from None


def _emit(answer: tuple[int, str, str], stdout: TextIO, stderr: TextIO) -> None:
    _code, out, err = answer
    if out:
        stdout.write(out + "\n")
    if err:
        stderr.write(err.rstrip("\n") + "\n")
    stdout.flush()
    stderr.flush()
