"""classify_argv / classify_script / classify_words, and the bash corpus effects."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from statetrace_guard.classify import argv as entry_points
from statetrace_guard.classify import dispatch as argv_mod
from statetrace_guard.classify.argv import classify_argv, classify_script
from statetrace_guard.classify.dispatch import classify_words, program_name
from statetrace_guard.classify.model import ClassifyContext, Word

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def _cases() -> list[dict[str, object]]:
    out = []
    for path in sorted(CORPUS.glob("bash_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                case["file"] = path.name
                # Judged under kernel enforcement: the decision's effects
                # (loopback traffic is no network there), not the classifier's.
                if case.get("enforcement", "none") == "none":
                    out.append(case)
    return out


CASES = _cases()


@pytest.fixture
def ctx(tmp_path: Path) -> ClassifyContext:
    ws = str(tmp_path / "ws")
    return ClassifyContext(ws, ws)


def effects(argv: list[str], ctx: ClassifyContext) -> set[str]:
    return {str(e) for e in classify_argv(argv, ctx).effects}


class TestCorpus:
    def test_corpus_is_large_enough(self):
        """The bash/exec corpus holds at least 350 cases."""
        assert len(CASES) >= 350

    @pytest.mark.parametrize(
        "case", CASES, ids=[f"{c['file']}:{c['command']!r}"[:90] for c in CASES]
    )
    def test_accepts_corpus_effects(self, case, ctx):
        """Each corpus command gets exactly its listed non-read effects."""
        command = str(case["command"])
        argv = (
            ["bash", "-c", command] if case["shell"] == "bash" else shlex.split(command)
        )
        got = effects(argv, ctx)
        want = set(case["effects"])  # type: ignore[arg-type]
        assert got - {"read"} == want - {"read"}
        if want == {"read"}:
            assert got == {"read"}


class TestProgramName:
    @pytest.mark.parametrize(
        ("text", "name", "path"),
        [
            ("curl", "curl", None),
            ("/usr/bin/curl", "curl", "/usr/bin/curl"),
            ("\\curl", "curl", None),
            ("./cat", "cat", "./cat"),
            ("C:\\Tools\\curl.exe", "curl", "C:\\Tools\\curl.exe"),
            ("CURL.EXE", "curl", None),
        ],
    )
    def test_accepts_names(self, text, name, path):
        """Paths reduce to their basename; .exe and a leading backslash drop."""
        assert program_name(text) == (name, path)


class TestShells:
    @pytest.mark.parametrize(
        "argv",
        [
            ["bash", "-c", "curl x.com"],
            ["sh", "-ec", "curl x.com"],
            ["/bin/bash", "-lc", "curl x.com"],
            ["bash", "--norc", "-c", "curl x.com"],
            ["bash", "-o", "errexit", "-c", "curl x.com"],
            ["busybox", "sh", "-c", "curl x.com"],
            ["zsh", "-c", "bash -c 'sh -c \"curl x.com\"'"],
        ],
    )
    def test_rejects_inline_network(self, argv, ctx):
        """Inline scripts of any POSIX shell are parsed, however nested."""
        assert "network" in effects(argv, ctx)

    def test_script_file_is_named(self, ctx):
        """bash x.sh carries the workspace-relative script path for policy rules."""
        found = classify_argv(["bash", "./Tools/../Tools/run.sh"], ctx)
        script = next(c for c in found.commands if c.spec == "script")
        assert script.script == "Tools/run.sh"
        assert "dynamic" in {str(e) for e in script.effects}

    def test_script_outside_workspace_has_no_path(self, ctx):
        """A script outside the workspace gets no script path."""
        found = classify_argv(["sh", "/etc/x.sh"], ctx)
        assert found.commands[-1].script is None

    @pytest.mark.parametrize(
        "argv",
        [
            ["bash"],
            ["bash", "-s"],
            ["sh", "-"],
            ["bash", "--rcfile", "x"],
            ["fish", "-c", "ls"],
        ],
    )
    def test_rejects_stdin_and_unknown_shells(self, argv, ctx):
        """A shell reading stdin, a startup file or an unparsed dialect is dynamic."""
        assert "dynamic" in effects(argv, ctx)

    def test_depth_is_bounded(self, ctx):
        """Nesting beyond MAX_DEPTH is dynamic, not a crash."""
        script = "ls"
        for _ in range(argv_mod.MAX_DEPTH + 3):
            script = f"bash -c {shlex.quote(script)}"
        assert "dynamic" in effects(["bash", "-c", script], ctx)

    def test_pwsh_without_classifier_fails_closed(self, ctx, monkeypatch):
        """Until the PowerShell classifier exists, pwsh is dynamic."""
        monkeypatch.setitem(sys.modules, "statetrace_guard.classify.powershell", None)
        assert "dynamic" in effects(["pwsh", "-c", "Get-ChildItem"], ctx)
        assert "dynamic" in effects(["bash", "-c", "pwsh -c 'gci'"], ctx)
        found = classify_script("Get-ChildItem", "pwsh", ctx)
        assert "dynamic" in {str(e) for e in found.effects}

    def test_pwsh_non_static_argument(self, ctx):
        """pwsh with a variable argument is dynamic before the PS parser sees it."""
        assert "dynamic" in effects(["bash", "-c", 'pwsh -c "$X"'], ctx)


class TestClassifyWords:
    def test_empty(self, ctx):
        """No words, no commands."""
        assert classify_words([], ctx, "exec") == []

    def test_wrapper_then_wrapped(self, ctx):
        """A wrapper is returned first; the wrapped command carries the effect."""
        found = classify_words(
            [Word("timeout"), Word("5"), Word("curl"), Word("x")], ctx, "exec"
        )
        assert [c.name for c in found] == ["timeout", "curl"]
        assert {str(e) for e in found[0].effects} == {"read"}
        assert "network" in {str(e) for e in found[1].effects}

    def test_non_static_name(self, ctx):
        """A non-static program name is dynamic."""
        found = classify_words([Word("$X", static=False)], ctx, "bash")
        assert found[0].spec == "dynamic-name"

    def test_unknown_program(self, ctx):
        """Unknown programs fail closed with spec 'unknown'."""
        found = classify_words([Word("frobnicate")], ctx, "exec")
        assert found[0].spec == "unknown"

    def test_writes_to_dev_null_are_reads(self, ctx):
        """A write tool aimed only at /dev/null is a read."""
        assert effects(["cp", "a", "/dev/null"], ctx) == {"read"}


class TestCache:
    def test_repeat_is_memoised(self, ctx):
        """The same script in the same context is classified once."""
        first = argv_mod.walk_bash("ls | wc -l", ctx)
        assert argv_mod.walk_bash("ls | wc -l", ctx) is first

    def test_cache_is_bounded(self, ctx, monkeypatch):
        """The memo is cleared when full."""
        monkeypatch.setattr(argv_mod, "_WALK_CACHE", {})
        monkeypatch.setattr(argv_mod, "_WALK_CACHE_SIZE", 2)
        for text in ("ls", "pwd", "id"):
            argv_mod.walk_bash(text, ctx)
        assert len(argv_mod._WALK_CACHE) == 1


class TestNeverRaises:
    def test_internal_error_becomes_dynamic(self, ctx, monkeypatch):
        """An unexpected exception inside is reported as one dynamic command."""

        def boom(*_a, **_k):
            raise RuntimeError("bug")

        monkeypatch.setattr(entry_points, "classify_words", boom)
        assert effects(["ls"], ctx) == {"dynamic"}
        monkeypatch.setattr(argv_mod.bash, "walk", boom)
        monkeypatch.setattr(argv_mod, "_WALK_CACHE", {})
        found = classify_script("ls", "bash", ctx)
        assert found.commands[0].spec == "unparsed"

    def test_empty_argv(self, ctx):
        """An empty argv classifies to nothing."""
        assert classify_argv([], ctx).commands == ()
