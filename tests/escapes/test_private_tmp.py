"""Each program's private TMPDIR is private: other programs cannot see or write it.

Found by the hardening review: private temporary directories were made
directly in the system one, which L0 reads and L1 writes. A program at L1
listed /tmp and wrote into another running command's TMPDIR (a script an
L3 command was about to run, in another session). Now they live in one
directory that each program's view covers, but for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import VENV_PATH, attack, guard_args, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
]
run_path = isolation_kit.run_path

VICTIM = """
import os, sys, time
script = os.path.join(os.environ["TMPDIR"], "step.sh")
with open(script, "w") as handle:
    handle.write("echo honest\\n")
print(script, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print(open(script).read(), flush=True)
"""

ATTACK = """
import os, sys
victim = sys.argv[1]
print("siblings", sorted(os.listdir(os.path.dirname(os.environ["TMPDIR"]))))
try:
    with open(victim, "a") as handle:
        handle.write("echo planted\\n")
    print("wrote")
except OSError as error:
    print("refused", error.strerror)
"""


@pytest.mark.parametrize("level", ["L0", "L1"])
def test_another_commands_tmpdir_is_out_of_reach(workspace, run_path, tmp_path, level):
    go = tmp_path / "go"
    victim = subprocess.Popen(
        guard_args("L3", [*py(VICTIM), str(go)]),
        cwd=workspace,
        env={**os.environ, "PATH": VENV_PATH},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        script = victim.stdout.readline().strip()
        assert script.endswith("step.sh"), script
        result = attack(workspace, [*py(ATTACK), script], level=level)
        assert result.returncode == 0, result.stderr
        assert "wrote" not in result.stdout
        assert "refused No such file or directory" in result.stdout
        own = [
            line for line in result.stdout.splitlines() if line.startswith("siblings")
        ]
        assert Path(script).parent.name not in own[0]  # only its own is listed
    finally:
        go.write_text("")
        out, _ = victim.communicate(timeout=60)
    assert victim.returncode == 0
    assert out.strip() == "echo honest"
