"""A file the invoker passed for reading cannot be reopened for writing.

``guard run -- cmd < .git/hooks/pre-commit``: the descriptor was opened on
the host's writable mount, and ``open("/proc/self/fd/0", O_WRONLY)`` reopens
the same file on that mount, past the read-only bind. The program now gets
the file opened anew in its own view (same offset); one that view does not
show (guard's home) refuses the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import VENV_PATH, assert_via, guard_args, last, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
]
run_path = isolation_kit.run_path

REOPEN = """
import os, sys
print(os.read(0, 4))
try:
    fd = os.open("/proc/self/fd/0", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"echo planted\\n")
    print("wrote")
except OSError as error:
    print("refused", error.strerror)
"""


def run_with_stdin(
    workspace: Path, source: Path, level: str
) -> subprocess.CompletedProcess:
    """``guard run`` of REOPEN with ``source`` as its stdin, 2 bytes already read."""
    with source.open("rb") as stdin:
        os.read(stdin.fileno(), 2)
        return subprocess.run(
            guard_args(level, py(REOPEN)),
            cwd=workspace,
            env={**os.environ, "PATH": VENV_PATH},
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


@pytest.mark.parametrize("level", ["L0", "L1"])
def test_a_protected_file_on_stdin_stays_read_only(workspace, run_path, level):
    hook = workspace / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_bytes(b"#!/bin/sh\n")
    result = run_with_stdin(workspace, hook, level)
    assert result.returncode == 0, result.stderr
    assert "b'/bin'" in result.stdout  # read on from where the invoker was
    assert "refused" in result.stdout
    assert hook.read_bytes() == b"#!/bin/sh\n"
    assert_via(workspace, run_path)


def test_a_file_from_guards_home_is_refused(workspace):
    """The view hides it: run refused (125) rather than handed a way back out."""
    secret = Path(os.environ["STATETRACE_GUARD_HOME"]) / "approvals.jsonl"
    secret.write_bytes(b"{}\n")
    result = run_with_stdin(workspace, secret, "L1")
    assert result.returncode == 125
    assert "inherited descriptor 0" in last(workspace, "command.finished")["error"]
    assert secret.read_bytes() == b"{}\n"


def test_an_ordinary_file_on_stdin_still_works(workspace):
    data = workspace / "input.txt"
    data.write_bytes(b"abcdef")
    result = run_with_stdin(workspace, data, "L1")
    assert result.returncode == 0, result.stderr
    assert "b'cdef'" in result.stdout
