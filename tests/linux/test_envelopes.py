"""Each level's file envelope (issue 13.2), through `guard run` on real repositories.

L1 writes the workspace and the system temp directory, including removing and
renaming any entry of the workspace root and of ``.git/``; the protected paths
stay read-only below L2 and guard's own files are never writable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from statetrace_guard.sandbox.linux import LinuxBackend

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ESCAPES_POLICY = str(ASSETS / "policies" / "escapes.toml")
CAPS = LinuxBackend().probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or CAPS.landlock_abi < 1 or not CAPS.mountns,
        reason="needs Linux with Landlock and mount namespaces",
    ),
]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def repo(workspace: Path) -> Path:
    """A repository with two branches that rebase cleanly."""
    (workspace / ".git").rmdir()
    git(workspace, "init", "-q", "-b", "main")
    (workspace / "a.txt").write_text("a\n")
    git(workspace, "add", "a.txt")
    git(workspace, "commit", "-qm", "a")
    git(workspace, "checkout", "-qb", "topic")
    (workspace / "b.txt").write_text("b\n")
    git(workspace, "add", "b.txt")
    git(workspace, "commit", "-qm", "b")
    git(workspace, "checkout", "-q", "main")
    (workspace / "c.txt").write_text("c\n")
    git(workspace, "add", "c.txt")
    git(workspace, "commit", "-qm", "c")
    git(workspace, "checkout", "-q", "topic")
    return workspace


@pytest.fixture
def run(guard):
    def go(*argv: str, level: str = "L1"):
        env = {
            **GIT_ENV,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        return guard(
            "run", "--level", level, "--policy", ESCAPES_POLICY, "--", *argv, env=env
        )

    return go


def sh(run, script: str, level: str = "L1"):
    return run("bash", "-c", script, level=level)


class TestL1WorkspaceRoot:
    def test_mkdir_then_rmdir_at_the_root(self, repo, run):
        """Two commands: `mkdir d`, then `rmdir d` (issue 13: Permission denied)."""
        assert sh(run, "mkdir d").returncode == 0
        result = sh(run, "rmdir d")
        assert result.returncode == 0, result.stderr
        assert not (repo / "d").exists()

    def test_mv_and_rm_rf_at_the_root_and_in_git(self, repo, run):
        """Entries of the root and of .git/ are created, renamed and removed."""
        script = (
            "mkdir -p build/x && echo 1 > build/x/f && mv build out && rm -rf out"
            " && echo n > notes && mv notes notes2 && rm notes2"
            " && mkdir .git/scratch && mv .git/scratch .git/scratch2"
            " && rm -rf .git/scratch2 && echo x > .git/ORIG_HEAD && rm .git/ORIG_HEAD"
        )
        result = sh(run, script)
        assert result.returncode == 0, result.stderr
        for name in ("build", "out", "notes", "notes2"):
            assert not (repo / name).exists()
        assert not (repo / ".git" / "scratch2").exists()

    def test_git_rebase_leaves_a_clean_tree(self, repo, run):
        """`git rebase main` completes: no .git/rebase-merge left behind."""
        result = run("git", "rebase", "main")
        assert result.returncode == 0, result.stderr
        assert not (repo / ".git" / "rebase-merge").exists()
        assert git(repo, "status", "--porcelain") == "?? Logs/\n"
        assert git(repo, "log", "--format=%s").split() == ["b", "c", "a"]

    def test_git_clean_fdx_leaves_a_clean_tree(self, repo, run):
        """`git clean -fdx` removes untracked files and directories at the root."""
        (repo / "junk").mkdir()
        (repo / "junk" / "f").write_text("x")
        (repo / "loose.txt").write_text("x")
        git(repo, "add", "-N", "loose.txt")
        git(repo, "reset", "-q", "loose.txt")
        result = run("git", "clean", "-fdx", "-e", "Logs")
        assert result.returncode == 0, result.stderr
        assert git(repo, "status", "--porcelain") == "?? Logs/\n"

    def test_pytest_run_leaves_a_clean_tree(self, repo, run):
        """A pytest run in the workspace leaves no undeletable cache directories."""
        (repo / "test_ok.py").write_text("def test_ok():\n    assert True\n")
        git(repo, "add", "test_ok.py")
        git(repo, "commit", "-qm", "test")
        result = run("pytest", "-q", "test_ok.py")
        assert result.returncode == 0, result.stderr
        clean = sh(run, "rm -rf .pytest_cache __pycache__ pytest-cache-files-*")
        assert clean.returncode == 0, clean.stderr
        assert git(repo, "status", "--porcelain", "--ignored") == "?? Logs/\n"


class TestProtectedBelowL2:
    @pytest.mark.parametrize(
        ("rel", "level"),
        [
            ("Data/site/site.accdb", "L1"),
            ("Data/StateTraceSettings.json", "L1"),
            (".git/hooks/pre-commit", "L1"),
            (".git/config", "L1"),
            ("Logs/Sessions/x.jsonl", "L3"),
        ],
    )
    def test_contained_python_write_refused_by_kernel(self, repo, run, rel, level):
        """A python program the policy allows cannot write protected files."""
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("original\n")
        code = (
            "import sys\n"
            f"try:\n    open({rel!r}, 'a').write('x')\n"
            "except OSError as exc:\n    print(exc, file=sys.stderr); sys.exit(13)\n"
        )
        result = run("python3", "-c", code, level=level)
        assert result.returncode == 13, result.stderr
        assert b"Read-only file system" in result.stderr
        assert path.read_text() == "original\n"

    def test_protected_data_writable_from_l2(self, repo, run):
        """At L2 the data and git's config are writable."""
        (repo / "Data" / "site").mkdir(parents=True)
        (repo / "Data" / "site" / "site.accdb").write_text("db")
        code = "open('Data/site/site.accdb', 'a').write('+'); open('.git/config', 'a')"
        result = run("python3", "-c", code, level="L2")
        assert result.returncode == 0, result.stderr
        assert (repo / "Data" / "site" / "site.accdb").read_text() == "db+"

    def test_renamed_parent_does_not_unprotect(self, repo, run):
        """Renaming Data or .git (a protected path's parent) is refused: identity holds."""
        (repo / "Data" / "site").mkdir(parents=True)
        (repo / "Data" / "site" / "site.accdb").write_text("db")
        code = (
            "import os, sys\n"
            "for src in ('Data', 'Data/site', '.git', 'Logs'):\n"
            "    try:\n"
            "        os.rename(src, src.replace('/', '_') + '-moved')\n"
            "        sys.exit(1)\n"
            "    except OSError:\n"
            "        pass\n"
        )
        result = run("python3", "-c", code)
        assert result.returncode == 0, result.stderr
        assert (repo / "Data" / "site" / "site.accdb").read_text() == "db"
        assert (repo / ".git" / "hooks").is_dir()


class TestL0:
    def test_l0_writes_nothing_in_the_workspace(self, repo, run):
        """L0 cannot create, remove or chmod anything in the workspace."""
        for script in (
            "mkdir d",
            "rm a.txt",
            "chmod 600 a.txt",
            "touch -d 2000-01-01 a.txt",
        ):
            assert sh(run, script, level="L0").returncode != 0, script
        assert (repo / "a.txt").stat().st_mode & 0o777 != 0o600
