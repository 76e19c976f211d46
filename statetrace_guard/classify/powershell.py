"""PowerShell: ``pwsh`` command lines and scripts -> simple commands.

``classify_pwsh_argv`` reads pwsh's own options (``-Command``, ``-File``,
``-EncodedCommand`` ...); ``classify_pwsh_script`` parses a script with
tree-sitter-powershell and walks every statement, pipeline, script block and
sub-expression. Anything the walker does not recognise is ``dynamic``; nothing
here raises on any input.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from statetrace_guard.classify import dotnet
from statetrace_guard.classify.cmdlets import is_unc
from statetrace_guard.classify.environment import dangerous_env, redirects_writes
from statetrace_guard.classify.model import ClassifyContext, Shell, SimpleCommand, Word
from statetrace_guard.classify.pwsh_command import judge_command, script_command
from statetrace_guard.classify.pwsh_text import (
    arg_from_node,
    node_text,
    retry_placeholders,
    unescape_name,
)
from statetrace_guard.classify.registry import builtin_knowledge
from statetrace_guard.levels import Effect

if TYPE_CHECKING:
    from collections.abc import Callable

    from tree_sitter import Node, Parser

    from statetrace_guard.classify.knowledge import Knowledge

    WordsClassifier = Callable[
        [Sequence[Word], ClassifyContext, Shell], list[SimpleCommand]
    ]

__all__ = [
    "MAX_DEPTH",
    "classify_pwsh_argv",
    "classify_pwsh_script",
    "decode_encoded_command",
    "is_pwsh_program",
]

MAX_DEPTH = 6  # shells inside shells; deeper nesting is dynamic
_MAX_NODES = 8_000  # bounds the walk on huge inputs: the rest is dynamic
_MAX_BYTES = 65_536  # larger scripts are not parsed: dynamic
# The budgets below are CPU seconds of this thread (time.thread_time), not
# wall time: a loaded machine must not turn a legitimate command dynamic.
_PARSE_SECONDS = 0.012  # a parse that takes longer is cut short (dynamic)
_RETRY_SECONDS = 0.020  # the placeholder retry must finish by then
_WALK_SECONDS = 0.030  # the walk stops (dynamic) this long after the start
_CHUNK = 512  # bytes handed to the parser per read: how often the clock is read
_DIRECT_PARSE = 1_024  # shorter scripts parse in one call (bounded anyway)
_CHECK_EVERY = 255  # nodes between clock reads (a mask: 2**n - 1)
_READ = frozenset({Effect.READ})
_DYNAMIC = frozenset({Effect.DYNAMIC})
_PWSH_NAMES = frozenset({"pwsh", "powershell", "pwsh.exe", "powershell.exe"})
# Node kinds whose children are walked as they are.
_TRANSPARENT = frozenset(
    [
        "program",
        "statement_list",
        "statement_block",
        "script_block",
        "script_block_body",
        "named_block_list",
        "named_block",
        "if_statement",
        "elseif_clauses",
        "elseif_clause",
        "else_clause",
        "foreach_statement",
        "for_statement",
        "for_initializer",
        "for_condition",
        "for_iterator",
        "while_statement",
        "while_condition",
        "do_statement",
        "switch_statement",
        "switch_parameters",
        "switch_parameter",
        "switch_condition",
        "switch_filename",
        "switch_body",
        "switch_clauses",
        "switch_clause",
        "switch_clause_condition",
        "try_statement",
        "catch_clauses",
        "catch_clause",
        "catch_type_list",
        "finally_clause",
        "trap_statement",
        "flow_control_statement",
        "data_statement",
        "data_commands_allowed",
        "data_commands_list",
        "data_command",
        "param_block",
        "parameter_list",
        "script_parameter",
        "script_parameter_default",
        "attribute_list",
        "attribute",
        "attribute_arguments",
        "attribute_argument",
        "function_parameter_declaration",
        "label_expression",
        "logical_expression",
        "bitwise_expression",
        "comparison_expression",
        "additive_expression",
        "multiplicative_expression",
        "format_expression",
        "range_expression",
        "array_literal_expression",
        "unary_expression",
        "expression_with_unary_operator",
        "pre_increment_expression",
        "pre_decrement_expression",
        "post_increment_expression",
        "post_decrement_expression",
        "cast_expression",
        "parenthesized_expression",
        "sub_expression",
        "array_expression",
        "script_block_expression",
        "hash_literal_expression",
        "hash_literal_body",
        "hash_entry",
        "key_expression",
        "element_access",
        "argument_list",
        "argument_expression_list",
        "argument_expression",
        "logical_argument_expression",
        "bitwise_argument_expression",
        "comparison_argument_expression",
        "additive_argument_expression",
        "multiplicative_argument_expression",
        "format_argument_expression",
        "range_argument_expression",
        "string_literal",
        "expandable_string_literal",
        "expandable_here_string_literal",
        "left_assignment_expression",
        "pipeline_chain_tail",
        "enum_statement",
        "enum_member",
        "path_command_name",
    ]
)
# Expression wrappers: a chain of them around one leaf runs nothing.
_INERT_IF_PLAIN = frozenset(
    [
        "logical_expression",
        "bitwise_expression",
        "comparison_expression",
        "additive_expression",
        "multiplicative_expression",
        "format_expression",
        "range_expression",
        "array_literal_expression",
        "unary_expression",
        "string_literal",
        "expandable_string_literal",
        "argument_expression",
        "logical_argument_expression",
        "bitwise_argument_expression",
        "comparison_argument_expression",
        "additive_argument_expression",
        "multiplicative_argument_expression",
        "format_argument_expression",
        "range_argument_expression",
        "left_assignment_expression",
    ]
)
# Node kinds with nothing to run inside.
_LEAVES = frozenset(
    [
        "comment",
        "decimal_integer_literal",
        "hexadecimal_integer_literal",
        "real_literal",
        "verbatim_string_characters",
        "verbatim_here_string_characters",
        "simple_name",
        "type_identifier",
        "braced_variable",
        "generic_token",
        "command_parameter",
        "label",
        "integer_literal",
        "type_name",
        "array_type_name",
        "generic_type_name",
        "assignement_operator",
        "file_redirection_operator",
        "merging_redirection_operator",
        "comparison_operator",
        "format_operator",
        "variable",
        "empty_statement",
        "block_name",
        "command_argument_sep",
        "type_literal",
        "type_spec",
        "dimension",
        "generic_type_arguments",
        "attribute_name",
        "member_name",
        "function_name",
        "stop_parsing",
        "path_command_name_token",
    ]
)


@cache
def _parser() -> Parser:
    """Build the PowerShell parser once per process."""
    import tree_sitter  # noqa: PLC0415 - heavy: only when a script is parsed
    import tree_sitter_powershell  # noqa: PLC0415

    language = tree_sitter.Language(tree_sitter_powershell.language())
    return tree_sitter.Parser(language)


def is_pwsh_program(program: str) -> bool:
    """Tell whether argv[0] names PowerShell (any case, any directory)."""
    base = program.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base in _PWSH_NAMES


def _dyn(
    argv: Sequence[str], name: str, reason: str, spec: str = "unknown"
) -> SimpleCommand:
    """Build one dynamic simple command."""
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name=name,
        effects=_DYNAMIC,
        spec=spec,
        reasons=(reason,),
    )


def classify_pwsh_script(
    text: str, ctx: ClassifyContext, classify_words: WordsClassifier
) -> list[SimpleCommand]:
    """Classify a PowerShell script's every simple command.

    Args:
        text: the script source (``-Command`` text, decoded ``-EncodedCommand``).
        ctx: where it runs.
        classify_words: the shared native classifier (``dispatch``), for the
            native programs the script calls.

    Returns:
        The simple commands in source order; never empty, never raises.
    """
    return list(_cached_script(text, ctx, classify_words))


@lru_cache(maxsize=4096)
def _cached_script(
    text: str, ctx: ClassifyContext, classify_words: WordsClassifier
) -> tuple[SimpleCommand, ...]:
    """Classify once per (text, context): results are frozen and policy-free.

    NOTE(pwsh): agents repeat commands; the classification depends only on the
    text and the directories, never on the policy, so it cannot go stale.
    """
    try:
        return tuple(_classify_script(text, ctx, classify_words))
    except Exception as exc:  # noqa: BLE001 - fail closed on any bug
        reason = f"classifier error: {type(exc).__name__}"
        return (_dyn((text[:200],), "pwsh", reason),)


def _classify_script(
    text: str, ctx: ClassifyContext, classify_words: WordsClassifier
) -> list[SimpleCommand]:
    """Parse (tolerating doc placeholders) and walk, within a time budget."""
    if ctx.depth > MAX_DEPTH:
        return [_dyn((text[:200],), "pwsh", "shells nested too deep")]
    source = text.encode("utf-8", "surrogatepass")
    if len(source) > _MAX_BYTES:
        reason = f"script of {len(source)} bytes is too large to classify"
        return [_dyn((text[:200],), "pwsh", reason)]
    start = time.thread_time()
    root = _parse(source, start + _PARSE_SECONDS)
    knowledge = ctx.knowledge or builtin_knowledge()
    if root is not None and root.has_error:
        root = _retry(text, root, start, knowledge)
    if root is None:
        return [_dyn((text[:200],), "pwsh", "script too slow to parse: not classified")]
    walker = _Walker(ctx, start + _WALK_SECONDS, classify_words, knowledge)
    if not _only_comments(root):
        walker.visit(root)
    if _STEERING_VARIABLE.search(text.replace("`", "")):
        # NOTE(pwsh): any use, not only assignment: ``$p = $PSDefaultParameterValues;
        # $p['Out-File:FilePath'] = '/etc/x'`` changes it through a reference.
        reason = "uses $PSDefaultParameterValues or a command-lookup hook"
        walker.out.append(_dyn((text[:200],), "pwsh", reason, "pwsh:steering"))
    if not walker.out:
        walker.out.append(
            SimpleCommand(
                argv=(),
                shell="pwsh",
                name="",
                effects=_READ,
                spec="pwsh:empty",
                reasons=("nothing to run",),
            )
        )
    return walker.out


def _parse(source: bytes, deadline: float) -> Node | None:
    """Parse ``source``; ``None`` when the parser overruns ``deadline``.

    NOTE(pwsh): tree-sitter 0.26 has no timeout and some inputs (``& & &``)
    make its error recovery slow; feeding the text in chunks lets the clock be
    read between chunks and the parse cut short.
    """
    if len(source) <= _DIRECT_PARSE:
        return _parser().parse(source).root_node
    late = False

    def read(offset: int, _point: object) -> bytes:
        nonlocal late
        if time.thread_time() > deadline:
            late = True
            return b""
        return source[offset : offset + _CHUNK]

    tree = _parser().parse(read)
    if late:
        return None
    # NOTE(pwsh): a tree built from chunks holds no text (Node.text crashes);
    # re-parsing with it as the old tree is cheap and keeps the source.
    return _parser().parse(source, old_tree=tree).root_node


def _retry(text: str, root: Node, start: float, knowledge: Knowledge) -> Node:
    """Re-parse with documentation placeholders rewritten, when that is clean."""
    fixed = retry_placeholders(
        text, lambda word: knowledge.cmdlet_name(word) is not None
    )
    if fixed is None:
        return root
    retry = _parse(fixed.encode("utf-8", "surrogatepass"), start + _RETRY_SECONDS)
    return retry if retry is not None and not retry.has_error else root


def _plain(node: Node) -> bool:
    """A chain of one-child expression wrappers ending in a leaf: nothing runs."""
    while node.named_child_count == 1:
        node = node.named_children[0]
        if node.type in _LEAVES:
            return True
        if node.type not in _INERT_IF_PLAIN:
            return False
    return False


def _only_comments(root: Node) -> bool:
    """An empty or comment-only script (the grammar makes it an ERROR)."""
    return root.type == "ERROR" and all(c.type == "comment" for c in root.children)


class _Walker:
    """One walk over one parse tree; collects simple commands."""

    def __init__(
        self,
        ctx: ClassifyContext,
        deadline: float,
        classify_words: WordsClassifier,
        knowledge: Knowledge,
    ) -> None:
        """Start with no commands, functions or aliases known."""
        self.ctx = ctx
        self.native = classify_words
        self.knowledge = knowledge
        self.out: list[SimpleCommand] = []
        self.functions: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.file_objects: set[str] = set()  # variables holding Get-Item output
        # variables holding $ExecutionContext or its provider/engine objects
        self.provider_objects: set[str] = set()
        self.cwd_prefix = ""  # where Set-Location moved, relative to ctx.cwd
        self.cwd_unknown = False
        self.budget = _MAX_NODES
        self.deadline = deadline

    def classify_words(
        self, words: Sequence[Word], ctx: ClassifyContext, shell: Shell
    ) -> list[SimpleCommand]:
        """The shared native classifier this walk was given."""
        return self.native(words, ctx, shell)

    def nested_pwsh(self, argv: Sequence[str]) -> list[SimpleCommand]:
        """``pwsh ...`` inside the script: its own command line, one level down."""
        return classify_pwsh_argv(argv, self.ctx, self.native)

    # -- dispatch -------------------------------------------------------
    def visit(self, node: Node) -> None:
        """Walk ``node``: commands are judged, everything else recursed."""
        self.budget -= 1
        if not self.budget & _CHECK_EVERY and time.thread_time() > self.deadline:
            self.budget = min(self.budget, 0)
        if self.budget < 0:
            return
        if self.budget == 0:
            self.out.append(_dyn(("...",), "pwsh", "script too large to walk"))
            return
        kind = node.type
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, node)
        elif node.is_error or node.is_missing:
            self._error(node)
        elif kind in _TRANSPARENT:
            if kind in _INERT_IF_PLAIN and _plain(node):
                return
            self.children(node)
        elif kind not in _LEAVES and node.is_named:
            self.out.append(
                _dyn((node_text(node)[:200],), "pwsh", f"unsupported {kind}")
            )

    def children(self, node: Node) -> None:
        """Walk the named children (and missing tokens) of ``node``."""
        if not node.has_error:  # fast path: no missing tokens to report
            for child in node.named_children:
                self.visit(child)
            return
        for child in node.children:
            if child.is_named or child.is_missing:
                self.visit(child)

    def _error(self, node: Node) -> None:
        """A parse error: that part is dynamic."""
        where = node.start_point
        reason = f"parse error at line {where[0] + 1} column {where[1] + 1}"
        self.out.append(_dyn((node_text(node)[:200],), "pwsh", reason, "parse-error"))

    def emit(self, command: SimpleCommand) -> None:
        """Record one simple command."""
        self.out.append(command)

    # -- statements -----------------------------------------------------
    def pipeline_chain(self, node: Node) -> None:
        """Each element of a pipeline: commands, or expressions (reads)."""
        redirects: list[str] = []
        for child in node.children:
            kind = child.type
            if kind == "redirections":
                redirects.extend(self.redirections(child))
            elif kind in {"command", "pipeline_chain", "pipeline_chain_tail"}:
                self.visit(child)
            elif child.is_named or child.is_missing:
                self.expression_statement(child)
        if redirects:
            self.emit(_redirect_command(redirects))

    def expression_statement(self, node: Node) -> None:
        """An expression used as a statement reads; walk what it holds."""
        if node.is_error or node.is_missing:
            self._error(node)
            return
        self.visit(node)
        self.emit(
            SimpleCommand(
                argv=(node_text(node)[:200],),
                shell="pwsh",
                name="expression",
                effects=_READ,
                spec="pwsh:expression",
                reasons=("an expression: reads values",),
            )
        )

    def redirections(self, node: Node) -> list[str]:
        """Return the files written by a ``redirections`` node."""
        targets: list[str] = []
        for child in node.named_children:
            if child.type == "redirection":
                targets.extend(self.redirection(child))
            else:
                self.visit(child)
        return targets

    def redirection(self, node: Node) -> list[str]:
        """Return the file one redirection writes ([] for ``$null``, ``2>&1``)."""
        if node.has_error:
            self._error(node)
            return []
        target = node.child_by_field_name("redirected_file_name")
        if target is None:
            for child in node.named_children:
                if child.type == "redirected_file_name":
                    target = child
        if target is None:
            return []
        for child in target.named_children:
            if child.type != "command_argument_sep":
                self.visit(child)
                arg = arg_from_node(child)
                if _is_null(arg.text):
                    return []
                return [arg.text if arg.static else "$" + arg.text.lstrip("$")]
        return []

    def assignment(self, node: Node) -> None:
        """``$x = <pipeline>``: classify the right; ``$env:X =`` sets X."""
        left = node.named_children[0] if node.named_children else None
        left_text = node_text(left) if left is not None else ""
        env = _env_target(left_text)
        self.children(node)
        if env is not None:
            self.emit(_env_command(node_text(node)[:200], env))
        self.property_set(left, node)
        self.track_file_object(left_text, node)
        steering = _steering_target(left_text, node_text(node))
        if steering is not None:
            self.emit(
                _dyn((node_text(node)[:200],), "assignment", steering, "pwsh:assign")
            )

    def property_set(self, left: Node | None, node: Node) -> None:
        """``$f.IsReadOnly = $true``, ``[Environment]::CurrentDirectory = 'x'``."""
        access = _innermost(left, "member_access")
        if access is None:
            return
        member = next(
            (c for c in access.named_children if c.type == "member_name"), None
        )
        if member is None:
            return
        found = self.knowledge.property_effect(unescape_name(node_text(member)).lower())
        if found is None:
            return
        effect, reason = found
        effects = {effect, Effect.DYNAMIC} if effect is Effect.WRITE else {effect}
        why = (
            reason
            or f"setting {node_text(member)} changes an object outside the script"
        )
        self.emit(
            SimpleCommand(
                argv=(node_text(node)[:200],),
                shell="pwsh",
                name="property",
                effects=frozenset(effects),
                spec="pwsh:dotnet-property",
                reasons=(why, "the object it changes is known only at run time"),
            )
        )

    def track_file_object(self, left_text: str, node: Node) -> None:
        """``$f = Get-Item x``: later ``$f.Replace(...)`` is a file's method."""
        name = left_text.strip().lstrip("$").lower()
        right = node_text(node).partition("=")[2].strip().lower()
        if name.isidentifier():
            if _FILE_SOURCE.match(right):
                self.file_objects.add(name)
            else:
                self.file_objects.discard(name)
            # $p = $ExecutionContext.InvokeProvider; $p.Content.Clear('a'). Never
            # forgotten: a later `$p = 'x'` may sit in a branch that never runs.
            root = _receiver_root(right)
            if _PROVIDER_API.search(right) or root in self.provider_objects:
                self.provider_objects.add(name)

    def cast(self, node: Node) -> None:
        """``[wmiclass]'Win32_Process'``: a cast builds an object of the type."""
        self.children(node)
        literal = next(
            (c for c in node.named_children if c.type == "type_literal"), None
        )
        if literal is None:
            return
        effect = dotnet.new_object_effect(node_text(literal), self.knowledge)
        if effect is Effect.READ:
            return
        self.emit(
            SimpleCommand(
                argv=(node_text(node)[:200],),
                shell="pwsh",
                name=dotnet.normalize_type(node_text(literal), self.knowledge),
                effects=frozenset({effect}),
                spec="pwsh:dotnet",
                reasons=(f"cast to {node_text(literal)}: {effect.value}",),
            )
        )

    def function(self, node: Node) -> None:
        """A function's body is classified where it is defined."""
        for child in node.named_children:
            if child.type == "function_name":
                self.functions.add(unescape_name(node_text(child)).lower())
        self.children(node)

    def unsupported(self, node: Node) -> None:
        """Classes and workflows: code we do not follow."""
        self.out.append(
            _dyn((node_text(node)[:200],), "pwsh", f"unsupported {node.type}")
        )

    # -- expressions ----------------------------------------------------
    def invocation(self, node: Node) -> None:
        """``[T]::M(...)``, ``$x.M(...)``: the method decides."""
        self.children(node)
        target, member, static = _invocation_parts(node)
        if static:
            effect = dotnet.static_member_effect(target, member, self.knowledge)
        else:
            effect = self.instance_effect(target, member)
        effects = {effect}
        if any(is_unc(arg) for arg in _string_args(node)):
            effects.add(Effect.NETWORK)  # a UNC path reaches its host
        env_sets: tuple[str, ...] = ()
        writes: tuple[str, ...] = ()
        if _STEERING_VARIABLE.search(target):
            effects.add(Effect.DYNAMIC)  # $PSDefaultParameterValues.Add(...)
        if static and member.lower() == "setenvironmentvariable":
            env_sets, writes = _set_environment_variable(node, effects)
        if effect is Effect.WRITE:
            writes = _first_string_arg(node)
            if writes == ("$unknown",):
                effects.add(Effect.DYNAMIC)  # the written path is not static
        kind = dotnet.normalize_type(target, self.knowledge) if static else "$"
        self.emit(
            SimpleCommand(
                argv=(node_text(node)[:200],),
                shell="pwsh",
                name=f"{kind}::{member.lower()}",
                effects=frozenset(effects),
                spec="pwsh:dotnet",
                reasons=(f".NET call {member}: {effect.value}",),
                env_sets=env_sets,
                writes=writes,
            )
        )

    def instance_effect(self, target: str, member: str) -> Effect:
        """``$x.M()``: by the receiver when it is known (a file, a provider)."""
        receiver = target.lower()
        if _PROVIDER_API.search(receiver) or (
            _receiver_root(receiver) in self.provider_objects
        ):
            return Effect.DYNAMIC  # $ExecutionContext.InvokeProvider.Item.Remove
        if _FILE_SOURCE.match(receiver.lstrip("(")) or (
            receiver.lstrip("$") in self.file_objects
        ):
            found = self.knowledge.dotnet_type("io.fileinfo")
            listed = found.members.get(member.lower()) if found is not None else None
            if listed is not None:
                return listed
        return dotnet.instance_method_effect(member, self.knowledge)

    def member_access(self, node: Node) -> None:
        """Reading a property reads; ``[T]::P`` on an unsafe type is a call."""
        self.children(node)

    def command(self, node: Node) -> None:
        """One command: resolve its name, bind its arguments, judge it."""
        judge_command(self, node)


