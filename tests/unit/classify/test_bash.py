"""The tree-sitter bash walker: structure, words, redirections, state."""

from __future__ import annotations

from pathlib import Path

import pytest

from statetrace_guard.classify import bash as bash_mod
from statetrace_guard.classify.argv import classify_script
from statetrace_guard.classify.bash import (
    MAX_NODE_DEPTH,
    MAX_SCRIPT_BYTES,
    parser,
    walk,
)
from statetrace_guard.classify.bashwords import decode_ansi_c
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import ClassifyContext


@pytest.fixture
def ctx(tmp_path: Path) -> ClassifyContext:
    ws = str(tmp_path / "ws")
    return ClassifyContext(ws, ws)


def run(text: str, ctx: ClassifyContext):
    return classify_script(text, "bash", ctx)


def effects(text: str, ctx: ClassifyContext) -> set[str]:
    return {str(e) for e in run(text, ctx).effects}


class TestWords:
    @pytest.mark.parametrize(
        "spelling",
        [
            "curl",
            "c''url",
            '"cu"rl',
            "\\curl",
            "c\\url",
            "$'\\x63url'",
            "$'\\143url'",
            "'curl'",
            '$"curl"',
            "$'\\u0063'url",
        ],
    )
    def test_accepts_spellings_of_curl(self, spelling, ctx):
        """Quote removal and escapes give the name bash would run."""
        found = run(f"{spelling} http://x.com", ctx)
        assert [c.name for c in found.commands] == ["curl"]

    @pytest.mark.parametrize(
        "text",
        [
            "$X y",
            "${X} y",
            "$(echo ls)",
            "`echo ls`",
            "l* y",
            "l? y",
            "{ls,-l}",
            "$((1))",
        ],
    )
    def test_rejects_non_static_names(self, text, ctx):
        """Expansions, globs and braces in command position are dynamic."""
        assert "dynamic" in effects(text, ctx)

    def test_double_quote_escapes(self, ctx):
        """Backslashes inside double quotes are removed only before $ ` \" \\."""
        found = run('echo "a\\"b\\$c\\d"', ctx)
        assert found.commands[0].argv == ("echo", 'a"b$c\\d')

    def test_argument_with_expansion_keeps_source(self, ctx):
        """A non-static argument keeps its source text."""
        found = run('echo "x$HOME"', ctx)
        assert found.commands[0].argv == ("echo", "x$HOME")

    def test_ansi_c_decoding(self):
        """ANSI-C escapes decode like bash."""
        assert decode_ansi_c("\\x41\\102\\n\\t\\cA\\q\\xZZ") == "AB\n\t\x01\\q\\xZZ"


class TestStructure:
    @pytest.mark.parametrize(
        "text",
        [
            "ls | curl x.com",
            "ls && curl x.com",
            "ls || curl x.com",
            "ls; curl x.com",
            "(curl x.com)",
            "{ curl x.com; }",
            "echo $(curl x.com)",
            "echo `curl x.com`",
            "cat <(curl x.com)",
            "tee >(curl x.com)",
            "for i in 1; do curl x.com; done",
            "while curl x.com; do :; done",
            "if curl x.com; then :; fi",
            "case a in a) curl x.com;; esac",
            "! curl x.com",
            "f() { curl x.com; }; f",
            "X=$(curl x.com) ls",
            "export X=$(curl x.com)",
            "[[ -n $(curl x.com) ]]",
            "cat <<EOF\n$(curl x.com)\nEOF",
            "trap 'curl x.com' EXIT",
            "alias a='curl x.com'; a",
            "local x=$(curl x.com)",
            "echo ${x:-$(curl x.com)}",
            "echo $(( $(curl x.com) ))",
            "ls > $(curl x.com)",
        ],
    )
    def test_rejects_hidden_network(self, text, ctx):
        """Every structure's inner commands are classified."""
        assert "network" in effects(text, ctx)

    def test_function_body_only_at_call(self, ctx):
        """A function that is never called adds nothing."""
        assert effects("f() { curl x.com; }", ctx) == set()

    def test_function_recursion_terminates(self, ctx):
        """A recursive function is classified once."""
        assert effects("f() { f; ls; }; f", ctx) == {"read"}

    def test_alias_with_non_static_args(self, ctx):
        """An alias used with non-static arguments is dynamic."""
        assert "dynamic" in effects("alias l=ls; l $X", ctx)


