"""Fixtures for the audit trail tests: a log directory and command facts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit.trail import CommandFacts


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """An empty log directory."""
    path = tmp_path / "Logs"
    path.mkdir()
    return path


@pytest.fixture
def facts() -> Callable[..., CommandFacts]:
    """The facts factory."""
    return make_facts
