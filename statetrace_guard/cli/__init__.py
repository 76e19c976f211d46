"""The ``guard`` command line: a thin click layer over the pure core.

Subcommands live in sibling modules and are imported only when invoked, so
``guard check`` does not pay for what ``guard verify`` needs. Every module
here parses options, calls the core, renders, and maps GuardError to its exit
code; none holds logic of its own.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from statetrace_guard._version import __version__

__all__ = ["LAZY_COMMANDS", "main"]

# name -> "module:attribute"; the module is imported on first use.
LAZY_COMMANDS: dict[str, str] = {
    "run": "statetrace_guard.cli.run_cmd:run",
    "check": "statetrace_guard.cli.check_cmd:check",
    "explain": "statetrace_guard.cli.check_cmd:explain",
    "policy": "statetrace_guard.cli.policy_cmd:policy",
    "verify": "statetrace_guard.cli.audit_cmd:verify",
    "log": "statetrace_guard.cli.audit_cmd:log",
    "doctor": "statetrace_guard.cli.doctor_cmd:doctor",
    "session": "statetrace_guard.cli.session_cmd:session",
    "escalate": "statetrace_guard.cli.approval_cmd:escalate",
    "approve": "statetrace_guard.cli.approval_cmd:approve",
    "deny": "statetrace_guard.cli.approval_cmd:deny",
    "approvals": "statetrace_guard.cli.approval_cmd:approvals",
    "replay": "statetrace_guard.cli.replay_cmd:replay",
    "report": "statetrace_guard.cli.report_cmd:report",
    "hook": "statetrace_guard.cli.hook_cmd:hook",
    "record": "statetrace_guard.cli.hook_cmd:record",
    "install": "statetrace_guard.cli.install_cmd:install",
    "fetch": "statetrace_guard.cli.fetch_cmd:fetch",
    "jobs": "statetrace_guard.cli.jobs_cmd:jobs",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List the registered names, eager and lazy, sorted."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the eager command, or import the lazy one by its path."""
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
        loaded: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(loaded, click.Command):
            msg = f"{LAZY_COMMANDS[cmd_name]} is not a click command"
            raise TypeError(msg)
        return loaded


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="guard")
def main() -> None:
    """Guard an agent's shell commands: classify, decide, enforce, record.

    Exit codes: 0 ok; 1 negative result (blocked, broken, drift); 2 usage;
    3 policy invalid; 4 log unreadable; 5 verify: a command started and
    never finished. `guard run`: 123 outcome unknown (it started, then guard
    lost its supervisor), 124 timeout, 125 guard failed before running
    (nothing ran), 126 blocked, 127 not found, else the program's own status
    (128+N for signal N).
    """
