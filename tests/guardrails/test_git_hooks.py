"""guard install git-hooks: the same commit check inside git, for every commit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from gitrepo import BAD, CLEAN, Repo

from statetrace_guard.guardrails.githooks import CHAINED_SUFFIX, hook_script
from statetrace_guard.guardrails.hook import HOOK_NAMES


def guard(repo, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "statetrace_guard", *args],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def git(repo, *args):
    """git as a person runs it: hooks on, output captured, status returned."""
    return subprocess.run(
        ["git", *args],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def repo(tmp_path):
    repo = Repo(tmp_path / "ws")
    done = guard(repo, "install", "git-hooks")
    assert done.returncode == 0, done.stderr
    return repo


def hooks(repo):
    return repo.root / ".git" / "hooks"


class TestInstall:
    """Installing writes three hooks, keeps the user's, and is idempotent."""

    def test_installs_three_executable_hooks(self, repo):
        """pre-commit, pre-merge-commit and reference-transaction are guard's."""
        for name in HOOK_NAMES:
            path = hooks(repo) / name
            assert path.read_text() == hook_script(sys.executable)
            assert os.access(path, os.X_OK)

    def test_installing_twice_changes_nothing(self, repo):
        """The second run reports no change."""
        done = guard(repo, "install", "git-hooks")
        assert done.returncode == 0
        assert "unchanged" in done.stdout

    def test_a_users_hook_is_kept_and_still_runs(self, tmp_path):
        """The hook that was there runs after guard's check, with its arguments."""
        repo = Repo(tmp_path / "ws")
        marker = tmp_path / "user-hook-ran"
        user_hook = hooks(repo) / "pre-commit"
        user_hook.write_text(f"#!/bin/sh\necho ran > {marker}\n")
        user_hook.chmod(0o755)
        done = guard(repo, "install", "git-hooks")
        assert "kept the existing hook" in done.stdout
        assert (hooks(repo) / f"pre-commit{CHAINED_SUFFIX}").exists()
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        assert git(repo, "commit", "-q", "-m", "clean").returncode == 0
        assert marker.exists()

    def test_a_failing_user_hook_still_refuses(self, tmp_path):
        """Chaining keeps the user's veto."""
        repo = Repo(tmp_path / "ws")
        user_hook = hooks(repo) / "pre-commit"
        user_hook.write_text("#!/bin/sh\necho 'user says no' >&2\nexit 3\n")
        user_hook.chmod(0o755)
        guard(repo, "install", "git-hooks")
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        done = git(repo, "commit", "-q", "-m", "clean")
        assert done.returncode != 0
        assert "user says no" in done.stderr

    def test_uninstall_puts_the_users_hook_back(self, tmp_path):
        """--uninstall removes guard's hooks and restores the chained one."""
        repo = Repo(tmp_path / "ws")
        user_hook = hooks(repo) / "pre-commit"
        user_hook.write_text("#!/bin/sh\nexit 0\n")
        user_hook.chmod(0o755)
        guard(repo, "install", "git-hooks")
        done = guard(repo, "install", "git-hooks", "--uninstall")
        assert done.returncode == 0, done.stderr
        assert user_hook.read_text() == "#!/bin/sh\nexit 0\n"
        assert not (hooks(repo) / "reference-transaction").exists()

    def test_a_hooks_path_setting_is_refused(self, tmp_path):
        """With core.hooksPath set, git would never run .git/hooks."""
        repo = Repo(tmp_path / "ws")
        repo.git("config", "core.hooksPath", ".githooks")
        done = guard(repo, "install", "git-hooks")
        assert done.returncode == 2
        assert "core.hooksPath" in done.stderr

    def test_user_scope_is_refused(self, tmp_path):
        """Git hooks live in a repository: there is no user scope."""
        repo = Repo(tmp_path / "ws")
        done = guard(repo, "install", "git-hooks", "--scope", "user")
        assert done.returncode == 2


