"""The guardrails through the CLI: run, check, the record, replay, session end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from gitrepo import BAD, CLEAN, Repo


def guard(repo, *args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "statetrace_guard", *args],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def records(repo):
    out = []
    for path in sorted((repo.root / "Logs" / "Sessions").glob("*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


@pytest.fixture
def repo(tmp_path):
    repo = Repo(tmp_path / "ws")
    repo.write(".gitignore", b"Logs/Sessions/\nLogs/NetOps/\nLogs/Approvals/\n")
    repo.commit("ignore the guard's logs", ".gitignore")
    return repo


class TestRun:
    """guard run refuses the commit before git runs, and records why."""

    def test_rejects_a_store_with_the_rule_and_the_fix(self, repo):
        """Exit 126; the block line names the path, the rule and the fix."""
        path, content, _ = BAD["accdb"]
        repo.write(path, content)
        done = guard(
            repo, "run", "--", "bash", "-c", "git add -A && git commit -qm wip"
        )
        assert done.returncode == 126
        assert "rule commit:access-store" in done.stderr
        assert path in done.stderr
        assert "fix:" in done.stderr
        assert repo.git("rev-list", "--count", "HEAD") == "2"
        blocked = [r for r in records(repo) if r["event"] == "command.blocked"]
        facts = blocked[-1]["extra"]["guardrails"]["commits"][0]
        assert path in facts["paths"]
        assert blocked[-1]["rules"][-1] == "commit:access-store"

    def test_secrets_are_named_never_shown(self, repo):
        """The record and the message name the detector and line, not the value."""
        path, content, _ = BAD["github-token"]
        repo.write(path, content)
        repo.git("add", path)
        done = guard(repo, "run", "--", "git", "commit", "-qm", "deploy")
        assert done.returncode == 126
        assert "github-token in scripts/deploy.sh line 1" in done.stderr
        secret = content.decode().split("=", 1)[1].strip()
        assert secret not in done.stderr
        log = "".join(
            p.read_text() for p in (repo.root / "Logs" / "Sessions").glob("*.jsonl")
        )
        assert secret not in log

    def test_accepts_a_clean_commit_and_records_what_it_held(self, repo):
        """The commit runs; command.started keeps the facts for replay."""
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        done = guard(repo, "run", "--", "git", "commit", "-qm", "clean")
        assert done.returncode == 0, done.stderr
        assert repo.git("rev-list", "--count", "HEAD") == "3"
        started = [r for r in records(repo) if r["event"] == "command.started"]
        assert started[-1]["extra"]["guardrails"]["commits"][0]["paths"] == [CLEAN[0]]

    def test_non_commits_carry_no_facts(self, repo):
        """Only commits are inspected: a git status records nothing extra."""
        done = guard(repo, "run", "--", "git", "status", "--short")
        assert done.returncode == 0
        started = [r for r in records(repo) if r["event"] == "command.started"]
        assert "guardrails" not in started[-1]["extra"]


class TestCheckAndExplain:
    """check and explain look at the repository too; --batch does not."""

    def test_check_json_blocks_with_the_guardrail(self, repo):
        """The JSON verdict names the guardrail rule."""
        repo.write(*BAD["raw-log"][:2])
        repo.git("add", "-f", BAD["raw-log"][0])
        done = guard(repo, "check", "--json", "--", "git", "commit", "-m", "x")
        assert done.returncode == 1
        data = json.loads(done.stdout)
        assert data["decision"] == "block"
        assert data["commands"][0]["rule"] == "commit:raw-logs"

    def test_explain_names_every_finding(self, repo):
        """explain lists each refused path under its rule."""
        repo.write(*BAD["raw-log"][:2])
        repo.write(*BAD["aws-key"][:2])
        repo.git("add", "-f", BAD["raw-log"][0], BAD["aws-key"][0])
        done = guard(repo, "explain", "--", "git", "commit", "-m", "x")
        assert "raw logs" in done.stdout
        assert "aws-access-key in config/settings.py line 1" in done.stdout

    def test_batch_says_it_did_not_look(self, repo):
        """check --batch judges corpora: no repository, and the verdict says so."""
        repo.write(*BAD["accdb"][:2])
        repo.git("add", "-f", BAD["accdb"][0])
        line = json.dumps({"argv": ["git", "commit", "-m", "x"], "level": "L1"})
        done = subprocess.run(
            [sys.executable, "-m", "statetrace_guard", "check", "--batch", "-"],
            cwd=repo.root,
            input=line + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        data = json.loads(done.stdout)
        assert data["decision"] == "allow"
        assert any("not inspected" in reason for reason in data["reasons"])


class TestAdrThroughTheCli:
    """The ADR stop's words, in a session with a task."""

    def test_the_block_says_exactly_what_to_do(self, repo):
        """open an ADR under docs/adr/ naming ST-A-001, then retry."""
        # The built-in policy refuses Add-Type anyway (dynamic); a workspace
        # rule (or contained execution) lets it run, and the ADR stop decides.
        repo.write(
            "guard.toml",
            b'extends = "builtin:statetrace"\nname = "ws"\n[[rules]]\nid = "add-type"\n'
            b'program = ["add-type"]\nlevel = "L1"\nexample_shell = "pwsh"\n',
        )
        repo.write("docs/plans/PlanA.md", b"# plan\n")
        repo.commit("plan and policy", "docs/plans/PlanA.md", "guard.toml")
        started = guard(
            repo,
            "session",
            "start",
            "--task",
            "ST-A-001",
            "--plan",
            "docs/plans/PlanA.md",
        )
        assert started.returncode == 0, started.stderr
        env = {"STATETRACE_GUARD_SESSION": started.stdout.split()[0]}
        script = "Add-Type -TypeDefinition 'public class Parser { }'"
        done = guard(
            repo, "run", "--", "pwsh", "-NoProfile", "-Command", script, env=env
        )
        assert done.returncode == 126
        assert "rule adr:add-type" in done.stderr
        assert "open an ADR under docs/adr/ naming ST-A-001, then retry" in done.stderr
        repo.write("docs/adr/0003-parser-types.md", b"# ADR 3\n\nFor ST-A-001.\n")
        done = guard(
            repo, "check", "--", "pwsh", "-NoProfile", "-Command", script, env=env
        )
        assert done.returncode == 0, done.stdout


