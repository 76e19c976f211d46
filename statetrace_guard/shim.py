"""``guard-sh``: a drop-in for ``sh -c SCRIPT`` and ``bash -lc SCRIPT``.

For runtimes that let you choose only the shell (``SHELL``, OpenHands,
SWE-agent, aider's ``/run``, Cline): ``guard-sh [GUARD-RUN-OPTIONS]
[-FLAGS] -c SCRIPT [NAME [ARGS...]]`` is ``guard run [GUARD-RUN-OPTIONS] --
bash [-FLAGS] -c SCRIPT [NAME [ARGS...]]`` (``sh`` where bash is missing):
the script is judged, recorded and confined like any guarded command, stdio
is untouched and the exit status is the script's (124-127 are guard's own,
as for ``guard run``). Long options (``--level L0``, ``--policy FILE``) are
``guard run``'s; short flags (``-e``, ``-l``, ``-x``, ``-o pipefail``) are
the shell's. Without ``-c`` it is a usage error (exit 2): interactive shells
and script files are not taken.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["ShimUsageError", "main", "run_argv"]

_USAGE_EXIT = 2
_TAKES_VALUE = frozenset("o")  # -o OPTION


class ShimUsageError(ValueError):
    """The arguments are not ``[OPTIONS] -c SCRIPT [NAME [ARGS...]]``."""


def run_argv(args: Sequence[str], shell: str) -> list[str]:
    """The ``guard run`` arguments for a ``guard-sh`` command line.

    Raises:
        ShimUsageError: no ``-c``, no script, or an argument it cannot place.
    """
    guard_options: list[str] = []
    flags: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg.startswith("--") and len(arg) > 2:  # noqa: PLR2004 - "--x"
            guard_options.append(arg)
            if "=" not in arg and index < len(args) and not args[index].startswith("-"):
                guard_options.append(args[index])
                index += 1
            continue
        if not arg.startswith("-") or arg == "-":
            raise ShimUsageError(f"unexpected argument {arg!r} before -c")
        letters = arg[1:]
        if "c" in letters:
            rest = letters.replace("c", "")
            flags.extend([f"-{rest}"] if rest else [])
            if index >= len(args):
                raise ShimUsageError("-c needs a script")
            script, positional = args[index], list(args[index + 1 :])
            return [*guard_options, "--", shell, *flags, "-c", script, *positional]
        flags.append(arg)
        if letters and letters[-1] in _TAKES_VALUE and index < len(args):
            flags.append(args[index])
            index += 1
    raise ShimUsageError("no -c SCRIPT (guard-sh runs scripts given with -c)")


def _shell() -> str:
    from shutil import which  # noqa: PLC0415 - only this one call

    return "bash" if which("bash") else "sh"


def main() -> None:
    """The ``guard-sh`` console script."""
    try:
        arguments = run_argv(sys.argv[1:], _shell())
    except ShimUsageError as exc:
        sys.stderr.write(
            f"guard-sh: {exc}\n"
            "usage: guard-sh [GUARD-RUN-OPTIONS] [-FLAGS] -c SCRIPT [NAME [ARGS...]]\n"
        )
        sys.exit(_USAGE_EXIT)
    from statetrace_guard.entry import main as guard_main  # noqa: PLC0415

    sys.argv = ["guard", "run", *arguments]
    guard_main()