# Receivers whose methods act through PowerShell's providers or engine.
_PROVIDER_API = re.compile(
    r"\$executioncontext|invokeprovider|invokecommand|sessionstate"
)


def _receiver_root(text: str) -> str:
    """The variable an expression starts from (``$p.Content`` -> ``p``)."""
    head = text.lstrip("(").split(".", 1)[0].split("[", 1)[0]
    return head[1:].strip("{}").lower() if head.startswith("$") else ""


# Expressions that give file or directory objects (Get-Item x, [IO.FileInfo]).
_FILE_SOURCE = re.compile(
    r"(get-item|gi|get-childitem|gci|dir|ls|new-item|ni)\b|"
    r"\[(system\.)?io\.(file|directory)info\]|new-object\s+(system\.)?io\.fileinfo"
)


def _innermost(node: Node | None, kind: str) -> Node | None:
    """The first node of ``kind`` down the chain of single-child wrappers."""
    while node is not None:
        if node.type == kind:
            return node
        node = node.named_children[0] if node.named_children else None
    return None


def _string_args(node: Node) -> list[str]:
    """The static string arguments of a call (a UNC path among them)."""
    out = []
    for child in node.named_children:
        if child.type != "argument_list":
            continue
        for part in node_text(child).strip("()").split(","):
            literal = _LITERAL.fullmatch(part.strip())
            if literal is not None:
                out.append(literal.group(2) if literal.group(1) else literal.group(0))
    return out


