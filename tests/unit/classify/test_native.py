"""Argument-aware specs: native tools, wrappers, git, interpreters, sed, paths."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from statetrace_guard.classify.argv import classify_argv
from statetrace_guard.classify.dispatch import _lookup
from statetrace_guard.classify.environment import dangerous_env
from statetrace_guard.classify.model import ClassifyContext
from statetrace_guard.classify.paths import (
    is_within,
    normalize_script_path,
    resolve_path,
)
from statetrace_guard.classify.registry import builtin_knowledge
from statetrace_guard.classify.sedscan import scan_sed


def lookup(name: str):
    found = _lookup(builtin_knowledge(), name, "exec")
    return found[0] if found else None


@pytest.fixture
def ctx(tmp_path: Path) -> ClassifyContext:
    ws = str(tmp_path / "ws")
    return ClassifyContext(ws, ws)


def first(command: str, ctx: ClassifyContext, name: str | None = None):
    found = classify_argv(shlex.split(command), ctx).commands
    return [c for c in found if name is None or c.name == name][-1]


def effects(command: str, ctx: ClassifyContext) -> set[str]:
    return {str(e) for e in classify_argv(shlex.split(command), ctx).effects}


class TestTable:
    def test_every_posix_name_resolves(self):
        """Every name and alias of the POSIX namespace resolves to an entry."""
        names = builtin_knowledge().names("posix")
        assert all(lookup(name) is not None for name in names)

    @pytest.mark.parametrize("name", ["python3.12", "perl5.36", "node18"])
    def test_versioned_interpreters(self, name):
        """Versioned interpreter names resolve to their family."""
        assert lookup(name) is lookup(name.rstrip("0123456789."))

    def test_unknown(self):
        """Unknown names have no spec."""
        assert lookup("frobnicate") is None


class TestWrites:
    @pytest.mark.parametrize(
        ("command", "writes"),
        [
            ("cp a b c", ("c",)),
            ("cp -t dir a b", ("dir",)),
            ("mv a b", ("a", "b")),
            ("rm -rf x y", ("x", "y")),
            ("tee -a f g", ("f", "g")),
            ("dd if=a of=b", ("b",)),
            ("sort -o out f", ("out",)),
            ("sort -oout f", ("out",)),
            ("chmod 644 f", ("f",)),
            ("chmod --reference=r f", ("f",)),
            ("truncate -s 0 f", ("f",)),
            ("sed -i s/a/b/ f g", ("f", "g")),
            ("sed -n w/tmp/o f", ("/tmp/o",)),
            ("tar -xf a.tar -C out", ("out",)),
            ("tar -cf out.tar src", ("out.tar",)),
            ("unzip a.zip -d d", ("d",)),
            ("patch -o out", ("out",)),
            ("find . -fprint f", ("f",)),
            ("awk '{print > \"o\"}'", ("o",)),
            ("curl -o f http://x", ("f",)),
            ("git diff --output=p", ("p",)),
            ("split big part", ("part",)),
            ("zip out.zip a", ("out.zip",)),
        ],
    )
    def test_accepts_targets(self, command, writes, ctx):
        """Write tools report the paths they write."""
        found = classify_argv(shlex.split(command), ctx).commands
        assert tuple(w for c in found for w in c.writes) == writes

    def test_sed_hint(self, ctx):
        """sed -i suggests the read-only form."""
        assert "sed -n" in (first("sed -i s/a/b/ f", ctx).hint or "")


class TestSedScanner:
    @pytest.mark.parametrize(
        ("program", "writes"),
        [
            ("s/a/b/g", []),
            ("1,5p", []),
            ("/x/,/y/d", []),
            ("s|a|b|w out", ["out"]),
            ("w out\np", ["out"]),
            ("$!N;P;D", []),
            ("y/abc/xyz/", []),
            ("/a/{s/b/c/;p}", []),
            ("a\\\ntext", []),
            ("\\,x,d", []),
            (":a;N;ba", []),
        ],
    )
    def test_accepts(self, program, writes):
        """The scanner finds written files in ordinary programs."""
        assert scan_sed(program) == writes

    @pytest.mark.parametrize(
        "program", ["e id", "1e id", "s/a/b/e", "s/a/b/ge", "s/a", "k", "s\\a\\b\\"]
    )
    def test_rejects(self, program):
        """e, unknown commands and unterminated programs are unknown."""
        assert scan_sed(program) is None


class TestGit:
    @pytest.mark.parametrize(
        "command",
        [
            "git status",
            "git log -5",
            "git branch",
            "git stash list",
            "git remote -v",
            "git -c color.ui=always log",
            "git config --list",
            "git",
        ],
    )
    def test_accepts_reads(self, command, ctx):
        """Read-only git forms are read."""
        assert effects(command, ctx) == {"read"}

    @pytest.mark.parametrize(
        "command",
        [
            "git -c core.pager=x log",
            "git --config-env=a=b log",
            "git -c alias.a=!x a",
            "git log --ext-diff",
            "git blah",
            "git rebase -x id main",
            "git config core.pager x",
            "git --git-dir=/x status",
        ],
    )
    def test_rejects_program_runners(self, command, ctx):
        """Options that run programs are dynamic."""
        assert "dynamic" in effects(command, ctx)

    def test_git_c_dir_is_the_write_target(self, ctx):
        """git -C dir writes under dir."""
        assert first("git -C sub commit -m x", ctx).writes == ("sub",)


class TestWrappers:
    @pytest.mark.parametrize(
        "name",
        [
            "LD_PRELOAD",
            "PATH",
            "BASH_ENV",
            "GIT_SSH_COMMAND",
            "STATETRACE_GUARD_LEVEL",
            "DYLD_X",
        ],
    )
    def test_dangerous_env(self, name):
        """Variables that change what runs (or guard's switches) are dangerous."""
        assert dangerous_env(name)

    @pytest.mark.parametrize(
        "name", ["STATETRACE_AGENT_ALLOW_NET", "STATETRACE_AGENT_ALLOW_INSTALL"]
    )
    def test_opt_ins_are_the_decisions(self, name):
        """The operator's opt-ins are judged by the decision (L3, when already 1)."""
        assert not dangerous_env(name)

    @pytest.mark.parametrize("name", ["LC_ALL", "GIT_AUTHOR_NAME", "FOO", "TZ"])
    def test_harmless_env(self, name):
        """Ordinary variables are not."""
        assert not dangerous_env(name)

    def test_env_sets_recorded(self, ctx):
        """env VAR=x cmd records the variable."""
        assert first("env A=1 B=2 ls", ctx, "env").env_sets == ("A", "B")

    def test_env_s_with_assignments(self, ctx):
        """env -S 'A=1 cmd' records the variable and runs the command."""
        found = classify_argv(["env", "-S", "A=1 curl x.com"], ctx)
        assert found.commands[0].env_sets == ("A",)
        assert "network" in {str(e) for e in found.effects}

    @pytest.mark.parametrize(
        "command",
        [
            "env -C /tmp ls",
            "env -S",
            "timeout",
            "xargs",
            "sudo",
            "find . -exec",
            "parallel ::: a",
        ],
    )
    def test_degenerate_forms_do_not_crash(self, command, ctx):
        """Wrappers with missing parts classify without error."""
        assert classify_argv(shlex.split(command), ctx).commands

    def test_xargs_replace_string(self, ctx):
        """xargs -I marks the replaced words as not static."""
        found = classify_argv(shlex.split("xargs -I % cp % /etc/"), ctx).commands
        assert found[-1].writes == ("/etc/",)


class TestInterpreters:
    @pytest.mark.parametrize(
        "command",
        [
            "python -c x",
            "python",
            "python -",
            "python3 -Wignore -c x",
            "perl -e x",
            "ruby -e x",
            "node -e x",
            "php -r x",
            "awk -f p",
            "awk 'BEGIN{system(\"x\")}'",
            "deno eval x",
        ],
    )
    def test_rejects_inline_code(self, command, ctx):
        """Inline or stdin code is dynamic."""
        assert "dynamic" in effects(command, ctx)

    def test_script_path(self, ctx):
        """python script.py names the script for policy rules."""
        assert first("python ./tools/x.py", ctx).script == "tools/x.py"

    @pytest.mark.parametrize(
        "command",
        [
            "python -V",
            "python -I -m json.tool f",
            "awk '{print}' f",
            "python3 -P -m pip list",
        ],
    )
    def test_accepts_reads(self, command, ctx):
        """Version queries and read-only modules (isolated from the cwd) are read."""
        assert effects(command, ctx) == {"read"}

    @pytest.mark.parametrize(
        "command", ["python -m json.tool f", "python3 -m pip list", "python -m venv v"]
    )
    def test_rejects_cwd_shadowing(self, command, ctx):
        """Without -I/-P, -m imports the module from the cwd first: project code."""
        assert "dynamic" in effects(command, ctx)


class TestPaths:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("Tools/X.ps1", "Tools/X.ps1"),
            ("./Tools/X.ps1", "Tools/X.ps1"),
            ("Tools\\..\\Tools\\X.ps1", "Tools/X.ps1"),
            (".\\Tools\\X.ps1", "Tools/X.ps1"),
            ("../x.sh", None),
            ("$X/x.sh", None),
            ("~/x.sh", None),
            ("C:\\x.ps1", None),
            (".", "."),
        ],
    )
    def test_normalize_script_path(self, raw, expected, ctx):
        """Script paths normalise to workspace-relative POSIX form."""
        assert normalize_script_path(raw, ctx) == expected

    def test_is_within(self):
        """is_within respects path boundaries."""
        assert is_within("/a/b", "/a")
        assert not is_within("/ab", "/a")
        assert is_within("/x", "/")

    def test_resolve_needs_cwd(self):
        """Relative paths need a known cwd."""
        assert resolve_path("x", "") is None
        assert resolve_path("//x/../y", "/") == "/y"


