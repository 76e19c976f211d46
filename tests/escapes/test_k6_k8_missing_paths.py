"""K6, K7, K8: protected paths that do not exist yet cannot be planted below L2.

A bind mount needs an existing mount point, so these are handled by
placeholders (empty ``.git/hooks``, ``.git/modules``, ``.git/worktrees``
bound read-only) and by the sweep before ``guard run`` returns (what appeared
is moved into guard's home and recorded as ``planted``). Each attack is then
followed by what the operator does next: a plain ``git status`` or the next
``guard run``, which must not run anything the program planted.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from escapes_kit import finished_records, git

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel layer")

EVIL_POLICY = 'name = "agent-owned"\n[effects]\nread = "L0"\ndynamic = "L0"\n'


def fsmonitor_config(marker) -> str:
    return (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        f'\tfsmonitor = "touch {marker}; false"\n'
    )


def planted(workspace) -> list[str]:
    return [
        p["path"] for r in finished_records(workspace) for p in r.get("planted", [])
    ]


class TestPolicyFile:
    def test_rejects_guard_toml_by_cp(self, repo, guard):
        """K6: `cp -r dir/. .` at L1 cannot leave a workspace guard.toml behind."""
        (repo / "incoming").mkdir()
        (repo / "incoming" / "guard.toml").write_text(EVIL_POLICY)
        result = guard("run", "--level", "L1", "--", "cp", "-r", "incoming/.", ".")
        assert result.returncode == 0, result.stderr
        assert not (repo / "guard.toml").exists()
        assert "guard.toml" in planted(repo)
        assert b"guard: removed guard.toml" in result.stderr
        # The next command is judged by the built-in policy, not the agent's.
        blocked = guard("run", "--level", "L1", "--", "bash", "-c", "sudo true")
        assert blocked.returncode == 126

    def test_rejects_guard_toml_by_tar(self, repo, guard):
        """K6: `tar -xf` of an archive holding guard.toml at L1 is undone."""
        data = EVIL_POLICY.encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("guard.toml")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        (repo / "pol.tar").write_bytes(buffer.getvalue())
        result = guard("run", "--level", "L1", "--", "tar", "-xf", "pol.tar")
        assert result.returncode == 0, result.stderr
        assert not (repo / "guard.toml").exists()
        assert "guard.toml" in planted(repo)

    def test_rejects_guard_toml_at_l3_too(self, repo, attack):
        """The policy file is never the program's, at any level."""
        code = f"open('guard.toml', 'w').write({EVIL_POLICY!r})"
        assert attack(code, level="L3").returncode == 0
        assert not (repo / "guard.toml").exists()


