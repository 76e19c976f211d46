"""The bash walker: tree-sitter-bash parse tree -> simple commands.

Every simple command anywhere in the script is classified with the shared
native classifier (``classify_words``, passed in to keep the modules
acyclic): pipelines, lists, subshells, substitutions, loops, conditionals,
function bodies at their call sites, aliases at their use, ``trap`` bodies.
Redirections add ``write`` (with the target) or ``network`` (``/dev/tcp``).
Any node kind outside :mod:`statetrace_guard.classify.nodes`, and any
ERROR or MISSING node, records a parse error and a ``dynamic`` command.

NOTE(bash): ``cd`` is followed. A write in a command that runs after
``cd DIR`` is reported with its absolute path; after a ``cd`` whose target
is unknown (``cd "$X"``, ``cd -``), relative writes are ``dynamic``.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING

from statetrace_guard.classify.assigns import arithmetic_names
from statetrace_guard.classify.bashwords import word_of
from statetrace_guard.classify.environment import dangerous_env, variable_kind
from statetrace_guard.classify.model import ClassifyContext, Shell, SimpleCommand, Word
from statetrace_guard.classify.nodes import (
    CONTAINERS,
    EXPRESSIONS,
    SUBSTITUTIONS,
    WORDS,
)
from statetrace_guard.classify.paths import SINK_FILES, resolve_path
from statetrace_guard.classify.verdict import texts, unresolvable
from statetrace_guard.levels import Effect

if TYPE_CHECKING:
    import tree_sitter
    from tree_sitter import Node

__all__ = [
    "BUDGET_S",
    "MAX_NODE_DEPTH",
    "MAX_SCRIPT_BYTES",
    "WordsClassifier",
    "parser",
    "walk",
]

WordsClassifier = Callable[
    [Sequence[Word], ClassifyContext, Shell], list[SimpleCommand]
]
MAX_NODE_DEPTH = (
    120  # statement nesting followed; deeper is dynamic (and no RecursionError)
)
_NOT_FILES = SINK_FILES
_SOCKETS = ("/dev/tcp/", "/dev/udp/")
# NOTE(bash): a time budget per top-level script. tree-sitter's error recovery
# is quadratic on some inputs (64 KiB of "))" takes seconds) and a script of
# thousands of commands takes longer than the 50 ms a command may cost. Past
# the budget the rest of the script is ``dynamic`` (fail closed); real
# commands finish in well under a millisecond, so only monsters are affected.
BUDGET_S = 0.030
# NOTE(bash): tree-sitter-bash's external scanner rescans the rest of the
# input per token on some malformed inputs ("$)$)$)..."), and its cancel hook
# fires only every hundred operations: past this size that first check can
# come after more than 50 ms. Longer inline scripts are ``dynamic``.
MAX_SCRIPT_BYTES = 16 * 1024
_PARSE_SHARE = 0.6  # of the budget, at most, for parsing
_SMALL = 256  # bytes: below this, parsing cannot blow up; skip the cancel hook
_DEADLINE: ContextVar[float | None] = ContextVar("bash_walk_deadline", default=None)
_DYN = frozenset({Effect.DYNAMIC})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_READ = frozenset({Effect.READ})


@cache
def parser() -> tree_sitter.Parser:
    """Return the process-wide bash parser (built once, on first use).

    The grammar loads here, not at import: exec'd argv never needs it.
    """
    import tree_sitter  # noqa: PLC0415 - load the grammar only when a script needs it
    import tree_sitter_bash  # noqa: PLC0415 - same

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def walk(
    text: str, ctx: ClassifyContext, classify: WordsClassifier
) -> tuple[list[SimpleCommand], list[str]]:
    """Parse ``text`` as bash and classify every simple command in it.

    Returns the commands in source order and the parse errors found.
    """
    outer = _DEADLINE.get()
    deadline = outer if outer is not None else time.thread_time() + BUDGET_S
    token = _DEADLINE.set(deadline)
    try:
        return _walk(text.encode("utf-8", "surrogatepass"), ctx, classify, deadline)
    finally:
        _DEADLINE.reset(token)


def _walk(
    src: bytes, ctx: ClassifyContext, classify: WordsClassifier, deadline: float
) -> tuple[list[SimpleCommand], list[str]]:
    tree = None if len(src) > MAX_SCRIPT_BYTES else _parse(src, deadline)
    if tree is None:
        why = "script too large or complex to parse in time"
        snippet = src[:80].decode("utf-8", "replace")
        failed = SimpleCommand((snippet,), "bash", "", _DYN, "unparsed", (why,))
        return [failed], [why]
    walker = _Walker(src, ctx, classify, deadline)
    walker.statement(tree.root_node, 0)
    walker.replay_traps()
    if tree.root_node.has_error and not walker.errors and not walker.excused:
        walker.fail(tree.root_node, "syntax error")
    return walker.out, walker.errors


def _parse(src: bytes, deadline: float) -> tree_sitter.Tree | None:
    """Parse ``src``; ``None`` when parsing would outlast the deadline."""
    if len(src) < _SMALL:
        return parser().parse(src)

    def read(offset: int, _point: tuple[int, int]) -> bytes:
        return src[offset : offset + 4096]

    parse_by = min(deadline, time.thread_time() + BUDGET_S * _PARSE_SHARE)

    def cancel(_offset: int, _has_error: bool) -> bool:
        return time.thread_time() > parse_by

    try:
        return parser().parse(read, progress_callback=cancel)
    except ValueError:  # tree-sitter reports a cancelled parse this way
        # A cancelled parser resumes the old input on its next call: reset it.
        parser().reset()
        return None


class _Redirects:
    """What the redirections of one command do."""

    __slots__ = ("network", "socket", "targets")

    def __init__(self) -> None:
        self.targets: list[Word] = []
        self.network = False
        self.socket = False  # a path known only at run time may be /dev/tcp


class _Walker:
    """One walk over one parse tree; state is the script's own (cwd, functions)."""

    def __init__(
        self,
        src: bytes,
        ctx: ClassifyContext,
        classify: WordsClassifier,
        deadline: float,
    ) -> None:
        self.src = src
        self.deadline = deadline
        self.stopped = False
        self.ticks = 0
        self.ctx = ctx
        self.cwd = ctx.cwd
        self.classify = classify
        self.out: list[SimpleCommand] = []
        self.errors: list[str] = []
        # NOTE(bash): every definition of a name is kept, not the last one: a
        # redefinition in a dead branch or a subshell (`f() { curl x; };
        # (f() { :; }); f`) does not replace what runs. A call classifies all.
        self.functions: dict[str, list[tuple[bytes, Node]]] = {}
        self.aliases: dict[str, list[str]] = {}
        self.tainted: set[str] = set()  # variables set from run-time text
        self.integers: set[str] = set()  # declare -i: assignments evaluate
        self.traps: list[str] = []
        self.values: dict[str, str] = {}  # assigned source text, for arithmetic
        self.assigned: dict[str, Word] = {}  # assigned values, as words
        self.nest = 0  # trap and alias sources parsed inside this walk
        self.calling: set[str] = set()
        self.excused = False  # an ERROR node we understood (``<>``)

    # -- failures ---------------------------------------------------------
    def fail(self, node: Node, why: str) -> None:
        """Record a parse error and a dynamic command for ``node``."""
        end = node.start_byte + 80
        snippet = self.src[node.start_byte : end].decode("utf-8", "replace")
        self.errors.append(f"{why} at byte {node.start_byte}: {snippet!r}")
        self.out.append(
            SimpleCommand(
                (snippet,), "bash", "", _DYN, "unparsed", (f"{why}: fail closed",)
            )
        )

    def text(self, node: Node) -> str:
        """Return the source text of ``node``."""
        return self.src[node.start_byte : node.end_byte].decode(
            "utf-8", "surrogateescape"
        )

    # -- statements -------------------------------------------------------
    def statement(self, node: Node, depth: int) -> None:  # noqa: C901 - a dispatch table
        """Classify one statement-level node."""
        kind = node.type
        if self.stopped or self.out_of_time(node):
            return
        if depth > MAX_NODE_DEPTH:
            self.fail(node, "nesting too deep")
        elif node.is_error or node.is_missing:
            self.fail(node, "syntax error")
        elif kind == "command":
            self.command(node, [], depth)
        elif kind == "redirected_statement":
            self.redirected(node, depth)
        elif kind in ("declaration_command", "unset_command"):
            self.declaration(node, depth)
        elif kind == "function_definition":
            self.define(node)
        elif kind in ("variable_assignment", "variable_assignments"):
            self.assignments(node, depth)
        elif kind in CONTAINERS or kind in SUBSTITUTIONS:
            self.container(node, depth)
        elif kind in EXPRESSIONS:
            self.scan(node, depth)
        else:
            self.fail(node, f"unknown construct {kind}")

    def container(self, node: Node, depth: int) -> None:
        """Walk a compound node; loops and ``((...))`` assign variables first."""
        kind = node.type
        if kind == "for_statement":  # also ``select``: both assign the variable
            variable = node.child_by_field_name("variable")
            if variable is not None:
                self.emit_assignments([self.text(variable)], self.text(variable))
                self.taint_loop(node, self.text(variable))
        elif kind == "test_command" and self.text(node).startswith("[["):
            self.test_evaluations(node)
        elif kind == "c_style_for_statement" or (
            kind == "compound_statement" and self.text(node).startswith("((")
        ):
            self.arithmetic(node)
        for child in node.named_children:
            self.statement(child, depth + 1)

    def arithmetic(self, node: Node) -> None:
        """``((X=1))``, ``$((X++))``, ``for ((i=0;;))``: record what is assigned."""
        body = node.child_by_field_name("body")
        end = body.start_byte if body is not None else node.end_byte
        text = self.src[node.start_byte : end].decode("utf-8", "surrogateescape")
        names = self.arithmetic_targets(text)
        if names:
            self.emit_assignments(names, text)
        self.evaluates(text)

    # -- evaluation paths -------------------------------------------------
    # NOTE(bash): bash evaluates some text a second time: arithmetic
    # ($((x)), ((x)), let, [[ x -eq y ]], declare -i, array subscripts)
    # evaluates a variable's *value* as an expression, whose subscripts run
    # command substitutions (x='a[$(id)]'; echo $((x)) runs id); ${x@P} and
    # ${!x} expand the value again. The parse never sees that text, so such
    # a use is dynamic when the text is known to hold $( or `, or comes from
    # run time (a command's output, read, a loop over a substitution). A
    # variable the script never assigns comes from the runtime's environment.
    def evaluates(self, text: str, why: str = "evaluates") -> None:
        """Record a dynamic command when evaluating ``text`` may run code."""
        risk = self.evaluation_risk(text)
        if risk is not None:
            reason = f"bash {why} {risk}"
            self.out.append(
                SimpleCommand(
                    (text[:80],), "bash", "", _DYN, "bash:evaluation", (reason,)
                )
            )

    def evaluation_risk(self, text: str) -> str | None:
        """Why evaluating ``text`` (an expression) may run code, else ``None``."""
        if _SUBSTITUTION.search(text):
            return "a command's output or a subscript that runs commands"
        seen: set[str] = set()
        pending = [text]
        while pending and len(seen) < 64:  # noqa: PLR2004 - a bound on chains
            for ref in _IDENT.findall(pending.pop()):
                if ref in seen:
                    continue
                seen.add(ref)
                if ref in self.tainted:
                    return f"{ref}, whose value is known only at run time"
                value = self.values.get(ref)
                if value is None:
                    continue
                if _SUBSTITUTION.search(value):
                    return f"{ref}, whose value runs commands when evaluated"
                pending.append(value)
        return None

    def runs_substitution(self, node: Node) -> bool:
        """A value holding a command's output, or a variable set at run time."""
        for child in _descendants(node):
            if child.type in SUBSTITUTIONS:
                return True
            if child.type == "variable_name" and self.text(child) in self.tainted:
                return True
        return False

    def taint_loop(self, node: Node, variable: str) -> None:
        """``for x in $(cmd)``: x holds run-time text."""
        words = list(node.children_by_field_name("value"))
        if any(not word_of(self.src, w).static for w in words):
            self.tainted.add(variable)

    def test_evaluations(self, node: Node) -> None:
        """``[[ a -eq b ]]`` evaluates both sides; ``[[ -v a[i] ]]`` the subscript."""
        for child in _descendants(node):
            if child.type == "binary_expression":
                operator = next(
                    (c for c in child.children if c.type == "test_operator"), None
                )
                if operator is not None and self.text(operator) in _ARITH_TESTS:
                    self.evaluates(self.text(child), "[[ ]] evaluates")
            elif child.type == "unary_expression":
                operator = next(
                    (c for c in child.children if c.type == "test_operator"), None
                )
                if operator is not None and self.text(operator) == "-v":
                    self.evaluates(self.text(child), "[[ -v ]] evaluates")

    def arithmetic_targets(self, text: str) -> list[str]:
        """Names an arithmetic text assigns, following variables' values.

        ``a='X=1'; (( a ))`` assigns X: bash evaluates a's value as an
        expression. Values assigned earlier in the script are followed.
        """
        names: dict[str, None] = dict.fromkeys(arithmetic_names(text))
        seen: set[str] = set()
        pending = [text]
        while pending and len(seen) < 64:  # noqa: PLR2004 - a bound on chains
            for ref in _IDENT.findall(pending.pop()):
                if ref in self.values and ref not in seen:
                    seen.add(ref)
                    names.update(dict.fromkeys(arithmetic_names(self.values[ref])))
                    pending.append(self.values[ref])
        return list(names)

    def expansion_assigns(self, node: Node) -> None:
        """Record what ``$((X=1))`` or ``${X:=1}`` assigns; check re-evaluation."""
        if node.type == "arithmetic_expansion":
            self.arithmetic(node)
        elif node.type == "expansion":
            self.default_assign(node)
            self.indirect(node)
        elif node.type == "subscript":
            index = node.child_by_field_name("index")
            if index is not None:
                self.evaluates(self.text(index), "evaluates the subscript")

    def indirect(self, node: Node) -> None:
        """``${x@P}`` expands x's value as a prompt; ``${!x}`` names a variable."""
        ops = [c.type for c in node.children if not c.is_named]
        name = next((c for c in node.named_children if c.type == "variable_name"), None)
        if name is None:
            return
        if ("@" in ops and "P" in ops) or (ops[1:2] == ["!"] and "@" not in ops):
            self.evaluates(self.text(name), "expands again")

    def default_assign(self, node: Node) -> None:
        """``${X:=1}`` and ``${X=1}`` assign X when it is unset (or empty)."""
        ops = [c.type for c in node.children if not c.is_named]
        if (":=" in ops or "=" in ops) and "!" in ops:
            why = "${!ref:=v} assigns the variable named by ref's value"
            self.out.append(
                SimpleCommand(
                    (self.text(node),), "bash", "", _DYN, "bash:assign", (why,)
                )
            )
        elif ":=" in ops or "=" in ops:
            name = next((c for c in node.named_children), None)
            if name is not None and name.type == "variable_name":
                self.emit_assignments([self.text(name)], self.text(node))

    def out_of_time(self, node: Node) -> bool:
        """Stop (and fail closed) once the script's time budget is spent."""
        self.ticks += 1
        # Reading the clock costs as much as a small command: look every 16th.
        if self.ticks & 15 or time.thread_time() <= self.deadline:
            return False
        self.stopped = True
        self.fail(node, "script too large to classify in time")
        return True

    def scan(self, node: Node, depth: int) -> None:
        """Classify the substitutions inside an expression; flag errors."""
        if node.named_child_count == 0 and not node.has_error:
            return  # a leaf word: the hot path, nothing inside to run
        if self.stopped or self.out_of_time(node):
            return
        if depth > MAX_NODE_DEPTH:
            self.fail(node, "nesting too deep")
            return
        if node.is_error or node.is_missing:
            self.fail(node, "syntax error")
            return
        if node.type in SUBSTITUTIONS:
            self.statement(node, depth + 1)
            return
        self.expansion_assigns(node)
        if not node.has_error and not _may_hold_substitution(node):
            return
        for child in node.named_children:
            if child.type in (
                "heredoc_redirect",
                "herestring_redirect",
                "file_redirect",
            ):
                self.redirect(child, _Redirects(), depth)
            elif child.type in EXPRESSIONS or child.type in SUBSTITUTIONS:
                self.scan(child, depth + 1)
            else:
                self.statement(child, depth + 1)

    def define(self, node: Node) -> None:
        """Remember a function body; it is classified where it is called.

        ``command_not_found_handle`` runs for any command bash cannot find:
        its body is classified as called (at the end, every function known).
        """
        name = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name is None or body is None:
            self.fail(node, "incomplete function definition")
            return
        label = self.text(name)
        self.functions.setdefault(label, []).append((self.src, body))
        if label == "command_not_found_handle":
            self.traps.append(label)

    def assignments(self, node: Node, depth: int) -> None:
        """``X=1`` alone: sets a shell variable (exported ones reach children)."""
        nodes = [node] if node.type == "variable_assignment" else node.named_children
        names = [self.assign_name(n, depth) for n in nodes]
        self.emit_assignments(names, self.text(node))

    def assign_name(self, node: Node, depth: int) -> str:
        """Return an assignment's variable name and scan its value."""
        if node.type != "variable_assignment":
            self.scan(node, depth + 1)
            return ""
        value = node.child_by_field_name("value")
        if value is not None:
            self.scan(value, depth + 1)
        name = node.child_by_field_name("name")
        bare = self.text(name).split("[", 1)[0] if name is not None else ""
        if bare and value is not None:
            self.values[bare] = self.text(value)
            self.assigned[bare] = (
                word_of(self.src, value)
                if value.type in WORDS
                else Word(self.text(value), static=False)
            )
            if self.runs_substitution(value):
                self.tainted.add(bare)
            else:
                self.tainted.discard(bare)
            if bare in self.integers:
                self.evaluates(self.text(value), f"evaluates (declare -i {bare})")
        if name is not None and name.type == "subscript":
            self.expansion_assigns(name)
        return bare

    def emit_assignments(self, names: list[str], source: str) -> None:
        """Record a command that only assigns variables."""
        risky = [n for n in names if dangerous_env(n)]
        effects = _DYN if risky else _READ
        why = f"sets {', '.join(risky)}" if risky else "assigns shell variables"
        command = SimpleCommand(
            (source,),
            "bash",
            "",
            effects,
            "bash:assign",
            (why,),
            env_sets=tuple(n for n in names if n),
        )
        self.out.append(self.with_dir_writes(command, names))

    def with_dir_writes(
        self, command: SimpleCommand, names: list[str]
    ) -> SimpleCommand:
        """``TMPDIR=/x sort``: programs write into the directory TMPDIR names."""
        targets = [
            self.assigned.get(n, Word("$" + n, static=False))
            for n in names
            if n and variable_kind(n) == "write-dir"
        ]
        if not targets:
            return command
        effects = set(command.effects) | {Effect.WRITE}
        if any(unresolvable(t) for t in targets):
            effects.add(Effect.DYNAMIC)
        return replace(
            command,
            effects=frozenset(effects),
            writes=(*command.writes, *texts(targets)),
            reasons=(*command.reasons, "programs write into the directory it names"),
        )

    def redirected(self, node: Node, depth: int) -> None:
        """A statement with redirections: the body, then what they write."""
        body = node.child_by_field_name("body")
        redirects = node.children_by_field_name("redirect")
        self.check_errors(node)
        if body is not None and body.type == "command":
            self.command(body, redirects, depth)
            return
        if body is not None:
            self.statement(body, depth + 1)
        found = _Redirects()
        for child in redirects:
            self.redirect(child, found, depth)
        self.emit_redirect_only(found)

    def bare_newline(self, node: Node) -> bool:
        r"""Tell whether an unquoted word swallowed a newline.

        tree-sitter-bash lexes ``ls<newline>\rm x`` as one command whose
        argument is ``<newline>\rm``; bash runs two commands. Fail closed.
        """
        parts = node.children if node.type == "concatenation" else [node]
        for part in parts:
            if part.type != "word":
                continue
            raw = self.text(part)
            if "\n" in raw.replace("\\\n", ""):
                return True
        return False

    def check_errors(self, node: Node) -> None:
        """Fail on ERROR children, except ``<`` split from ``<>`` by the grammar."""
        children = node.children
        for i, child in enumerate(children):
            if not child.is_error:
                continue
            after = children[i + 1] if i + 1 < len(children) else None
            if (
                self.text(child).strip() == "<"
                and after is not None
                and after.type == "file_redirect"
                and after.start_byte == child.end_byte
                and self.text(after).startswith(">")
            ):
                self.excused = True  # "cmd <> f": the write to f is recorded
            else:
                self.fail(child, "syntax error")

    def emit_redirect_only(self, found: _Redirects) -> None:
        """Record the redirections of a compound statement as their own command."""
        if not found.targets and not found.network and not found.socket:
            return
        command = SimpleCommand(("<redirect>",), "bash", "", _READ, "bash:redirect")
        command = self.apply_redirects(command, found)
        self.out.append(self.rebase(command) if self.cwd != self.ctx.cwd else command)

    # -- redirections -----------------------------------------------------
    def redirect(self, node: Node, found: _Redirects, depth: int) -> None:
        """Record what one redirection node writes or connects to."""
        if node.type == "file_redirect":
            self.file_redirect(node, found, depth)
        elif node.type in ("heredoc_redirect", "herestring_redirect"):
            for child in node.named_children:
                if child.type == "file_redirect":
                    self.file_redirect(child, found, depth)
                elif child.type in EXPRESSIONS or child.type in SUBSTITUTIONS:
                    self.scan(child, depth + 1)
                else:
                    self.statement(child, depth + 1)
        else:
            self.statement(node, depth + 1)

    def file_redirect(self, node: Node, found: _Redirects, depth: int) -> None:
        """``>f``, ``>>f``, ``&>f``, ``<f``, ``<>f``, ``>&2``, ``3<>/dev/tcp/h/p``."""
        op = ""
        dest: Word | None = None
        for child in node.children:
            if child.type in WORDS:
                self.scan(child, depth + 1)
                if dest is not None:
                    # NOTE(bypass): bash takes exactly one word after a
                    # redirection operator; tree-sitter-bash swallows the
                    # next line into it (`cat < f` NL `\rm -rf x` hid the
                    # rm). Never trust a redirection with two destinations.
                    self.fail(child, "redirection with more than one target")
                dest = word_of(self.src, child)
            elif (
                child.type == "ERROR" and self.text(child).strip() == ">" and op == "<"
            ):
                op = "<>"  # tree-sitter-bash does not know the read-write operator
                self.excused = True
            elif child.is_error or child.is_missing:
                self.fail(child, "syntax error in redirection")
            elif not child.is_named:
                op = child.type
        if dest is not None:
            _place(op, dest, found)

    def apply_redirects(
        self, command: SimpleCommand, found: _Redirects
    ) -> SimpleCommand:
        """Add the redirections' effects and targets to ``command``."""
        effects = set(command.effects)
        if found.network:
            effects.add(Effect.NETWORK)
        if found.socket:
            effects.add(Effect.DYNAMIC)
        if found.targets:
            effects.add(Effect.WRITE)
        if any(unresolvable(t) for t in found.targets):
            effects.add(Effect.DYNAMIC)
        targets = tuple(t.text for t in found.targets)
        return replace(
            command,
            effects=frozenset(effects),
            redirects=(*command.redirects, *targets),
        )

    # -- commands ---------------------------------------------------------
    def command(self, node: Node, redirects: list[Node], depth: int) -> None:
        """Classify one simple command with its prefix assignments and redirections."""
        if self.stopped or self.out_of_time(node):
            return
        words: list[Word] = []
        names: list[str] = []
        found = _Redirects()
        for child in node.named_children:
            kind = child.type
            if kind == "variable_assignment":
                names.append(self.assign_name(child, depth))
            elif kind == "command_name":
                inner = child.named_children[0] if child.named_children else child
                self.scan(inner, depth + 1)
                words.append(word_of(self.src, inner))
            elif kind in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                self.redirect(child, found, depth)
            elif kind in WORDS:
                if self.bare_newline(child):
                    self.fail(child, "newline inside a word (grammar quirk)")
                self.scan(child, depth + 1)
                words.append(word_of(self.src, child))
            else:
                self.statement(child, depth + 1)
        for child in redirects:
            self.redirect(child, found, depth)
        start = len(self.out)
        if not words:
            self.emit_assignments(names, self.text(node))
        else:
            self.run(words, depth)
        self.finish(start, names, found)

    def finish(self, start: int, names: list[str], found: _Redirects) -> None:
        """Attach prefix assignments and redirections to the command just emitted."""
        if start >= len(self.out):
            return
        first = self.out[start]
        if names and first.spec != "bash:assign":
            risky = [n for n in names if dangerous_env(n)]
            effects = first.effects | _DYN if risky else first.effects
            # The prefix is what made it dynamic: say so first, or a block
            # would read "echo only reads ... needs never".
            said = (
                (f"{', '.join(risky)} set for {first.name} can change what it runs",)
                if risky
                else ()
            )
            first = replace(
                first,
                effects=effects,
                env_sets=(*first.env_sets, *[n for n in names if n]),
                reasons=(*said, *first.reasons),
            )
            first = self.with_dir_writes(first, names)
        if found.targets or found.network or found.socket:
            first = self.apply_redirects(first, found)
        self.out[start] = first
        if self.cwd != self.ctx.cwd:
            self.out[start:] = [self.rebase(c) for c in self.out[start:]]

    def rebase(self, command: SimpleCommand) -> SimpleCommand:
        """After ``cd``: report writes by absolute path, or ``dynamic`` if unknown.

        The command also says where it runs (its arguments are relative to
        that); a command a nested shell already placed keeps its own.
        """
        if command.cwd is None:
            command = replace(command, cwd=self.cwd)
        if not command.writes and not command.redirects:
            return command
        unknown = False

        def absolute(raw: str) -> str:
            nonlocal unknown
            resolved = resolve_path(raw, self.cwd)
            if resolved is None:
                unknown = unknown or not raw.startswith("/")
                return raw
            return resolved

        writes = tuple(absolute(w) for w in command.writes)
        targets = tuple(absolute(r) for r in command.redirects)
        effects = command.effects | _DYN if unknown else command.effects
        return replace(command, writes=writes, redirects=targets, effects=effects)

    def run(self, words: list[Word], depth: int) -> None:
        """Classify a command by its name: function, alias, trap, cd, or program."""
        head = words[0]
        name = head.text if head.static else ""
        if name in self.functions:
            self.call(name, words, depth)
        elif name in self.aliases:
            self.expand_alias(name, words, depth)
        elif name == "trap" and len(words) > 1:
            self.trap(words)
        elif name == "let":
            self.let(words)
        else:
            if name == "alias":
                self.define_aliases(words)
            if name in ("cd", "pushd", "popd"):
                self.change_dir(words)
            start = len(self.out)
            self.out.extend(self.classify(words, self.here(), "bash"))
            if name in _READER_NAMES:
                self.taint_reads(self.out[start:])

    def let(self, words: list[Word]) -> None:
        """``let a``: the builtin's own spec, plus what ``a``'s value assigns."""
        names = self.arithmetic_targets(" ".join(texts(words[1:])))
        if names:
            self.emit_assignments(names, " ".join(texts(words)))
        for word in words[1:]:
            self.evaluates(word.text, "let evaluates")
        self.out.extend(self.classify(words, self.here(), "bash"))

    def taint_reads(self, commands: list[SimpleCommand]) -> None:
        """``read x``, ``mapfile a``, ``printf -v x``: x holds run-time text."""
        for command in commands:
            if command.spec in _READERS:
                self.tainted.update(command.env_sets)

    def here(self) -> ClassifyContext:
        """The context for a command at this point of the script (cwd followed)."""
        return self.ctx if self.cwd == self.ctx.cwd else self.ctx.at(self.cwd)

    def call(self, name: str, words: list[Word], depth: int) -> None:
        """A call of a function defined earlier: classify its body here."""
        self.out.append(
            SimpleCommand(
                tuple(w.text for w in words),
                "bash",
                name,
                _READ,
                "bash:function",
                ("calls a shell function",),
            )
        )
        if name in self.calling:
            return  # recursion: the body's effects are already counted
        self.calling.add(name)
        saved = self.src
        try:
            for src, body in list(self.functions[name]):
                self.src = src  # the body may come from a trap or alias
                self.statement(body, depth + 1)
        finally:
            self.src = saved
            self.calling.discard(name)

    def define_aliases(self, words: list[Word]) -> None:
        """``alias x='...'``: remember the definition for later uses."""
        for word in words[1:]:
            name, sep, value = word.text.partition("=")
            if sep:
                value = value if word.static else "$UNKNOWN_ALIAS"
                self.aliases.setdefault(name, []).append(value)

    def expand_alias(self, name: str, words: list[Word], depth: int) -> None:
        """A use of an alias: classify its expansion as bash source."""
        if not all(w.static for w in words[1:]):
            self.out.append(
                SimpleCommand(
                    (name,),
                    "bash",
                    name,
                    _DYN,
                    "bash:alias",
                    ("alias used with non-static arguments",),
                )
            )
            return
        values = self.aliases.pop(name)  # popped: an alias never expands itself
        try:
            for value in values:
                source = " ".join([value, *(shlex.quote(w.text) for w in words[1:])])
                self.nested_source(source, depth)
        finally:
            self.aliases.setdefault(name, values)

    def trap(self, words: list[Word]) -> None:
        """``trap [-lp] [--] 'cmd' SIG``: the handler is code that will run."""
        args = list(words[1:])
        if args and args[0].static and args[0].text in ("-l", "-p", "-lp", "-pl"):
            args = []  # listing
        elif args and args[0].static and args[0].text == "--":
            args = args[1:]
        handler = args[0] if args else Word("-")
        self.out.append(
            SimpleCommand(
                tuple(w.text for w in words),
                "bash",
                "trap",
                _READ,
                "bash:trap",
                ("sets a signal handler",),
            )
        )
        if handler.static and handler.text in ("-", ""):
            return
        if not handler.static:
            self.out.append(
                SimpleCommand(
                    (handler.text,),
                    "bash",
                    "trap",
                    _DYN,
                    "bash:trap",
                    ("trap handler not static",),
                )
            )
            return
        self.traps.append(handler.text)
        self.nested_source(handler.text, 0)

    def replay_traps(self) -> None:
        """Classify trap handlers again at the end, with every function known.

        ``trap ls EXIT; ls() { curl x; }`` runs the function at exit.
        """
        if self.functions or self.aliases:
            for handler in list(self.traps):  # replays may add traps: no loop
                self.nested_source(handler, 0)

    def nested_source(self, source: str, depth: int) -> None:
        """Classify bash source found inside the script (alias, trap).

        It is walked by this walker, so it sees the script's functions and
        aliases, and functions it defines are seen by the rest.
        """
        src = source.encode("utf-8", "surrogatepass")
        if self.ctx.depth + self.nest >= 8:  # noqa: PLR2004 - same bound as nested shells
            tree = None
        else:
            tree = None if len(src) > MAX_SCRIPT_BYTES else _parse(src, self.deadline)
        if tree is None:
            self.out.append(
                SimpleCommand(
                    (source,), "bash", "", _DYN, "unparsed", ("nested too deep",)
                )
            )
            return
        saved, self.src = self.src, src
        self.nest += 1
        try:
            self.statement(tree.root_node, depth + 1)
            if tree.root_node.has_error and not self.errors:
                self.fail(tree.root_node, "syntax error")
        finally:
            self.src = saved
            self.nest -= 1

    def change_dir(self, words: list[Word]) -> None:
        """Follow ``cd``: later relative writes resolve against the new cwd."""
        args = [w for w in words[1:] if w.text not in ("-L", "-P", "-e", "-@", "--")]
        if (
            words[0].text != "cd"
            or len(args) != 1
            or not args[0].static
            or args[0].text == "-"
        ):
            self.cwd = ""
            return
        self.cwd = resolve_path(args[0].text, self.cwd) or ""

    def declaration(self, node: Node, depth: int) -> None:
        """``export``/``declare``/``local``/``readonly``/``unset``."""
        words: list[Word] = []
        flags = "".join(
            self.text(c)[1:]
            for c in node.named_children
            if c.type == "word" and self.text(c)[:1] in "-+"
        )
        if "i" in flags:  # declare -i x: every assignment to x is arithmetic
            for child in node.named_children:
                target = child.child_by_field_name("name") or child
                if child.type in ("variable_name", "variable_assignment"):
                    self.integers.add(self.text(target).split("[", 1)[0])
        for child in node.children:
            if not child.is_named:
                words.append(Word(child.type))
            elif child.type == "variable_assignment":
                self.assign_name(child, depth)
                words.append(Word(self.text(child)))
            elif child.type in EXPRESSIONS:
                self.scan(child, depth + 1)
                words.append(
                    word_of(self.src, child)
                    if child.type in WORDS
                    else Word(self.text(child))
                )
            else:
                self.statement(child, depth + 1)
        if words:
            ctx = self.ctx.at(self.cwd)
            self.out.extend(self.classify(words, ctx, "bash"))