class TestEdgeForms:
    @pytest.mark.parametrize(
        ("script", "effect"),
        [
            ("dd $X", "dynamic"),
            ("zip -T out.zip a", "dynamic"),
            ("split --filter='sh' big", "dynamic"),
            ("git archive HEAD", "write"),
            ("git lfs pull", "network"),
            ("python -W ignore script.py", "dynamic"),
            ("python $X", "dynamic"),
            ("perl $X", "dynamic"),
            ("perl -w", "dynamic"),
            ("perl - x", "dynamic"),
            ("awk $P f", "dynamic"),
            ('awk "$P" f', "dynamic"),
            ("sed --expression=s/a/b/w/tmp/o f", "write"),
            ("less -o log f", "write"),
            ("date -s 2020-01-01", "dynamic"),
            ("hostname evil", "dynamic"),
            ("tar -xf $A", "dynamic"),
            ("tar -cf host:/a.tar .", "dynamic"),
            ("tar --extract --file=a.tar", "write"),
            ("tar --file=a.tar --list", "read"),
            ("source", "dynamic"),
            ("yq . f.yaml", "read"),
            ("ssh -F cfg host", "dynamic"),
            ("socat - SYSTEM:id", "dynamic"),
            ("scp -S ./x a h:b", "dynamic"),
            ("timeout $T curl x", "dynamic"),
            ("env $X curl", "dynamic"),
            ("env -S 'unterminated", "dynamic"),
            ("env -S $X", "dynamic"),
            ("watch $X", "dynamic"),
            ("script out.log", "write"),
            ("xargs $O rm", "dynamic"),
            ("xargs -i rm {}", "dynamic"),
            ("xargs --replace=@ rm @", "dynamic"),
            ("nice -- curl x", "network"),
            ("sed -n -e", "read"),
            ("sed -n '/a/I,/b/Mp' f", "read"),
            ("sed -n '\\%a\\%p' f", "read"),
            ("sed 'y/a/'", "dynamic"),
            ("sed -n 's/a/b/gw /tmp/o' f", "write"),
            ('cmd /c "echo ""a b"" > out"', "write"),
        ],
    )
    def test_accepts_effect(self, script, effect, ctx):
        """Rare option forms still get the right effect."""
        found = classify_argv(["bash", "-c", script], ctx)
        assert effect in {str(e) for e in found.effects}
