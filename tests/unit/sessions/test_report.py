from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from statetrace_guard.sessions import lifecycle as lc
from statetrace_guard.sessions import report as rp
from statetrace_guard.sessions.store import load_session


def git(workspace, *args):
    subprocess.run(
        ["git", "-C", str(workspace), *args], check=True, capture_output=True
    )


@pytest.fixture
def repo(harness):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    shutil.rmtree(harness.workspace / ".git")
    git(harness.workspace, "init", "-q")
    (harness.workspace / "a.txt").write_text("one\n")
    (harness.workspace / ".gitignore").write_text("Logs/*.lock\n")
    git(harness.workspace, "add", "-A")
    git(
        harness.workspace,
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-qm",
        "base",
    )
    return harness.workspace


class TestReport:
    def test_four_sections_from_the_log(self, harness, start, repo, policy_factory):
        """The report's sections match what the log holds."""
        harness.policy = policy_factory(max_test_failures=2)
        sid = start()
        (repo / "a.txt").write_text("one\ntwo\n")
        (repo / "b.txt").write_text("new\n")
        harness.run(sid, ("pytest", "-q"), exit_code=0)
        harness.run(sid, ("pytest", "-q", "tests/x"), exit_code=1)
        harness.run(sid, ("ls",))
        harness.run(sid, ("pytest", "-k", "y"), exit_code=2)
        report = lc.end_session(
            repo,
            harness.log_dir,
            harness.policy,
            sid,
            status="done",
            next_step="ship it",
        )
        text = rp.render_cli(report)
        sections = [
            line for line in text.splitlines() if line and not line[0].isspace()
        ]
        assert sections == [
            "PATCH SUMMARY",
            "TEST RESULTS",
            "TASKBOARD UPDATE",
            "NEXT STEP",
        ]
        assert "a.txt | 1 +" in text
        assert "b.txt (new, untracked)" in text
        assert "Logs/" not in text
        assert "PASS  pytest -q  (exit 0)" in text
        assert "FAIL  pytest -q tests/x  (exit 1)" in text
        assert "ls" not in [t.argv[0] for t in report.tests]
        assert "MUST STOP: 2 failing test commands" in text
        assert "ST-A-001: Done" in text
        assert "Stop: 2 failing" in text
        state = load_session(harness.log_dir, sid)
        assert len(rp.test_results(state, harness.policy)) == 3

    def test_markdown_template(self, harness, start, repo):
        """The Markdown log has the template's headings and the commands."""
        sid = start(role="implementer")
        harness.run(sid, ("ls", "-la"))
        report = lc.end_session(
            repo, harness.log_dir, harness.policy, sid, status="blocked", next_step=None
        )
        text = rp.render_markdown(report)
        for heading in (
            "**Date:**",
            "**Role:** implementer",
            "**Task board card:** ST-A-001",
            "**Plan:** docs/plans/PlanA.md",
            "## Changes",
            "## Validation",
            "## Outcome",
        ):
            assert heading in text
        assert "- `ls -la` (exit 0)" in text
        assert "Status: Blocked." in text
        assert "ST-A-001: Blocked" in rp.render_cli(report)
        assert "NEXT STEP\n  (none given)" in rp.render_cli(report)

    def test_without_git(self, harness, start):
        """No commit recorded: the patch summary says so."""
        sid = start()
        report = lc.end_session(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            sid,
            status="done",
            next_step=None,
        )
        assert "no git commit was recorded" in report.patch
        assert "(no test commands ran)" in rp.render_cli(report)
        assert rp.git_changes(harness.workspace, "deadbeef").startswith("(git diff")


class TestHonestEnd:
    """Without --status, the session ends as it stands (issue 19.4)."""

    def end(self, harness, sid, status=None):
        return lc.end_session(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            sid,
            status=status,
            next_step=None,
        )

    def test_passing_last_run_is_done(self, harness, start):
        sid = start()
        harness.run(sid, ("pytest", "-q"), exit_code=1)
        harness.run(sid, ("pytest", "-q"), exit_code=0)
        report = self.end(harness, sid)
        assert report.status == "done"
        assert report.status_note is None

    def test_failing_last_run_is_failed(self, harness, start):
        sid = start()
        harness.run(sid, ("pytest", "-q"), exit_code=1)
        report = self.end(harness, sid)
        assert report.status == "failed"
        assert report.status_note is not None
        assert "last test run failed: pytest -q" in report.status_note
        assert "ST-A-001: Failed" in rp.render_cli(report)

    def test_masked_last_run_is_not_done(self, harness, start):
        """`pytest | tail -1` exiting 0 proves nothing: UNKNOWN, status failed."""
        sid = start()
        harness.run(sid, ("bash", "-c", "pytest -q | tail -1"), exit_code=0)
        report = self.end(harness, sid)
        assert report.tests[0].outcome.result == "UNKNOWN"
        assert report.status == "failed"
        text = rp.render_cli(report)
        assert (
            "UNKNOWN  bash -c 'pytest -q | tail -1'  (exit 0; exit 0 may come" in text
        )

    def test_masked_failure_seen_by_the_kernel_is_failed(self, harness, start):
        """`pytest | tail -1` exit 0 with pytest's own exit 1 recorded: FAIL, failed."""
        sid = start()
        own = {
            "runs": [{"program": "pytest", "exit_code": 1, "signal": None}],
            "unread": 0,
            "unobserved": None,
        }
        harness.run(
            sid, ("bash", "-c", "pytest -q | tail -1"), exit_code=0, test_programs=own
        )
        report = self.end(harness, sid)
        assert report.tests[0].outcome.result == "FAIL"
        assert report.status == "failed"
        assert report.status_note is not None
        assert "last test run failed" in report.status_note
        assert "pytest's own status: exit 1" in rp.render_cli(report)
        assert "pytest's own status: exit 1" in rp.render_markdown(report)

    def test_explicit_done_overrides_and_says_so(self, harness, start):
        sid = start()
        harness.run(sid, ("pytest", "-q"), exit_code=1)
        report = self.end(harness, sid, status="done")
        assert report.status == "done"
        assert report.status_note is not None
        assert report.status_note.startswith("reported done by the operator although")
        markdown = rp.render_markdown(report)
        assert "Status: Done." in markdown
        assert "Status note: reported done" in markdown

    def test_heredoc_and_backticks_keep_markdown_valid(self, harness, start):
        """Heredocs are shortened with a marker; code spans survive backticks."""
        sid = start()
        script = "cat > notes.md <<'EOF'\n# Title\n```\ncode\n```\nEOF\necho `date`"
        harness.run(sid, ("bash", "-c", script))
        harness.run(sid, ("bash", "-c", "echo " + "word " * 80))
        report = self.end(harness, sid)
        markdown = rp.render_markdown(report)
        assert "[heredoc: " in markdown
        assert "…[" in markdown
        assert "\n# Title" not in markdown
        validation = markdown.split("## Validation")[1].split("Tests:")[0]
        items = [line for line in validation.splitlines() if line.startswith("- ")]
        assert len(items) == 2
        for item in items:
            fence = re.match(r"- (`+)", item)
            assert fence is not None
            assert item.count(fence.group(1)) >= 2
