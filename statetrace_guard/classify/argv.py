"""Entry points: classify a top-level argv or a script.

``classify_argv`` takes the argv ``guard run -- PROGRAM ARGS`` would exec;
``classify_script`` a script in bash or PowerShell. The native-program
classifier every front end shares lives in ``dispatch.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from statetrace_guard.classify.dispatch import classify_words, failed, walk_bash
from statetrace_guard.classify.model import Classification, ClassifyContext, Word
from statetrace_guard.classify.repoconfig import flag_nested_repo_configs

__all__ = ["classify_argv", "classify_script"]


def classify_argv(argv: Sequence[str], ctx: ClassifyContext) -> Classification:
    """Classify a top-level argv exactly as it would be exec'd (no shell).

    Never raises: an unexpected internal error becomes one ``dynamic`` command.
    """
    try:
        found = classify_words([Word(a) for a in argv], ctx, "exec")
        return Classification(flag_nested_repo_configs(found, ctx))
    except Exception as exc:  # noqa: BLE001 - classification must never raise
        return Classification(
            (failed(tuple(argv), "exec", f"internal error: {exc!r}"),)
        )


def classify_script(
    text: str, shell: Literal["bash", "pwsh"], ctx: ClassifyContext
) -> Classification:
    """Classify a script in ``shell``'s language; never raises."""
    try:
        if shell == "pwsh":
            return _pwsh_script(text, ctx)
        commands, errors = walk_bash(text, ctx)
        return Classification(flag_nested_repo_configs(commands, ctx), errors)
    except Exception as exc:  # noqa: BLE001 - classification must never raise
        return Classification((failed((text,), shell, f"internal error: {exc!r}"),))


def _pwsh_script(text: str, ctx: ClassifyContext) -> Classification:
    try:
        from statetrace_guard.classify.powershell import (  # noqa: PLC0415 - optional, heavy
            classify_pwsh_script,
        )
    except ImportError:
        return Classification(
            (failed((text,), "pwsh", "PowerShell classifier missing"),)
        )
    found = classify_pwsh_script(text, ctx, classify_words)
    return Classification(flag_nested_repo_configs(found, ctx))