# A command substitution in text: $( not followed by ( ($(( is arithmetic),
# or a backquote.
_SUBSTITUTION = re.compile(r"\$\((?!\()|`")
# [[ ]] operators whose operands bash evaluates as arithmetic.
_ARITH_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
# Builtins that set their variables from input (their values are run time).
_READER_NAMES = frozenset({"read", "mapfile", "readarray", "getopts", "printf", "wait"})
_READERS = frozenset(
    {"posix:read", "posix:mapfile", "posix:getopts", "posix:printf", "posix:wait"}
)


def _descendants(node: Node) -> list[Node]:
    """Every node below ``node`` (bounded by the tree, which is bounded)."""
    out: list[Node] = []
    pending = list(node.children)
    while pending:
        child = pending.pop()
        out.append(child)
        pending.extend(child.children)
    return out


def _place(op: str, dest: Word, found: _Redirects) -> None:
    """Record what redirecting with ``op`` to ``dest`` does.

    NOTE(bash): bash opens ``/dev/tcp/HOST/PORT`` itself; a path computed at
    run time (``< "$p"``, ``< /dev/$t/h/80``) whose known start could begin
    one may be a socket, for reading too.
    """
    if dest.text.startswith(_SOCKETS):
        found.network = True
        return
    if not dest.static and not (op in (">&", "<&") and _is_fd(dest.text)):
        known = _static_prefix(dest.text)
        if any(s.startswith(known) or known.startswith(s) for s in _SOCKETS):
            found.socket = True
    if op in ("<", "<&", "<&-", ">&-") or (op in (">&", "<&") and _is_fd(dest.text)):
        return
    if dest.text not in _NOT_FILES:
        found.targets.append(dest)


def _static_prefix(text: str) -> str:
    """The text of a word before its first expansion (quotes dropped)."""
    cut = min((i for i, ch in enumerate(text) if ch in "$`{~*?["), default=len(text))
    return text[:cut].replace('"', "").replace("'", "")


def _is_fd(text: str) -> bool:
    return text.isdigit() or text == "-" or (text[:-1].isdigit() and text.endswith("-"))


def _may_hold_substitution(node: Node) -> bool:
    """Cheap pre-check: only nodes with children can hold a substitution."""
    return node.named_child_count > 0
