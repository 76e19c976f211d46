"""``guard policy init``: a short workspace guard.toml extending a built-in policy.

The file lists nothing but its base and a name, with commented examples of
what a project usually adds (a rule, a level, a program the guard does not
know). It is validated before it is written: the command never leaves a
policy that would stop every later ``guard run`` with exit 3.
"""

from __future__ import annotations

import re
from pathlib import Path

from statetrace_guard.errors import UsageError
from statetrace_guard.policy import load_policy_bytes

__all__ = ["BASES", "init_policy", "policy_text"]

BASES = {"generic": "builtin:generic", "statetrace": "builtin:statetrace"}

_TEMPLATE = """\
# guard.toml: this workspace's policy for `guard` (statetrace_guard).
# It starts from the built-in {base} policy and lists only what differs:
# tables merge key by key, [[rules]] and [[programs]] add to the built-in
# ones, and the strictest matching rule still wins.
#   guard policy show                  the effective policy
#   guard policy lint guard.toml       check it (rule examples included)
extends = "{extends}"
name = "{name}"

# The level each effect needs when no rule names the command
# (L0 observe, L1 edit & test, L2 experiment, L3 online, "never").
# [effects]
# dynamic = "never"   # code the guard cannot name: project scripts, python -c

# A project command, allowed at L1 (the examples are checked when it loads):
# [[rules]]
# id = "make-docs"
# program = ["make"]
# args_prefix = ["docs"]
# level = "L1"
# match = ["make docs"]

# A project tool the guard does not know (the schema of the built-in
# registry, statetrace_guard/classify/specs/*.toml):
# [[programs]]
# name = "report-tool"
# reason = "prints reports; --out writes one"
# unknown_options = "read"
# write_options = ["--out"]
"""


def policy_text(base: str, name: str) -> str:
    """The guard.toml text extending ``base`` (``generic`` or ``statetrace``).

    Raises:
        UsageError: ``base`` names no built-in policy.
    """
    if base not in BASES:
        known = ", ".join(sorted(BASES))
        msg = f"no built-in policy {base!r} (known: {known})"
        raise UsageError(msg)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "workspace"
    return _TEMPLATE.format(base=base, extends=BASES[base], name=safe)


def init_policy(target: Path, base: str, *, force: bool = False) -> Path:
    """Write ``target`` (a guard.toml) extending ``base``; return it.

    Raises:
        UsageError: the file exists and ``force`` is not set, or it cannot
            be written.
    """
    if target.exists() and not force:
        msg = f"{target} exists (use --force to replace it)"
        raise UsageError(msg)
    text = policy_text(base, target.resolve().parent.name)
    load_policy_bytes(text.encode(), str(target))  # never write a broken policy
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write {target}: {exc.strerror}"
        raise UsageError(msg) from exc
    return target