class TestSessionEnd:
    """session end lists the session's commits and the guardrail blocks."""

    def test_patch_summary_lists_commits_and_blocks(self, repo):
        """Hash, subject and files of each commit; each guardrail block with its reason."""
        repo.write("docs/plans/PlanA.md", b"# plan\n")
        repo.commit("plan", "docs/plans/PlanA.md")
        started = guard(
            repo,
            "session",
            "start",
            "--task",
            "ST-A-001",
            "--plan",
            "docs/plans/PlanA.md",
        )
        env = {"STATETRACE_GUARD_SESSION": started.stdout.split()[0]}
        repo.write(*CLEAN)
        assert guard(repo, "run", "--", "git", "add", CLEAN[0], env=env).returncode == 0
        done = guard(
            repo, "run", "--", "git", "commit", "-qm", "add the module", env=env
        )
        assert done.returncode == 0, done.stderr
        sha = repo.git("rev-parse", "HEAD")
        repo.write(*BAD["accdb"][:2])
        script = "git add -A && git commit -qm wip"
        assert guard(repo, "run", "--", "bash", "-c", script, env=env).returncode == 126
        # a commit no check saw (hooks skipped by a person) is listed and flagged
        repo.git("add", "-f", BAD["accdb"][0])
        repo.git("-c", "core.hooksPath=/dev/null", "commit", "-qm", "sneaked in")
        done = guard(
            repo, "session", "end", "--status", "done", "--next", "review", env=env
        )
        assert done.returncode == 0, done.stderr
        summary = done.stdout.split("TEST RESULTS")[0]
        assert f"{sha[:12]} add the module ({CLEAN[0]})" in summary
        assert "sneaked in (Data/WLLS/WLLS.accdb) BREAKS access-store" in summary
        assert "guardrail blocks (1):" in summary
        assert "git commit would commit Data/WLLS/WLLS.accdb" in summary


class TestReplay:
    """replay judges the recorded facts again, under today's policy."""

    def test_recorded_facts_are_judged_again(self, repo):
        """A clean commit stays allowed; a policy that refuses its path blocks it."""
        repo.write(*CLEAN)
        repo.git("add", CLEAN[0])
        assert guard(repo, "run", "--", "git", "commit", "-qm", "clean").returncode == 0
        logs = [str(p) for p in (repo.root / "Logs" / "Sessions").glob("*.jsonl")]
        same = guard(repo, "replay", *logs)
        assert same.returncode == 0, same.stdout + same.stderr
        stricter = repo.root.parent / "stricter.toml"
        stricter.write_text(
            'extends = "builtin:statetrace"\nname = "stricter"\n'
            '[[commit.never]]\nid = "no-ps1"\npaths = ["*.ps1"]\n'
        )
        changed = guard(repo, "replay", *logs, "--policy", str(stricter))
        assert changed.returncode == 1
        assert "now blocked" in changed.stdout
