"""Ordinary work still works inside the seal, on both paths.

Pipelines, git, Python with processes and threads, a test runner, exact exit
statuses and signals, resource figures: what an agent does at L0 and L1.
(A terminal: test_isolation_k2_terminal.py.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import isolation_kit
import pytest
from isolation_kit import assert_via, attack, last, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux kernel isolation"),
]
run_path = isolation_kit.run_path
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class TestOrdinary:
    @pytest.mark.parametrize("level", ["L0", "L1"])
    def test_a_bash_pipeline(self, run_path, workspace, level):
        result = attack(
            workspace, ["bash", "-c", "seq 1 100 | grep 7 | wc -l"], level=level
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "19"
        assert_via(workspace, run_path)

    def test_git_at_l1(self, run_path, workspace):
        (workspace / ".git").rmdir()
        env = {"HOME": str(workspace), **GIT_ENV}
        subprocess.run(["git", "init", "-q"], cwd=workspace, env=env, check=True)
        (workspace / "a.txt").write_text("a\n")
        script = "git add a.txt && git commit -qm one && git status --short | wc -l"
        result = attack(workspace, ["bash", "-c", script], level="L1", env=env)
        assert result.returncode == 0, result.stderr
        log = subprocess.run(
            ["git", "log", "--format=%s"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert log.stdout == "one\n"
        assert_via(workspace, run_path)

    def test_python_processes_and_threads(self, run_path, workspace):
        code = textwrap.dedent(
            """
            import multiprocessing, threading
            def square(x):
                return x * x
            if __name__ == "__main__":
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    total = sum(pool.map(square, range(10)))
                seen = []
                threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]
                for t in threads: t.start()
                for t in threads: t.join()
                print(total, len(seen))
            """
        )
        result = attack(workspace, py(code), level="L1")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["285", "4"]
        assert_via(workspace, run_path)

    def test_a_test_runner_at_l1(self, run_path, workspace):
        (workspace / "test_sample.py").write_text(
            "import os, tempfile\n"
            "def test_writes(tmp_path):\n"
            "    (tmp_path / 'x').write_text('y')\n"
            "def test_env():\n"
            "    assert os.environ['STATETRACE_GUARD_ACTIVE'] == '1'\n"
        )
        result = attack(
            workspace,
            [
                "python3",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "test_sample.py",
            ],
            level="L1",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
        assert_via(workspace, run_path)


class TestStatusAndFigures:
    @pytest.mark.parametrize(
        ("script", "status"),
        [("exit 3", 3), ("exit 200", 200), ("kill -SEGV $$", 139)],
    )
    def test_exact_statuses_through_init(self, run_path, workspace, script, status):
        result = attack(workspace, ["sh", "-c", script])
        assert result.returncode == status
        finished = last(workspace, "command.finished")
        assert finished["exit_code"] == status
        assert_via(workspace, run_path)

    def test_resource_figures_are_the_programs(self, run_path, workspace):
        code = (
            "import time\n"
            "b = b'x' * (50 << 20)\n"
            "end = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\n"
        )
        result = attack(workspace, py(code))
        assert result.returncode == 0, result.stderr
        finished = last(workspace, "command.finished")
        assert finished["peak_rss_bytes"] >= 45 << 20
        assert finished["cpu_user_s"] + finished["cpu_system_s"] >= 0.25
        assert finished["processes"] >= 1
        assert_via(workspace, run_path)
