"""The ``guard`` console script.

``guard hook RUNTIME`` (called before every tool call of an agent runtime)
skips click altogether. ``guard run`` first tries the resident helper
(:mod:`statetrace_guard.daemon`), which keeps the path to the program at a
few milliseconds; everything else, and ``run`` whenever the helper cannot
serve it, goes through the click layer. A usage error of ``guard run``
itself (an unknown option, a bad value) exits 2 on both paths: nothing ran
(see errors.py).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def _exit_now(status: int) -> None:
    """Exit without the interpreter's teardown (~2 ms of a 13 ms start).

    The fast path holds nothing that needs it: no files of its own, no
    threads, no atexit work; only stdio buffers, flushed here.
    """
    import os  # noqa: PLC0415 - already loaded by site

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            continue
    os._exit(status)


_RUN_GUARD_FAILED = 125  # errors.ExitCode.RUN_GUARD_FAILED (not imported: speed)
_USAGE = 2  # errors.ExitCode.USAGE


def _cwd_gone() -> bool:
    """Say so (one line) when the current directory no longer exists."""
    import os  # noqa: PLC0415 - already loaded by site

    try:
        os.getcwd()  # noqa: PTH109 - no pathlib on the fast path
    except FileNotFoundError:
        sys.stderr.write(
            "error: the current directory no longer exists\n"
            "hint: run guard from an existing directory\n"
        )
        return True
    return False


def main() -> None:
    """Dispatch ``guard hook`` and ``guard run`` to lean paths, the rest to click."""
    args = sys.argv[1:]
    if args[:1] == ["hook"] and len(args) == 2 and not args[1].startswith("-"):  # noqa: PLR2004 - hook RUNTIME
        from statetrace_guard.hooks.main import main as hook_main  # noqa: PLC0415 - lean path

        _exit_now(hook_main(args[1:]))
    if _cwd_gone():
        # Nothing ran: for `run` that is 125, for the rest a usage error.
        _exit_now(_RUN_GUARD_FAILED if args[:1] == ["run"] else _USAGE)
    if args[:1] == ["run"]:
        from statetrace_guard.daemon.client import fast_run  # noqa: PLC0415 - lean path

        status = fast_run(args[1:])
        if status is not None:
            _exit_now(status)
    from statetrace_guard.cli import main as cli_main  # noqa: PLC0415 - heavy path
    from statetrace_guard.errors import RunFinished  # noqa: PLC0415 - loaded by cli

    try:
        cli_main.main(prog_name="guard", standalone_mode=True)
    except RunFinished as done:
        _exit_after_run(done.code)


def _exit_after_run(code: object) -> None:
    """End an in-process ``guard run`` without the interpreter's teardown.

    Tearing down everything judging loaded (classifier, policy models, the
    trail) took 35-75 ms after the program had already ended. Records are
    on disk by now (written with os.write), so only the atexit work and the
    stdio buffers are left: both done here. With another thread still alive
    the ordinary exit joins it first.
    """
    import atexit  # noqa: PLC0415 - only on this path
    import threading  # noqa: PLC0415 - already loaded by click

    status = code if isinstance(code, int) else int(code is not None)
    if threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()  # noqa: SLF001 - what the ordinary exit runs first
    _exit_now(status)