def _is_null(text: str) -> bool:
    """Tell whether a redirection target discards the output."""
    return text.lower() in {"$null", "null"}


def _redirect_command(targets: Sequence[str]) -> SimpleCommand:
    """A write by redirection of an expression's output."""
    effects = {Effect.WRITE}
    if any(t.startswith("$") for t in targets):
        effects.add(Effect.DYNAMIC)
    if any(is_unc(t) for t in targets):
        effects.add(Effect.NETWORK)
    return SimpleCommand(
        argv=tuple(targets),
        shell="pwsh",
        name="redirection",
        effects=frozenset(effects),
        spec="pwsh:redirection",
        reasons=tuple(f"redirects output to {t}" for t in targets),
        redirects=tuple(targets),
    )


def _env_target(left: str) -> str | None:
    """Return NAME for ``$env:NAME`` / ``${env:NAME}``, else ``None``."""
    text = left.strip().lstrip("$").strip("{}")
    scope, sep, name = text.partition(":")
    return name if sep and scope.lower() == "env" and name else None


_STEERING_VARIABLE = re.compile(
    r"psdefault|commandlookupaction|commandnotfoundaction|sessionstate\.psvariable",
    re.IGNORECASE,
)


def _steering_target(left: str, whole: str) -> str | None:
    """Why assigning ``left`` changes what later commands do, else ``None``.

    ``$alias:ls = 'iwr'`` and ``$function:ls = $code`` redefine a command;
    ``$PSDefaultParameterValues[...]`` adds parameters to later calls.
    """
    text = left.strip().lstrip("$").strip("{}").lower()
    scope, sep, _ = text.partition(":")
    if sep and scope == "alias":
        return "assigning alias: redefines a command name"
    value = whole.partition("=")[2].strip()
    if sep and scope == "function" and not value.startswith("{"):
        return "assigning function: from a non-literal value"
    if _STEERING_VARIABLE.search(text):
        return "$PSDefaultParameterValues changes later commands' parameters"
    return None


