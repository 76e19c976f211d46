"""cmd.exe command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from statetrace_guard.classify.argv import classify_argv
from statetrace_guard.classify.cmd import classify_line, split_line, split_words
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import ClassifyContext


@pytest.fixture
def ctx(tmp_path: Path) -> ClassifyContext:
    ws = str(tmp_path / "ws")
    return ClassifyContext(ws, ws)


class TestSplit:
    @pytest.mark.parametrize(
        ("line", "parts"),
        [
            ("a & b", ["a", "b"]),
            ("a && b || c | d", ["a", "b", "c", "d"]),
            ('echo "a & b" & c', ['echo "a & b"', "c"]),
            ("echo a^&b", ["echo a^&b"]),
            ("", []),
        ],
    )
    def test_accepts_separators(self, line, parts):
        """Separators split outside quotes only; ^ escapes."""
        assert split_line(line) == parts

    def test_variables_are_not_static(self):
        """%VAR% and !VAR! make a word non-static."""
        words, _ = split_words("%X% !Y! z")
        assert [w.static for w in words] == [False, False, True]

    def test_redirect_targets(self):
        """> and >> to files are redirects; nul is not."""
        words, redirects = split_words("echo x > out.txt 2> nul")
        assert [w.text for w in words] == ["echo", "x"]
        assert redirects == ["out.txt"]


class TestClassify:
    def test_builtins(self, ctx):
        """cmd builtins get cmd specs."""
        found = classify_line("dir & del x", ctx, classify_words)
        assert [c.spec for c in found] == ["cmd:dir", "cmd:del"]

    def test_native_programs(self, ctx):
        """Other programs go through the native classifier."""
        found = classify_line("curl x.com", ctx, classify_words)
        assert "network" in {str(e) for e in found[0].effects}

    def test_redirect_write(self, ctx):
        """A redirect adds write to the part."""
        found = classify_line("echo x > f", ctx, classify_words)
        assert found[0].redirects == ("f",)

    @pytest.mark.parametrize("argv", [["cmd"], ["cmd.exe", "/q"]])
    def test_rejects_without_c(self, argv, ctx):
        """cmd without /c reads stdin: dynamic."""
        assert "dynamic" in {str(e) for e in classify_argv(argv, ctx).effects}
