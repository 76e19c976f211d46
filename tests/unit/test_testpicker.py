"""Test runs picked from the command lines the kernel shows at exec."""

from __future__ import annotations

import json

import pytest

from statetrace_guard.policy import load_policy, load_policy_bytes
from statetrace_guard.testpicker import TestPicker

DEFAULT = TestPicker.of(load_policy(None))
GENERIC = TestPicker.of(
    load_policy_bytes(b'extends = "builtin:generic"\nname = "any"\n', "any.toml")
)


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        (["pytest", "-q"], "pytest"),
        (["/w/.venv/bin/python3.12", "/w/.venv/bin/pytest", "-q"], "pytest"),
        (["python3", "-I", "/w/.venv/bin/py.test"], "py.test"),
        (["python3", "-m", "pytest", "-q"], "python3 -m pytest"),
        (["pwsh", "-NoProfile", "-Command", "Invoke-Pester", "-CI"], "invoke-pester"),
        (
            ["pwsh", "-File", "C:\\w\\Tools\\Invoke-AllChecks.ps1"],
            "invoke-allchecks.ps1",
        ),
        (["python3", "-c", "import pytest"], None),
        (["python3", "-m", "pip", "install", "pytest"], None),
        (["bash", "-c", "pytest -q"], None),
        (["tail", "-1"], None),
        ([], None),
        ([""], None),
    ],
)
def test_accepts_the_builtin_policys_test_runs(argv, label):
    """Interpreters are seen through; inline code and other programs are not tests."""
    assert DEFAULT.pick(argv) == label


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        (["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "test"], None),
        (["node", "/usr/bin/npm", "test"], "npm test"),
        (["npm", "run", "test:unit"], "npm run"),
        (["npm", "install"], None),
        (["go", "test", "./..."], "go test"),
        (["cargo", "test"], "cargo test"),
        (["cargo", "install", "ripgrep"], None),
    ],
)
def test_args_patterns_decide_like_the_policy(argv, label):
    """`npm test` is a test run, `npm install` is not (the rule's args_pattern)."""
    assert GENERIC.pick(argv) == label


def test_wire_form_round_trips():
    """The launch message carries the picker as JSON and it matches the same."""
    again = TestPicker.from_wire(json.loads(json.dumps(GENERIC.to_wire())))
    assert again.to_wire() == GENERIC.to_wire()
    for argv in (
        ["go", "test"],
        ["npm", "install"],
        ["/v/bin/python", "/v/bin/pytest"],
    ):
        assert again.pick(argv) == GENERIC.pick(argv)