def _steers(name: str) -> bool:
    """The one table of variables says setting ``name`` steers later programs.

    Guard's and the opt-in variables are the decision's (``env_sets``).
    """
    return dangerous_env(name.upper())


def _env_command(text: str, name: str) -> SimpleCommand:
    """Setting an environment variable for the rest of the script."""
    effects = {Effect.READ}
    reasons = [f"sets environment variable {name}"]
    if _steers(name):
        effects.add(Effect.DYNAMIC)
        reasons.append(f"{name} changes which program later commands run")
    writes: tuple[str, ...] = ()
    if redirects_writes(name.upper()):
        writes = _redirected(_LITERAL.fullmatch(text.partition("=")[2].strip()))
        effects.add(Effect.WRITE if writes else Effect.DYNAMIC)
        where = writes[0] if writes else "a path known only at run time"
        reasons.append(f"{name} sends later writes to {where}")
    return SimpleCommand(
        argv=(text,),
        shell="pwsh",
        name="set-env",
        effects=frozenset(effects),
        spec="pwsh:env-assign",
        reasons=tuple(reasons),
        env_sets=(name,),
        writes=writes,
    )


def _redirected(literal: re.Match[str] | None) -> tuple[str, ...]:
    """The path a write-redirecting variable is set to; empty when not static."""
    if literal is None:
        return ()
    return (literal.group(2) if literal.group(1) else literal.group(0),)


