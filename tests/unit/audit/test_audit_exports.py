"""Every audit module declares __all__ and exports exactly what exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["chain", "log", "netops", "record", "redact", "review", "trail", "verify"]


@pytest.mark.parametrize("name", MODULES)
def test_exported_members(name):
    """__all__ names exist and every public top-level name is exported."""
    module = importlib.import_module(f"statetrace_guard.audit.{name}")
    assert all(hasattr(module, member) for member in module.__all__)
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))


def test_cli_module_exports():
    """The CLI module exports the two commands the lazy group names."""
    module = importlib.import_module("statetrace_guard.cli.audit_cmd")
    assert module.__all__ == ["log", "verify"]