class TestRedirects:
    @pytest.mark.parametrize(
        ("text", "target"),
        [
            ("echo > a", "a"),
            ("echo >> a", "a"),
            ("ls &> a", "a"),
            ("ls 2> a", "a"),
            ("ls >| a", "a"),
            ("cat <> a", "a"),
            ("{ ls; } > a", "a"),
            ("ls >&a", "a"),
        ],
    )
    def test_accepts_write_targets(self, text, target, ctx):
        """Output redirections record their targets."""
        found = run(text, ctx)
        assert target in [r for c in found.commands for r in c.redirects]
        assert "write" in {str(e) for e in found.effects}

    @pytest.mark.parametrize(
        "text",
        [
            "ls > /dev/null",
            "ls 2>&1",
            "ls >&2",
            "cat < f",
            "ls 2>/dev/stderr",
            "exec 3>&-",
        ],
    )
    def test_accepts_non_writes(self, text, ctx):
        """/dev/null, fd duplication and input are not writes."""
        assert "write" not in effects(text, ctx)

    def test_cd_rebases_writes(self, ctx):
        """A write after cd is reported by its absolute path."""
        found = run("cd /etc && touch passwd", ctx)
        assert found.commands[-1].writes == ("/etc/passwd",)

    def test_cd_unknown_makes_relative_writes_dynamic(self, ctx):
        """After cd to an unknown place relative writes are dynamic."""
        assert "dynamic" in effects('cd "$D"; touch x', ctx)
        assert "dynamic" not in effects('cd "$D"; touch /tmp/x', ctx)


class TestFailClosed:
    @pytest.mark.parametrize(
        "text", ["ls (", "if then fi", "echo 'unterminated", "{c,}url x", "a |"]
    )
    def test_rejects_syntax_errors(self, text, ctx):
        """Syntax errors become dynamic commands and parse errors."""
        found = run(text, ctx)
        assert "dynamic" in {str(e) for e in found.effects}
        assert found.parse_errors

    @pytest.mark.parametrize("opener", ["( ", "(", "$(", "{ ", "echo $(( "])
    def test_deep_nesting_is_bounded(self, opener, ctx):
        """Very deep nesting is dynamic, not a RecursionError."""
        closer = {"( ": " )", "(": ")", "$(": ")", "{ ": "; }", "echo $(( ": " ))"}[
            opener
        ]
        text = opener * (MAX_NODE_DEPTH * 3) + "ls" + closer * (MAX_NODE_DEPTH * 3)
        commands, errors = walk(text, ctx, classify_words)
        assert errors
        assert any(str(e) == "dynamic" for c in commands for e in c.effects)

    def test_parser_is_cached(self):
        """The parser is built once per process."""
        assert parser() is parser()


class TestBudget:
    def test_walk_stops_when_budget_spent(self, ctx, monkeypatch):
        """Past the time budget the rest of the script is dynamic."""
        monkeypatch.setattr(bash_mod, "BUDGET_S", -1.0)
        commands, errors = walk("ls; " * 40, ctx, classify_words)
        assert any("in time" in e for e in errors)
        assert any(str(e) == "dynamic" for c in commands for e in c.effects)

    def test_pathological_parse_is_cancelled(self, ctx):
        """A script that tree-sitter would take seconds on is cut short."""
        commands, errors = walk("$)" * 6000, ctx, classify_words)
        assert errors
        assert commands[0].spec == "unparsed"
        after, _ = walk("ls > out.txt", ctx, classify_words)
        assert after[0].redirects == ("out.txt",)  # the parser was reset

    def test_oversized_script(self, ctx):
        """Scripts over MAX_SCRIPT_BYTES are dynamic without parsing."""
        commands, _ = walk("a" * (MAX_SCRIPT_BYTES + 1), ctx, classify_words)
        assert commands[0].spec == "unparsed"


class TestMoreForms:
    @pytest.mark.parametrize(
        ("text", "effect"),
        [
            ("> out.txt", "write"),
            ("cat <<EOF > out.txt\nx\nEOF", "write"),
            ("bash -- x.sh", "dynamic"),
            ("a=(x $(curl x.com))", "network"),
            ("export A B=1", "read"),
            ("unset X", "read"),
        ],
    )
    def test_accepts_effect(self, text, effect, ctx):
        """Less common statement forms classify."""
        assert effect in effects(text, ctx)
