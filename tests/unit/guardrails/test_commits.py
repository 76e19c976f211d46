"""Which git command lines make commits, read the way git reads options."""

from __future__ import annotations

import shlex

import pytest

from statetrace_guard.guardrails.commits import add_intent, commit_intent

ALIASES = {
    "ci": "commit -a",
    "cm": "commit -m",
    "nested": "ci -q",
    "shell": "!sh -c 'git commit -am x'",
    "loop": "loop",
    "co": "checkout",
}


def lookup(_directory, name):
    return ALIASES.get(name)


def intent(command):
    return commit_intent(shlex.split(command), lookup)


class TestCommitSpellings:
    """Every spelling of a commit is recognised, with what it would take."""

    @pytest.mark.parametrize(
        ("command", "kind", "flags", "operands"),
        [
            ("git commit -m wip", "commit", set(), ()),
            ("git commit -a -m wip", "commit", {"a"}, ()),
            ("git commit -am wip", "commit", {"a"}, ()),
            ("git commit -qam wip", "commit", {"a", "q"}, ()),
            ("git commit -mwip -a", "commit", {"a"}, ()),
            ("git commit --all --message=wip", "commit", {"a"}, ()),
            ("git commit --al --message wip", "commit", set(), ()),  # ambiguous
            ("git commit --amend --no-edit", "commit", {"amend", "no-edit"}, ()),
            ("git commit --amen -C HEAD", "commit", {"amend"}, ()),
            ("git commit -m x -- Data/a.accdb", "commit", set(), ("Data/a.accdb",)),
            ("git commit -m x Data/a.accdb", "commit", set(), ("Data/a.accdb",)),
            ("git commit -o -m x a b", "commit", {"o"}, ("a", "b")),
            ("git commit --inc -m x a", "commit", {"i"}, ("a",)),
            ("git commit -p -m x", "commit", {"p"}, ()),
            ("git commit -uno -a -m x", "commit", {"a"}, ()),
            ("git commit -F msg.txt -a", "commit", {"a"}, ()),
            ("git -c user.name=x commit -am y", "commit", {"a"}, ()),
            ("git -C sub commit -m y", "commit", set(), ()),
            ("/usr/bin/git commit -m y", "commit", set(), ()),
            ("git.exe commit -m y", "commit", set(), ()),
            ("/usr/lib/git-core/git-commit -am y", "commit", {"a"}, ()),
            ("git-merge feature", "merge", set(), ("feature",)),
            (
                "git commit-tree HEAD^{tree} -p HEAD -m x",
                "commit-tree",
                set(),
                ("HEAD^{tree}",),
            ),
            ("git merge --no-ff feature", "merge", {"no-ff"}, ("feature",)),
            ("git merge -n feature", "merge", {"n"}, ("feature",)),
            ("git merge --continue", "merge", {"continue"}, ()),
            ("git rebase main", "rebase", set(), ("main",)),
            ("git rebase --onto main old feature", "rebase", set(), ("old", "feature")),
            ("git cherry-pick abc123", "cherry-pick", set(), ("abc123",)),
            ("git cherry-pick a..b", "cherry-pick", set(), ("a..b",)),
            ("git revert HEAD", "revert", set(), ("HEAD",)),
            ("git am 0001-x.patch", "am", set(), ("0001-x.patch",)),
            ("git ci -m x", "commit", {"a"}, ()),
            ("git nested -m x", "commit", {"a", "q"}, ()),
            ("git -c alias.zz=commit zz -m y", "commit", set(), ()),
        ],
    )
    def test_accepts_commit_spellings(self, command, kind, flags, operands):
        """The intent names the kind, the options that choose content, the paths."""
        found = intent(command)
        assert found is not None
        assert found.kind == kind
        assert flags <= found.flags
        assert found.operands == operands

    @pytest.mark.parametrize(
        "command",
        [
            "git status",
            "git stash",
            "git stash push -m x",
            "git notes add -m x",
            "git commit --dry-run -a",
            "git merge --squash feature",
            "git merge --no-commit feature",
            "git merge --ff-only feature",
            "git merge --abort",
            "git rebase --abort",
            "git cherry-pick -n abc",
            "git cherry-pick --no-commit abc",
            "git revert --no-commit HEAD",
            "git co main",
            "git unknown-thing",
            "git",
            "gitk",
            "grep commit x",
        ],
    )
    def test_rejects_non_commits(self, command):
        """Stashes, notes, dry runs, aborts and staging-only spellings make no commit."""
        assert intent(command) is None

    @pytest.mark.parametrize(
        ("command", "problem"),
        [
            ("git --git-dir=/x commit -m y", "--git-dir"),
            ("git --work-tree /x commit -m y", "--work-tree"),
            ("git fast-import", "fast-import"),
            ("git filter-branch --tree-filter x HEAD", "filter-branch"),
            ("git commit --pathspec-from-file=list", "pathspec-from-file"),
            ("git commit --al -m x", "ambiguous"),
            ("git shell", "shell command"),
            ("git loop", "loops"),
        ],
    )
    def test_uninspectable_commits_carry_a_problem(self, command, problem):
        """What guard cannot follow is still a commit, with the reason it is refused."""
        found = intent(command)
        assert found is not None
        assert found.problem is not None
        assert problem in found.problem

    def test_directory_joins_each_dash_c(self):
        """``-C a -C b`` runs in a/b, as git does."""
        assert intent("git -C a -C b commit -m x").directory == "a/b"
        assert intent("git -C a -C /abs commit -m x").directory == "/abs"

    def test_messages_are_kept_for_the_secret_scan(self):
        """``-m`` values go into the commit, so they are scanned too."""
        found = intent("git commit -m one -m two")
        assert found.messages == ("one", "two")

    def test_without_alias_lookup_aliases_are_not_followed(self):
        """A replay has no repository: unknown names are not commits there."""
        assert commit_intent(["git", "ci", "-m", "x"], None) is None


class TestAddBeforeCommit:
    """``git add`` before a commit in one command line is followed."""

    @pytest.mark.parametrize(
        ("command", "specs", "tracked_only", "force"),
        [
            ("git add -A", (":/",), False, False),
            ("git add --all", (":/",), False, False),
            ("git add .", (".",), False, False),
            ("git add -u", (":/",), True, False),
            ("git add -f Data/x.accdb", ("Data/x.accdb",), False, True),
            ("git stage src", ("src",), False, False),
            ("git add -p", (":/",), True, False),
        ],
    )
    def test_accepts_adds(self, command, specs, tracked_only, force):
        """The staged set is described by its pathspecs and options."""
        found = add_intent(shlex.split(command))
        assert found is not None
        assert (found.pathspecs, found.tracked_only, found.force) == (
            specs,
            tracked_only,
            force,
        )

    @pytest.mark.parametrize(
        "command", ["git add", "git add -n .", "git add -N x", "git status"]
    )
    def test_rejects_adds_that_stage_nothing(self, command):
        """A dry run, intent-to-add or no paths stage no content."""
        assert add_intent(shlex.split(command)) is None
