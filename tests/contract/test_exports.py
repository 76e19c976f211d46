"""Every module declares ``__all__`` and every name in it exists."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import statetrace_guard
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy
from statetrace_guard.result import verdict_json

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(
        statetrace_guard.__path__, prefix="statetrace_guard."
    )
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_exports_exist(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == []


def test_check_json_contract_keys(tmp_path):
    """The `check --json` envelope's keys are frozen (agent runtimes parse them)."""
    place = make_place(tmp_path, tmp_path, tmp_path / "Logs", None, {})
    data = verdict_json(
        evaluate(("git", "status"), Level.L0, load_policy(None), place).verdict
    )
    assert set(data) == {
        "schema_version",
        "decision",
        "level",
        "required_level",
        "opt_in",
        "effects",
        "contained",
        "commands",
        "reasons",
        "next_step",
    }
    assert set(data["commands"][0]) == {
        "argv",
        "shell",
        "name",
        "effects",
        "rule",
        "spec",
        "contained",
        "required_level",
        "opt_in",
        "writes",
        "hosts",
        "urls",
    }


def test_package_exports_the_api():
    """`statetrace_guard` exports the typed API (loaded on first use)."""

    assert set(statetrace_guard.__all__) == {
        "__version__",
        "CheckResult",
        "CommandResult",
        "EditResult",
        "RunResult",
        "check",
        "check_edit",
        "record",
        "run",
    }
    api_fields = {f.name for f in dataclasses.fields(statetrace_guard.CheckResult)}
    assert api_fields == {
        "schema_version",
        "decision",
        "level",
        "required_level",
        "opt_in",
        "effects",
        "contained",
        "commands",
        "reasons",
        "next_step",
    }
