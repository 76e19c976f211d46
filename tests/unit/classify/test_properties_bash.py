"""Properties of the bash classifier, checked with hypothesis.

* never raises and stays under 50 ms of CPU on any input up to 64 KiB: the
  *unwrapped* walker is called, so the top-level safety net cannot hide a bug;
* monotonic: adding a pipeline stage, a list element or a wrapper never
  removes an effect, or else makes the whole command ``dynamic`` (which no
  level allows: the required level still does not drop);
* spelling-invariant: quote and escape variants of a command name give the
  same effects.
"""

from __future__ import annotations

import gc
import json
import re
import shlex
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statetrace_guard.classify.argv import classify_argv
from statetrace_guard.classify.bash import walk
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import ClassifyContext, Word

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
CTX = ClassifyContext("/ws/project", "/ws/project")
LIMIT_S = 0.050
MAX_BYTES = 64 * 1024
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _corpus_commands() -> list[str]:
    out = []
    for path in sorted(CORPUS.glob("bash_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            if case["shell"] == "bash":
                out.append(case["command"])
    return out


COMMANDS = _corpus_commands()
TOKENS = [
    "ls", "curl", "x.com", "|", "||", "&&", ";", "&", "\n", "(", ")", "{", "}", "$(",
    "`", "<(", ">(", ">", ">>", "<", "<<EOF\n", "\nEOF\n", "<<<", "2>&1", "'", '"', "$X",
    "${X:-", "$((", "))", "[[", "]]", "if", "then", "fi", "for", "in", "do", "done",
    "case", "esac", ";;", "while", "f()", "function", "export", "X=1", "alias", "trap",
    "eval", "\\", "$'\\x41'", "*", "?", "[a]", "{a,b}", "#", "!", "time", "cd", "/dev/tcp/h/1",
    "bash -c", "sh -c", "env -S", "xargs", "find . -exec", "{}", "\\;", "sed -i", "awk",
    "git -c", "coproc", "select", "declare -x", "local", "unset", "=", "$@", "$1",
]  # fmt: skip


def _timed_walk(text: str) -> float:
    # CPU time of the walk itself: a full collection of the test run's heap
    # can take 100 ms (guard pauses the collector around classification too).
    gc.disable()
    try:
        start = time.thread_time()
        commands, errors = walk(text, CTX, classify_words)
        elapsed = time.thread_time() - start
    finally:
        gc.enable()
    assert isinstance(commands, list)
    assert isinstance(errors, list)
    return elapsed


def _grow(chunk: str) -> str:
    """Repeat a chunk up to the 64 KiB ceiling (the size the property names)."""
    if not chunk:
        return chunk
    return (chunk * (MAX_BYTES // max(1, len(chunk.encode("utf-8", "surrogatepass")))))[
        :MAX_BYTES
    ]


def effects_of(text: str) -> set[str]:
    return {str(e) for e in classify_argv(["bash", "-c", text], CTX).effects}


class TestNeverRaises:
    @SETTINGS
    @given(st.binary(max_size=4096))
    def test_random_bytes(self, data):
        """Random bytes (as the OS would hand them over) never raise."""
        text = data.decode("utf-8", "surrogateescape")
        assert _timed_walk(text) < LIMIT_S

    @SETTINGS
    @given(
        st.lists(st.sampled_from(TOKENS), max_size=60), st.sampled_from([" ", "", "\n"])
    )
    def test_shell_shaped(self, tokens, sep):
        """Random shell-shaped token soups never raise."""
        assert _timed_walk(sep.join(tokens)) < LIMIT_S

    @SETTINGS
    @given(
        st.sampled_from(COMMANDS),
        st.lists(
            st.tuples(st.integers(0, 400), st.sampled_from([*TOKENS, "", "x"])),
            max_size=6,
        ),
    )
    def test_corpus_mutations(self, command, edits):
        """Corpus commands with random insertions never raise."""
        text = command
        for pos, token in edits:
            cut = pos % (len(text) + 1)
            text = text[:cut] + token + text[cut + 1 :]
        assert _timed_walk(text) < LIMIT_S

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30))
    def test_64k_inputs(self, tokens):
        """Token soups grown to 64 KiB stay under 50 ms."""
        assert _timed_walk(_grow(" ".join(tokens))) < LIMIT_S

    @pytest.mark.parametrize(
        "chunk",
        ["ls; ", "curl x.com | ", "( ", "$( ", "echo $(( ", "{ ", "'", '"', "\\", "a" * 100,
         "cat <<EOF\n", "f() { f; }; f; ", "x=$(ls) ", "bash -c 'ls'; ", "[[ -n x ]] && ",
         "\x00", "\udcff", "é", "$'\\x41' ", "<<<x ", "if true; then ", "case a in a) "],
    )  # fmt: skip
    def test_pathological_64k(self, chunk):
        """Hand-picked worst cases grown to 64 KiB stay under 50 ms."""
        text = _grow(chunk)
        _timed_walk(text[:100])  # warm the parser
        assert _timed_walk(text) < LIMIT_S

    @SETTINGS
    @given(st.lists(st.text(max_size=20), max_size=12))
    def test_random_argv(self, argv):
        """classify_words on random argv never raises."""
        classify_words([Word(a) for a in argv], CTX, "exec")


_PLAIN_HEAD = re.compile(r"^([a-z][a-z0-9_.-]*)(?=[ \t]|$)")
_KEYWORDS = frozenset({
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
    "esac", "function", "select", "coproc", "time", "export", "declare", "typeset",
    "local", "readonly", "unset", "alias", "in",
})  # fmt: skip
SPELLABLE = [
    c for c in COMMANDS if (m := _PLAIN_HEAD.match(c)) and m.group(1) not in _KEYWORDS
]


def _variants(name: str) -> list[str]:
    mid = max(1, len(name) // 2)
    hexed = "".join(f"\\x{ord(ch):02x}" for ch in name)
    return [
        f"'{name}'", f'"{name}"', f"{name[:mid]}''{name[mid:]}", f'{name[:mid]}""{name[mid:]}',
        f"\\{name}", f"{name[:mid]}\\{name[mid:]}", f"$'{hexed}'", f"'{name[:mid]}'{name[mid:]}",
    ]  # fmt: skip


class TestSpellingInvariant:
    def test_enough_commands(self):
        """The property runs over a large part of the corpus."""
        assert len(SPELLABLE) > 200

    @pytest.mark.parametrize("command", SPELLABLE)
    def test_variants_same_effects(self, command):
        """Quote and escape variants of the program name keep the effects."""
        match = _PLAIN_HEAD.match(command)
        assert match is not None
        name, rest = match.group(1), command[match.end() :]
        expected = effects_of(command)
        for variant in _variants(name):
            assert effects_of(variant + rest) == expected, variant


class TestMonotonic:
    @SETTINGS
    @given(st.sampled_from(COMMANDS), st.sampled_from(COMMANDS))
    def test_list_and_pipeline(self, first, second):
        """Adding a list element or a pipeline stage never removes an effect."""
        base = effects_of(first) - {"read"}
        for combined in (
            f"{first}\n{second}",
            f"{second}\n{first}",
            f"{{ {first}\n}} | {{ {second}\n}}",
            f"{{ {second}\n}} | {{ {first}\n}}",
            f"{{ {first}\n}} && {{ {second}\n}}",
        ):
            got = effects_of(combined)
            assert base <= got or "dynamic" in got, combined

    @SETTINGS
    @given(
        st.sampled_from(COMMANDS),
        st.sampled_from(
            [
                ["timeout", "5"],
                ["nice"],
                ["env"],
                ["nohup"],
                ["time"],
                ["stdbuf", "-oL"],
                ["command"],
                ["env", "A=1"],
                ["sudo"],
                ["xargs"],
                ["busybox"],
                ["setsid"],
            ]
        ),
    )
    def test_wrapper(self, command, wrapper):
        """Wrapping a command never removes an effect."""
        base = {str(e) for e in classify_argv(["bash", "-c", command], CTX).effects}
        wrapped = classify_argv([*wrapper, "bash", "-c", command], CTX)
        got = {str(e) for e in wrapped.effects}
        assert base - {"read"} <= got or "dynamic" in got

    @SETTINGS
    @given(st.sampled_from(COMMANDS))
    def test_nested_shell(self, command):
        """Running a command through another shell never removes an effect."""
        base = effects_of(command) - {"read"}
        got = effects_of(f"sh -c {shlex.quote(command)}")
        assert base <= got or "dynamic" in got
