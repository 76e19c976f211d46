"""README's first command, as written, shows a newcomer the product (issue 13.5).

The command is read from README.md itself: everything after ``pip install .``
runs in a real bash with this environment's ``guard`` first on PATH, in a
temporary directory of its own. A newcomer must see the allowed command's
output, the block line with its next step, the documented status 126 and a
``guard log`` table naming both commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
INSTALL = "pip install . && "


def quick_start() -> str:
    """The part of README's first shell block that runs after the install."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)\n```", text, flags=re.DOTALL)
    assert block is not None, "README.md has no bash block"
    command = block.group(1)
    assert INSTALL in command, "README's first command must install guard"
    return command.split(INSTALL, 1)[1]


def test_quick_start_shows_a_run_a_block_with_its_next_step_and_the_log(tmp_path):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["TMPDIR"] = str(tmp_path)
    env["HOME"] = str(tmp_path)
    env["COLUMNS"] = "200"
    done = subprocess.run(
        ["bash", "-c", quick_start()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert "TODO" in done.stdout, out
    assert "guard: blocked: " in done.stderr, out
    assert "guard: next: " in done.stderr, out
    assert "guard exit: 126" in done.stdout, out
    table = done.stdout.split("guard exit: 126", 1)[1]
    assert "allow" in table, out
    assert "BLOCK" in table, out
    assert "curl -s http://example.com" in table, out