def _invocation_parts(node: Node) -> tuple[str, str, bool]:
    """Return (target text, member name, is static ``::``) of an invocation."""
    target = ""
    member = ""
    static = False
    for child in node.children:
        kind = child.type
        if kind == "::":
            static = True
        elif kind == "member_name":
            member = node_text(child)
        elif not target and child.is_named:
            target = node_text(child)
    if static and not target.startswith("["):
        static = False  # ``$t::M()`` on a type held in a variable
    return target.strip(), unescape_name(member), static


def _set_environment_variable(
    node: Node, effects: set[Effect]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``[Environment]::SetEnvironmentVariable(name, value[, scope])``.

    Returns the variable set and the paths written; adds to ``effects``.
    """
    env_sets = _first_string_arg(node)
    writes: tuple[str, ...] = ()
    if env_sets == ("$unknown",) or _steers(env_sets[0]):
        effects.add(Effect.DYNAMIC)  # named at run time, or steers programs
    elif redirects_writes(env_sets[0].upper()):
        value = _first_string_arg(node, 1)
        if value == ("$unknown",):
            effects.add(Effect.DYNAMIC)  # a path known only at run time
        else:
            effects.add(Effect.WRITE)
            writes = value
    scope = node_text(node).lower()
    if "user" in scope or "machine" in scope:
        # NOTE(pwsh): User/Machine scope persists in the registry.
        effects.add(Effect.WRITE)
        writes = (*writes, "HKCU:\\Environment")
    return env_sets, writes


def _first_string_arg(node: Node, index: int = 0) -> tuple[str, ...]:
    """The first (or ``index``-th) argument of a call, when a static string."""
    for child in node.named_children:
        if child.type == "argument_list":
            parts = node_text(child).strip("() ").split(",")
            if index >= len(parts):
                return ("$unknown",)
            literal = _LITERAL.fullmatch(parts[index].strip())
            if literal is None:
                return ("$unknown",)  # a variable, a concatenation, a call
            return (literal.group(2) if literal.group(1) else literal.group(0),)
    return ("$unknown",)


# One quoted string without expansions, or one bare word.
_LITERAL = re.compile(r"(['\"])([^'\"$`]+)\1|[^\s'\"$`+(){},]+")


def _pipeline(walker: _Walker, node: Node) -> None:
    """A pipeline node: an assignment or chains; walk them."""
    walker.children(node)


_HANDLERS = {
    "pipeline": _pipeline,
    "pipeline_chain": _Walker.pipeline_chain,
    "command": _Walker.command,
    "assignment_expression": _Walker.assignment,
    "function_statement": _Walker.function,
    "invokation_expression": _Walker.invocation,
    "cast_expression": _Walker.cast,
    "invokation_foreach_expression": _Walker.invocation,
    "member_access": _Walker.member_access,
    "class_statement": _Walker.unsupported,
    "inlinescript_statement": _Walker.unsupported,
    "parallel_statement": _Walker.unsupported,
    "sequence_statement": _Walker.unsupported,
    "redirections": _Walker.redirections,
    "ERROR": _Walker._error,  # noqa: SLF001 - the walker's own method
}


# -- pwsh's own command line ------------------------------------------------

# NOTE(registry): pwsh's ConsoleHost CommandLineParameterParser, in its
# order: the first row whose name starts with the key, the key being at least
# as long as the row's shortest form, wins ("-s" is -ServerMode, "-e"
# -EncodedCommand, "-ex" -ExecutionPolicy). A key nothing matches is not an
# error: pwsh runs it as a script file (Windows PowerShell 5.1 as -Command
# text). Rows: (name matched, shortest form, option, takes a value).
_PWSH_OPTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("version", "v", "version", False),  # pwsh stops at it; 5.1 takes a value
    ("help", "h", "help", False),
    ("?", "?", "help", False),
    ("login", "l", "login", False),
    ("noexit", "noe", "noexit", False),
    ("noprofile", "nop", "noprofile", False),
    ("nologo", "nol", "nologo", False),
    ("noninteractive", "noni", "noninteractive", False),
    ("socketservermode", "so", "socketservermode", False),
    ("servermode", "s", "servermode", False),
    ("namedpipeservermode", "nam", "namedpipeservermode", False),
    ("sshservermode", "sshs", "sshservermode", False),
    ("interactive", "i", "interactive", False),
    ("configurationname", "config", "configurationname", True),
    ("custompipename", "cus", "custompipename", True),
    ("command", "c", "command", True),
    ("commandwithargs", "commandwithargs", "commandwithargs", True),
    ("cwa", "cwa", "commandwithargs", True),
    ("windowstyle", "w", "windowstyle", True),
    ("file", "f", "file", True),
    ("outputformat", "o", "outputformat", True),
    ("of", "o", "outputformat", True),
    ("inputformat", "inp", "inputformat", True),
    ("if", "if", "inputformat", True),
    ("executionpolicy", "ex", "executionpolicy", True),
    ("ep", "ep", "executionpolicy", True),
    ("encodedcommand", "e", "encodedcommand", True),
    ("ec", "e", "encodedcommand", True),
    ("encodedarguments", "encodeda", "encodedarguments", True),
    ("ea", "ea", "encodedarguments", True),
    ("settingsfile", "settings", "settingsfile", True),
    ("sta", "sta", "sta", False),
    ("mta", "mta", "mta", False),
    ("workingdirectory", "wo", "workingdirectory", True),
    ("wd", "wd", "workingdirectory", True),
    ("noprofileloadtime", "noprofileloadtime", "noprofileloadtime", False),
    ("psconsolefile", "psconsolefile", "psconsolefile", True),  # 5.1
    (
        "removeworkingdirectorytrailingcharacter",
        "removeworkingdirectorytrailingcharacter",
        "removeworkingdirectorytrailingcharacter",
        False,
    ),
)
_DASHES = "-\u2013\u2014\u2015"  # CharExtensions.IsDash
# Options after which commands come from somewhere the guard cannot read.
_PWSH_UNSEEN = frozenset(
    {
        "noexit",
        "interactive",
        "workingdirectory",
        "settingsfile",
        "configurationname",
        "psconsolefile",
        "custompipename",
        "inputformat",
        "servermode",
        "socketservermode",
        "namedpipeservermode",
        "sshservermode",
    }
)


@lru_cache(maxsize=1024)
def _pwsh_option(token: str) -> tuple[str, bool] | None:
    """Resolve a pwsh option token (``-nop``, ``/Enc``, ``--command``).

    As pwsh does: the word trimmed, one leading dash or ``/`` dropped, then
    one more dash; no ``-Name:value`` form (``-ep:Bypass`` names a file).
    ``None``: not an option (a script file, or 5.1's command text).
    """
    key = token.strip()
    if not key or (key[0] not in _DASHES and key[0] != "/"):
        return None
    key = key[1:]
    if key[:1] and key[0] in _DASHES:
        key = key[1:]
    key = key.lower()
    for name, shortest, option, takes in _PWSH_OPTIONS:
        if len(key) >= len(shortest) and name.startswith(key):
            return option, takes
    return None


def classify_pwsh_argv(
    argv: Sequence[str], ctx: ClassifyContext, classify_words: WordsClassifier
) -> list[SimpleCommand]:
    """Classify ``pwsh``/``powershell`` given as argv (any case, any path).

    Handles pwsh's own options; ``-Command`` text and ``-EncodedCommand``
    (decoded) are parsed as scripts, ``-File`` and a bare script path become
    a ``script`` simple command for the policy.

    Args:
        argv: the whole argv, ``argv[0]`` being the PowerShell program.
        ctx: where it runs; nested shells are classified one level deeper.
        classify_words: the shared native classifier (``dispatch``).

    Returns:
        The simple commands; never empty, never raises.
    """
    try:
        return _classify_argv(argv, ctx, classify_words)
    except Exception as exc:  # noqa: BLE001 - fail closed on any bug
        return [_dyn(argv, "pwsh", f"classifier error: {type(exc).__name__}")]


def _classify_argv(
    argv: Sequence[str], ctx: ClassifyContext, classify_words: WordsClassifier
) -> list[SimpleCommand]:
    """Walk pwsh's options until the one that says what to run."""
    deeper = ctx.deeper()
    if ctx.depth >= MAX_DEPTH:
        return [_dyn(argv, "pwsh", "shells nested too deep")]
    legacy = (
        argv[0].replace("\\", "/").rsplit("/", 1)[-1].lower().startswith("powershell")
    )
    i = 1
    while i < len(argv):
        token = argv[i]
        option = _pwsh_option(token)
        if option is None:
            if legacy:  # Windows PowerShell reads the rest as -Command
                return _run_command(argv, i, deeper, classify_words)
            return _run_file(argv, i, deeper)
        name, takes = option
        if name == "version":
            if not legacy:  # pwsh prints its version and reads no further
                return [_version(argv)]
            takes = True  # Windows PowerShell: -Version 2.0 picks the engine
        verdict = _option_verdict(argv, i, name, deeper, classify_words)
        if verdict is not None:
            return verdict
        i += 2 if takes else 1
    return [_dyn(argv, "pwsh", "interactive PowerShell reads commands from stdin")]


def _option_verdict(
    argv: Sequence[str],
    i: int,
    name: str,
    ctx: ClassifyContext,
    classify_words: WordsClassifier,
) -> list[SimpleCommand] | None:
    """Return the result when option ``name`` decides it, else ``None``."""
    if name in {"command", "commandwithargs"}:
        return _run_command(argv, i + 1, ctx, classify_words)
    if name == "file":
        return _run_file(argv, i + 1, ctx)
    if name == "encodedcommand":
        return _run_encoded(argv, i + 1, ctx, classify_words)
    if name in _PWSH_UNSEEN:
        return [_dyn(argv, "pwsh", f"pwsh option -{name}: what runs is not static")]
    return None


def _version(argv: Sequence[str]) -> SimpleCommand:
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name="pwsh",
        effects=frozenset({Effect.READ}),
        spec="posix:pwsh",
        reasons=("pwsh -Version prints its version and runs nothing",),
    )


def _run_command(
    argv: Sequence[str],
    start: int,
    ctx: ClassifyContext,
    classify_words: WordsClassifier,
) -> list[SimpleCommand]:
    """``-Command TEXT...``: the rest of argv joined by spaces is the script."""
    rest = argv[start:]
    if not rest or rest[0] == "-":
        return [_dyn(argv, "pwsh", "pwsh -Command - reads the script from stdin")]
    return classify_pwsh_script(" ".join(rest), ctx, classify_words)


def _run_encoded(
    argv: Sequence[str],
    start: int,
    ctx: ClassifyContext,
    classify_words: WordsClassifier,
) -> list[SimpleCommand]:
    """``-EncodedCommand B64``: UTF-16LE in base64; decode and classify."""
    if start >= len(argv):
        return [_dyn(argv, "pwsh", "pwsh -EncodedCommand without a value")]
    text = decode_encoded_command(argv[start])
    if text is None:
        return [_dyn(argv, "pwsh", "-EncodedCommand is not base64 of UTF-16LE text")]
    return classify_pwsh_script(text, ctx, classify_words)


def decode_encoded_command(value: str) -> str | None:
    """Decode a ``-EncodedCommand`` value, or ``None`` when it is not valid."""
    compact = "".join(value.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        return raw.decode("utf-16-le")
    except (binascii.Error, ValueError):
        return None


def _run_file(
    argv: Sequence[str], start: int, ctx: ClassifyContext
) -> list[SimpleCommand]:
    """``-File X.ps1 ARGS``: the script runs; the policy names scripts."""
    if start >= len(argv) or argv[start] == "-":
        return [_dyn(argv, "pwsh", "pwsh -File - reads the script from stdin")]
    return [script_command(argv[start], argv[start + 1 :], ctx)]
