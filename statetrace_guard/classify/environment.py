"""The one table of environment variables: what setting one does.

Every front end asks here (bash ``X=1 cmd``, ``export``, ``env X=1``,
``read X``; PowerShell ``$env:X =``, ``Set-Item Env:X``,
``[Environment]::SetEnvironmentVariable``; cmd.exe ``set X=1``), so a
variable is a hijack in all of them or in none. The table is registry data
(``specs/environment.toml``).
"""

from __future__ import annotations

from statetrace_guard.classify.registry import builtin_knowledge

__all__ = ["dangerous_env", "redirects_writes", "variable_kind"]


def variable_kind(name: str) -> str | None:
    """``hijack``, ``plain``, ``write-dir``, or ``None`` when not listed."""
    rule = builtin_knowledge().variable(name)
    return None if rule is None else rule.kind


def dangerous_env(name: str) -> bool:
    """Tell whether setting ``name`` can change what later commands run.

    Guard's switches (``STATETRACE_GUARD_*``) are hijacks in every shell;
    the operator's opt-ins are the decision's (L3, only when already ``1``).
    """
    return variable_kind(name) == "hijack"


def redirects_writes(name: str) -> bool:
    """Setting ``name`` points later programs' writes at the path it holds.

    ``TMPDIR``, ``TEMP``, ``PYTHONPYCACHEPREFIX``, ``GIT_TRACE``: the value
    is a write target (a value known only at run time is ``dynamic``).
    """
    return variable_kind(name) == "write-dir"
