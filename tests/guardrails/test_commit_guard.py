"""The commit guard at decision time, on real git repositories.

Every spelling of a commit is judged with an .accdb store, a raw log and four
kinds of secret in it (each blocked, naming the rule), and with an ordinary
file instead (allowed). The judgement is ``evaluate`` with an inspector, the
same path ``guard run``, ``check`` and the agent hooks take.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest
from gitrepo import BAD, CLEAN, Repo

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.guardrails.findings import commit_findings
from statetrace_guard.guardrails.inspect import Inspector
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy, load_policy_bytes

POLICY = load_policy(None)
# An alias is an unknown subcommand to the classifier (dynamic); with a rule
# (or contained execution) it runs, and the commit guard follows the alias.
ALIAS_POLICY = load_policy_bytes(
    b"""extends = "builtin:statetrace"
name = "aliases"
[[rules]]
id = "git-ci"
program = ["git"]
args_prefix = ["ci"]
level = "L1"
effects = ["write"]
""",
    "aliases.toml",
)


def judge(
    repo: Repo,
    command: str,
    *,
    level: Level = Level.L1,
    task: str | None = None,
    policy=POLICY,
):
    place = make_place(repo.root, repo.root, repo.root / "Logs", None, {})
    inspector = Inspector(
        workspace=place.decide.workspace,
        cwd=place.decide.cwd,
        log_dir=str(repo.root / "Logs"),
        env={"PATH": "/usr/bin:/bin", "HOME": str(repo.root)},
        task_id=task,
    )
    return evaluate(shlex.split(command), level, policy, place, inspector)


# ---------------------------------------------------------------- spellings
# Each puts ``content`` at ``path`` the way the spelling needs it and returns
# the command line that makes the commit.


def staged(repo: Repo, path: str, content: bytes) -> None:
    repo.write(path, content)
    repo.git("add", "-f", "--", path)


def tracked_then_changed(repo: Repo, path: str, content: bytes) -> None:
    repo.write(path, b"placeholder\n")
    repo.commit("placeholder", path)
    repo.write(path, content)


def plain(repo, path, content):
    staged(repo, path, content)
    return "git commit -m wip"


def all_flag(repo, path, content):
    tracked_then_changed(repo, path, content)
    return "git commit -a -m wip"


def all_bundled(repo, path, content):
    tracked_then_changed(repo, path, content)
    return "git commit -qam wip"


def amend(repo, path, content):
    staged(repo, path, content)
    return "git commit --amend --no-edit"


def amend_all(repo, path, content):
    tracked_then_changed(repo, path, content)
    return "git commit --amend -a -m again"


def named_path(repo, files):
    for path, content in files.items():
        tracked_then_changed(repo, path, content)
    return "git commit -m wip -- " + " ".join(files)


def include(repo, files):
    for path, content in files.items():
        tracked_then_changed(repo, path, content)
    return "git commit -i -m wip " + " ".join(files)


def dash_c(repo, path, content):
    staged(repo, path, content)
    return "git -c user.name=Agent -c commit.gpgsign=false commit -m wip"


def dash_big_c(repo, path, content):
    staged(repo, path, content)
    return f"git -C {repo.root} commit -m wip"


def alias(repo, path, content):
    repo.git("config", "alias.ci", "commit -a")
    tracked_then_changed(repo, path, content)
    return "git ci -m wip"


def add_then_commit(repo, path, content):
    repo.write(path, content)
    return "bash -c 'git add -A && git commit -m wip'"


def add_dot_in_sh(repo, path, content):
    repo.write(path, content)
    return "sh -c 'cd . && git add . ; git commit -m wip'"


def pwsh_add_commit(repo, path, content):
    repo.write(path, content)
    return 'pwsh -NoProfile -Command "git add --all; git commit -m wip"'


def commit_tree(repo, path, content):
    staged(repo, path, content)
    tree = repo.git("write-tree")
    return f"git commit-tree {tree} -p HEAD -m wip"


def feature_commit(repo, files):
    repo.git("checkout", "-q", "-b", "feature")
    for path, content in files.items():
        repo.write(path, content)
    sha = repo.commit("feature work", *files)
    repo.git("checkout", "-q", "main")
    return sha


def merge(repo, files):
    feature_commit(repo, files)
    repo.write("other.txt", b"main moves on\n")
    repo.commit("main work", "other.txt")
    return "git merge --no-ff -m merge feature"


def rebase(repo, files):
    feature_commit(repo, files)
    repo.write("other.txt", b"main moves on\n")
    repo.commit("main work", "other.txt")
    repo.git("checkout", "-q", "feature")
    return "git rebase main"


def cherry_pick(repo, files):
    sha = feature_commit(repo, files)
    return f"git cherry-pick {sha}"


def revert(repo, files):
    for path, content in files.items():
        repo.write(path, content)
    repo.commit("add them", *files)
    repo.git("rm", "-q", "--", *files)
    repo.commit("remove them")
    return "git revert --no-edit HEAD"


def am(repo, files):
    repo.git("checkout", "-q", "-b", "feature")
    for path, content in files.items():
        repo.write(path, content)
    repo.commit("feature work", *files)
    patch = repo.git("format-patch", "-1", "--binary", "-o", "patches", "HEAD")
    repo.git("checkout", "-q", "main")
    return f"git am {patch}"


ONE_COMMIT = {
    "merge",
    "rebase",
    "cherry-pick",
    "revert",
    "am",
    "commit -- path",
    "commit -i path",
}
SPELLINGS: dict[str, Callable[..., str]] = {
    "commit": plain,
    "commit -a": all_flag,
    "commit -qam": all_bundled,
    "commit --amend": amend,
    "commit --amend -a": amend_all,
    "commit -- path": named_path,
    "commit -i path": include,
    "-c ... commit": dash_c,
    "-C dir commit": dash_big_c,
    "alias": alias,
    "add -A && commit": add_then_commit,
    "cd; add .; commit": add_dot_in_sh,
    "pwsh add; commit": pwsh_add_commit,
    "commit-tree": commit_tree,
    "merge": merge,
    "rebase": rebase,
    "cherry-pick": cherry_pick,
    "revert": revert,
    "am": am,
}


def payload_setup(spelling: str, repo: Repo, files: dict[str, bytes]) -> str:
    """Prepare every file for one spelling; return its command line."""
    setup = SPELLINGS[spelling]
    if spelling in ONE_COMMIT:  # the setup commits: put every file in that commit
        return setup(repo, files)
    command = ""
    for path, content in files.items():
        command = setup(repo, path, content)
    return command


class TestEverySpelling:
    """Each way of committing, with every refused payload and with a clean one."""

    @pytest.mark.parametrize("spelling", sorted(SPELLINGS))
    def test_rejects_refused_content(self, tmp_path, spelling):
        """Blocked: an .accdb, a raw log and four kinds of secret, each named."""
        repo = Repo(tmp_path / "repo")
        files = {path: content for path, content, _ in BAD.values()}
        command = payload_setup(spelling, repo, files)
        policy = ALIAS_POLICY if spelling == "alias" else POLICY
        judgement = judge(repo, command, policy=policy)
        verdict = judgement.verdict
        assert not verdict.allowed, command
        facts = judgement.guardrails.commits[-1]
        found = {f.rule for f in commit_findings(facts, policy.guardrails.commit, None)}
        assert verdict.rules[-1] in found
        for kind, (path, _, rule) in BAD.items():
            assert rule in found, (kind, command, verdict.reasons)
            named = (
                facts.paths
                if rule != "commit:secret"
                else [found.path for found in facts.secrets]
            )
            assert path in named, (kind, command)
        why = "\n".join(r for r in verdict.reasons if "needs never: " in r)
        assert "fix: git restore --staged" in why or "fix:" in why
        assert "Tools/Sanitize-PostmortemLogs.ps1" in why

    @pytest.mark.parametrize("spelling", sorted(SPELLINGS))
    def test_accepts_clean_content(self, tmp_path, spelling):
        """The same commit with an ordinary file is judged as before: allowed."""
        repo = Repo(tmp_path / "repo")
        command = payload_setup(spelling, repo, dict([CLEAN]))
        policy = ALIAS_POLICY if spelling == "alias" else POLICY
        judgement = judge(repo, command, policy=policy)
        assert judgement.verdict.allowed, (command, judgement.verdict.reasons)
        assert judgement.guardrails is not None
        assert judgement.guardrails.commits[-1].problem is None


class TestWhatIsInspected:
    """Where the content comes from, and what is not a commit."""

    def test_stash_is_not_a_commit(self, tmp_path):
        """git stash keeps changes outside the branches: not checked."""
        repo = Repo(tmp_path / "repo")
        staged(repo, *BAD["accdb"][:2])
        judgement = judge(repo, "git stash")
        assert judgement.verdict.allowed
        assert judgement.guardrails is None

    def test_deleting_a_refused_file_is_allowed(self, tmp_path):
        """Removing an .accdb from the repository is what the rule wants."""
        repo = Repo(tmp_path / "repo")
        path, content, _ = BAD["accdb"]
        repo.write(path, content)
        repo.commit("old mistake", path)
        repo.git("rm", "-q", "--cached", "--", path)
        assert judge(repo, "git commit -m 'remove the store'").verdict.allowed

    def test_only_named_paths_count_without_dash_i(self, tmp_path):
        """``git commit -- a`` leaves other staged files out of the commit."""
        repo = Repo(tmp_path / "repo")
        path, content, _ = BAD["accdb"]
        tracked_then_changed(repo, *CLEAN)
        staged(repo, path, content)
        assert judge(repo, f"git commit -m x -- {CLEAN[0]}").verdict.allowed
        assert not judge(repo, f"git commit -i -m x -- {CLEAN[0]}").verdict.allowed

    def test_guard_logs_are_refused_whatever_the_policy(self, tmp_path):
        """The guard's own session log and its lock file never go into git."""
        repo = Repo(tmp_path / "repo")
        repo.write("Logs/Sessions/2026-01-01_session-0001.jsonl", b"{}\n")
        repo.write("Logs/Sessions/2026-01-01_session-0001.jsonl.lock", b"")
        verdict = judge(repo, "bash -c 'git add -A && git commit -m x'").verdict
        assert "commit:guard-logs" in verdict.rules
        assert any(".jsonl.lock" in r for r in verdict.reasons)

    def test_secret_in_the_message_is_refused(self, tmp_path):
        """``-m`` text is committed too."""
        repo = Repo(tmp_path / "repo")
        staged(repo, *CLEAN)
        verdict = judge(repo, "git commit -m 'key AKIAIOSFODNN7EXAMPLE'").verdict
        assert "commit:secret" in verdict.rules

    def test_utf16_powershell_scripts_are_scanned(self, tmp_path):
        """PowerShell writes UTF-16 with a BOM; it is text, not binary."""
        repo = Repo(tmp_path / "repo")
        text = "$k = 'AKIAIOSFODNN7EXAMPLE'\r\n"
        staged(repo, "Tools/Keys.ps1", b"\xff\xfe" + text.encode("utf-16-le"))
        assert "commit:secret" in judge(repo, "git commit -m x").verdict.rules

    def test_files_over_the_cap_are_listed_unscanned(self, tmp_path):
        """The scan reads at most max_file_bytes of a file."""
        repo = Repo(tmp_path / "repo")
        big = b"x" * (POLICY.guardrails.commit.max_file_bytes + 1)
        staged(repo, "data/big.txt", big + b"AKIAIOSFODNN7EXAMPLE")
        judgement = judge(repo, "git commit -m x")
        assert judgement.verdict.allowed
        assert judgement.guardrails.commits[0].unscanned == ("data/big.txt",)

    def test_filter_drivers_are_never_run(self, tmp_path):
        """A clean filter in the repository's config does not run in the guard."""
        repo = Repo(tmp_path / "repo")
        marker = tmp_path / "ran"
        repo.git("config", "filter.evil.clean", f"touch {marker}; cat")
        repo.write(".gitattributes", b"*.ps1 filter=evil\n")
        repo.commit("attributes", ".gitattributes")
        tracked_then_changed(repo, "Tools/Open-Db.ps1", BAD["connection-string"][1])
        marker.unlink(missing_ok=True)
        verdict = judge(repo, "git commit -am x").verdict
        assert "commit:secret" in verdict.rules
        assert not marker.exists()

    def test_a_variable_that_moves_the_index_is_refused(self, tmp_path):
        """GIT_INDEX_FILE set for git means guard would look at the wrong index."""
        repo = Repo(tmp_path / "repo")
        staged(repo, *CLEAN)
        lenient = load_policy_bytes(
            b'extends = "builtin:statetrace"\nname = "x"\n[effects]\ndynamic = "L1"\n',
            "lenient.toml",
        )
        command = "env GIT_INDEX_FILE=/tmp/other git commit -m x"
        verdict = judge(repo, command, policy=lenient).verdict
        assert verdict.rules[-1] == "commit:uninspected"
        assert not verdict.allowed

    def test_outside_a_repository_nothing_is_committed(self, tmp_path):
        """git commit outside a repository fails by itself: nothing to refuse."""
        plain_dir = tmp_path / "plain"
        plain_dir.mkdir()
        place = make_place(plain_dir, plain_dir, plain_dir / "Logs", None, {})
        inspector = Inspector(str(plain_dir), str(plain_dir), str(plain_dir), {})
        judgement = evaluate(
            ["git", "commit", "-m", "x"], Level.L1, POLICY, place, inspector
        )
        assert judgement.verdict.allowed

    def test_without_an_inspector_the_verdict_says_so(self, tmp_path):
        """check --batch does not look: the decision is the policy's, and says so."""
        repo = Repo(tmp_path / "repo")
        staged(repo, *BAD["accdb"][:2])
        place = make_place(repo.root, repo.root, repo.root / "Logs", None, {})
        verdict = evaluate(
            ["git", "commit", "-m", "x"], Level.L1, POLICY, place
        ).verdict
        assert verdict.allowed
        assert any("not inspected" in reason for reason in verdict.reasons)

    def test_a_blocked_level_is_not_inspected(self, tmp_path):
        """At L0 the commit is refused before any git process runs."""
        repo = Repo(tmp_path / "repo")
        staged(repo, *BAD["accdb"][:2])
        judgement = judge(repo, "git commit -m x", level=Level.L0)
        assert not judgement.verdict.allowed
        assert judgement.guardrails is None