class TestHumanCommits:
    """The hooks check a person's commits too, and say how to deal with them."""

    @pytest.mark.parametrize("kind", sorted(BAD))
    def test_rejects_refused_content(self, repo, kind):
        """Each refused payload stops the commit with the rule and the fix."""
        path, content, rule = BAD[kind]
        repo.write(path, content)
        repo.git("add", "-f", path)
        done = git(repo, "commit", "-q", "-m", "mine")
        assert done.returncode != 0
        assert f"rule {rule}" in done.stderr
        assert path in done.stderr
        assert "statetrace-guard's pre-commit hook" in done.stderr
        assert "fix:" in done.stderr
        assert repo.git("rev-list", "--count", "HEAD") == "1"

    def test_accepts_clean_content(self, repo):
        """An ordinary commit goes through."""
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        assert git(repo, "commit", "-q", "-m", "clean").returncode == 0
        assert repo.git("rev-list", "--count", "HEAD") == "2"

    def test_no_verify_is_caught_by_the_reference_transaction(self, repo):
        """--no-verify skips pre-commit, not the reference update check."""
        path, content, _ = BAD["accdb"]
        repo.write(path, content)
        repo.git("add", "-f", path)
        done = git(repo, "commit", "-q", "--no-verify", "-m", "sneaky")
        assert done.returncode != 0
        assert "reference-transaction hook" in done.stderr
        assert repo.git("rev-list", "--count", "HEAD") == "1"

    def test_commit_tree_and_update_ref_are_caught(self, repo):
        """Plumbing that makes a commit and moves a branch is checked too."""
        repo.write(*BAD["aws-key"][:2])
        repo.git("add", BAD["aws-key"][0])
        tree = repo.git("write-tree")
        commit = repo.git("commit-tree", tree, "-p", "HEAD", "-m", "plumbing")
        done = git(repo, "update-ref", "refs/heads/main", commit)
        assert done.returncode != 0
        assert "commit:secret" in done.stderr

    def test_a_merge_bringing_a_store_is_refused(self, repo):
        """pre-merge-commit checks what the merge adds."""
        repo.git("checkout", "-q", "-b", "feature")
        repo.write(*BAD["accdb"][:2])
        repo.commit("store on a branch", BAD["accdb"][0])
        repo.git("checkout", "-q", "main")
        repo.write("other.txt", b"x\n")
        repo.commit("main", "other.txt")
        done = git(repo, "merge", "--no-ff", "-m", "merge", "feature")
        assert done.returncode != 0
        assert "commit:access-store" in done.stderr

    def test_branches_and_checkouts_run_no_check(self, repo):
        """Moving to commits every reference already reaches costs no check."""
        assert git(repo, "branch", "other").returncode == 0
        assert git(repo, "checkout", "-q", "other").returncode == 0
        assert git(repo, "checkout", "-q", "main").returncode == 0
        assert git(repo, "stash", "list").returncode == 0

    def test_a_stash_is_not_a_commit(self, repo):
        """git stash of a store is allowed: it is not on a branch."""
        path, content, _ = BAD["accdb"]
        repo.write(path, content)
        repo.git("add", "-f", path)
        assert git(repo, "stash").returncode == 0

    def test_the_workspace_policy_decides(self, repo):
        """guard.toml at the top level adds its own refused paths."""
        repo.write(
            "guard.toml",
            b'extends = "builtin:statetrace"\nname = "ws"\n'
            b'[[commit.never]]\nid = "exports"\npaths = ["exports/**"]\n',
        )
        repo.commit("policy", "guard.toml")
        repo.write("exports/a.csv", b"a,b\n")
        repo.git("add", "exports/a.csv")
        done = git(repo, "commit", "-q", "-m", "exports")
        assert done.returncode != 0
        assert "commit:exports" in done.stderr

    def test_an_invalid_policy_refuses_the_commit(self, repo):
        """The check fails closed when it cannot read its rules."""
        repo.write("guard.toml", b"this is not toml [\n")
        repo.git("add", "guard.toml")
        done = git(repo, "commit", "-q", "-m", "broken policy")
        assert done.returncode != 0
        assert "could not check it" in done.stderr

    def test_a_missing_interpreter_refuses_with_the_way_out(self, repo):
        """A hook whose Python is gone says how to reinstall or remove it."""
        path = hooks(repo) / "pre-commit"
        path.write_text(hook_script("/nonexistent/python3"))
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        done = git(repo, "commit", "-q", "-m", "clean")
        assert done.returncode != 0
        assert "guard install git-hooks" in done.stderr


TOOL = """\
import os, subprocess
for attempt in ("remove", "edit", "rename"):
    try:
        if attempt == "remove":
            os.remove(".git/hooks/pre-commit")
        elif attempt == "edit":
            with open(".git/hooks/pre-commit", "a") as hook:
                hook.write("exit 0\\n")
        else:
            os.rename(".git/hooks", ".git/hooks-away")
        print(attempt, "succeeded")
    except OSError as error:
        print(attempt, "failed", error.errno)
with open("Data/copy.accdb", "wb") as store:
    store.write(b"\\0store")
subprocess.run(["git", "add", "-f", "Data/copy.accdb"], check=True)
done = subprocess.run(["git", "commit", "-q", "-m", "from a script"])
print("commit status", done.returncode)
done = subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "again"])
print("no-verify status", done.returncode)
"""


@pytest.mark.sandbox
class TestCommitsNoClassifierSees:
    """A program run by the agent commits itself: the hooks still decide."""

    def test_a_script_run_at_l1_cannot_commit_or_remove_the_hooks(self, repo):
        """The kernel keeps .git/hooks read-only below L2; the hooks refuse."""
        program = os.path.basename(sys.executable)
        repo.write(
            "guard.toml",
            textwrap.dedent(
                f"""\
                extends = "builtin:statetrace"
                name = "ws"
                [[rules]]
                id = "tool"
                program = ["{program}"]
                args_prefix = ["tool.py"]
                level = "L1"
                effects = ["write"]
                """
            ).encode(),
        )
        repo.write("tool.py", TOOL.encode())
        repo.write("Data/.keep", b"")
        repo.commit("tool", "guard.toml", "tool.py", "Data/.keep")
        done = guard(repo, "run", "--level", "L1", "--", sys.executable, "tool.py")
        if "not enforced here" in done.stderr:
            pytest.skip("kernel enforcement unavailable: " + done.stderr.strip())
        assert done.returncode == 0, done.stderr
        assert "remove failed" in done.stdout
        assert "edit failed" in done.stdout
        assert "rename failed" in done.stdout
        assert "commit status 1" in done.stdout
        assert "no-verify status 128" in done.stdout
        assert "statetrace-guard's pre-commit hook" in done.stderr
        assert (hooks(repo) / "pre-commit").read_text() == hook_script(sys.executable)
        assert repo.git("rev-list", "--count", "HEAD") == "2"