class TestGitIndirection:
    def test_rejects_commondir(self, repo, attack, tmp_path):
        """K7: a planted .git/commondir is gone before the operator's git status."""
        evil = tmp_path / "evil"
        marker = tmp_path / "pwned"
        code = (
            "import shutil\n"
            f"shutil.copytree('.git', {str(evil)!r})\n"
            f"open({str(evil / 'config')!r}, 'w').write({fsmonitor_config(marker)!r})\n"
            f"open('.git/commondir', 'w').write({str(evil)!r})\n"
        )
        result = attack(code)
        assert result.returncode == 0, result.stderr
        assert not (repo / ".git" / "commondir").exists()
        assert ".git/commondir" in planted(repo)
        assert git(repo, "status", "--short").returncode == 0
        assert not marker.exists()

    def test_commondir_attack_is_real(self, repo, tmp_path):
        """Control: the same files planted outside the guard do run the monitor."""
        evil = tmp_path / "evil"
        marker = tmp_path / "pwned"
        shutil.copytree(repo / ".git", evil)
        (evil / "config").write_text(fsmonitor_config(marker))
        (repo / ".git" / "commondir").write_text(str(evil))
        git(repo, "status", "--short")
        assert marker.exists()

    def test_rejects_module_config(self, repo, attack, tmp_path):
        """K8: .git/modules/<name>/config cannot be created below L2 (read-only placeholder)."""
        marker = tmp_path / "pwned"
        code = (
            "import os, sys\n"
            "try:\n"
            "    os.makedirs('.git/modules/x')\n"
            f"    open('.git/modules/x/config', 'w').write({fsmonitor_config(marker)!r})\n"
            "except OSError as exc:\n"
            "    sys.exit(13)\n"
        )
        assert attack(code).returncode == 13
        assert not (repo / ".git" / "modules" / "x").exists()
        assert list((repo / ".git" / "modules").iterdir()) == []

    def test_rejects_worktrees(self, repo, attack):
        """.git/worktrees/** cannot be created below L2 either."""
        code = "import os; os.makedirs('.git/worktrees/w')"
        assert attack(code).returncode != 0
        assert list((repo / ".git" / "worktrees").iterdir()) == []

    def test_rejects_nested_gitfile_with_gitlink(self, repo, attack, tmp_path):
        """K8: a `.git` file in a subfolder (plus a gitlink) is gone before git status."""
        evil = tmp_path / "evil"
        marker = tmp_path / "pwned"
        head = git(repo, "rev-parse", "HEAD").stdout.strip()
        code = (
            "import shutil, subprocess, os\n"
            f"shutil.copytree('.git', {str(evil)!r})\n"
            f"open({str(evil / 'config')!r}, 'w').write({fsmonitor_config(marker)!r}"
            f" + '\\tworktree = ' + os.getcwd() + '/sub\\n')\n"
            "os.makedirs('sub/deeper', exist_ok=True)\n"
            f"open('sub/.git', 'w').write('gitdir: {evil}\\n')\n"
            f"open('sub/deeper/.git', 'w').write('gitdir: {evil}\\n')\n"
            "subprocess.run(['git', 'update-index', '--add', '--cacheinfo',"
            f" '160000,{head},sub'], check=True)\n"
        )
        result = attack(code)
        assert result.returncode == 0, result.stderr
        assert not (repo / "sub" / ".git").exists()
        assert not (repo / "sub" / "deeper" / ".git").exists()
        assert {"sub/.git", "sub/deeper/.git"} <= set(planted(repo))
        git(repo, "status", "--short")
        assert not marker.exists()

    def test_nested_repository_allowed_from_l2(self, repo, attack):
        """At L2 a nested repository may be created (git init sub)."""
        code = "import subprocess; subprocess.run(['git', 'init', '-q', 'sub'], check=True)"
        assert attack(code, level="L2").returncode == 0
        assert (repo / "sub" / ".git" / "HEAD").exists()
        assert planted(repo) == []


class TestProtectList:
    @pytest.mark.parametrize(
        "rel",
        [
            ".claude/settings.local.json",
            ".envrc",
            ".vscode/tasks.json",
            "Data/s/s.accdb",
        ],
    )
    def test_rejects_new_protected_entries_below_l2(self, repo, attack, rel):
        """A [protect] path that did not exist cannot be created at L1."""
        code = (
            "import os\n"
            f"os.makedirs(os.path.dirname({rel!r}) or '.', exist_ok=True)\n"
            f"open({rel!r}, 'w').write('planted')\n"
        )
        assert attack(code).returncode == 0
        assert not (repo / rel).exists()
        assert rel in planted(repo)
        kept = [
            p["kept_at"]
            for r in finished_records(repo)
            for p in r.get("planted", [])
            if p["path"] == rel
        ]
        home = os.environ["STATETRACE_GUARD_HOME"]
        assert kept
        assert kept[0].startswith(home)
        assert Path(kept[0]).read_text() == "planted"

    def test_accepts_new_protected_entries_from_l2(self, repo, attack):
        """From L2 the protected data may be created."""
        code = (
            "import os; os.makedirs('Data/s'); open('Data/s/s.accdb', 'w').write('x')"
        )
        assert attack(code, level="L2").returncode == 0
        assert (repo / "Data" / "s" / "s.accdb").read_text() == "x"

    def test_existing_entries_made_by_operator_are_kept(self, repo, attack):
        """What the operator created before the command is never swept."""
        (repo / ".envrc").write_text("operator")
        code = "open('notes.txt', 'w').write('x')"
        assert attack(code).returncode == 0
        assert (repo / ".envrc").read_text() == "operator"
        assert planted(repo) == []


class TestThroughTheHelper:
    def test_sweep_runs_in_the_helper_with_its_cache(self, repo, attack, helper):
        """Through the resident helper, planted paths are swept too, run after run."""
        del helper
        for round_ in range(3):
            code = (
                "import os\n"
                f"os.makedirs('pkg{round_}/inner', exist_ok=True)\n"
                f"open('pkg{round_}/inner/.git', 'w').write('gitdir: /elsewhere')\n"
                "open('guard.toml', 'w').write('name = \"agent\"')\n"
            )
            result = attack(code)
            assert result.returncode == 0, result.stderr
            assert not (repo / f"pkg{round_}" / "inner" / ".git").exists()
            assert not (repo / "guard.toml").exists()
        records = finished_records(repo)
        assert {r["supervised_by"] for r in records} == {"daemon"}
        assert sum(len(r.get("planted", [])) for r in records) == 6
