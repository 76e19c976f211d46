"""What ``guard hook RUNTIME`` does for each event.

* **PreToolUse, shell tool**: judge ``bash -c COMMAND`` at the session's
  level exactly as ``guard run`` will (:func:`execute.assess`). Blocked: the
  refusal is recorded as ``command.blocked`` and the answer is a deny whose
  reason is the block line and the next step. Allowed: nothing is recorded
  yet; the answer is an allow whose ``updatedInput`` is the model's input
  with ``command`` rewritten to run through ``guard run --session ID``, which
  judges again, records and confines it.
* **PreToolUse, file tool**: judge the paths as a shell write
  (:func:`edits.judge_write`) and ask the session (halted, budgets); blocked:
  ``file.blocked`` and a deny; allowed: no objection (the runtime's own
  permission rules still apply).
* **PostToolUse, file tool**: ``file.edited`` with each path's size and hash.
  Shell tools: nothing (``guard run`` recorded the command).
* **SessionStart**: map the runtime session to a guard session; tell the
  model (``additionalContext``) and the operator (stderr) what is missing.
* **SessionEnd**: end the guard session; its report goes to stderr and to
  ``<log-dir>/Sessions/<id>.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from statetrace_guard.edits import (
    EditSource,
    file_state,
    judge_write,
    record_blocked,
    record_edit,
)
from statetrace_guard.errors import SessionError
from statetrace_guard.execute import Blocked, RunOptions, assess, block_message
from statetrace_guard.hooks.mapping import Mapped, ensure_session, find_session
from statetrace_guard.hooks.protocol import (
    Answer,
    HookInput,
    HookInputError,
    allow_with,
    deny,
    no_objection,
    session_context,
)
from statetrace_guard.hooks.targets import (
    FILE_TOOLS,
    SHELL_TOOLS,
    file_targets,
    shell_command,
    tool_kind,
)
from statetrace_guard.hooks.wrap import (
    GuardPrefixError,
    escalation_argv,
    strip_guard,
    wrap_argv,
    wrap_command,
)
from statetrace_guard.invocation import Invocation, resolve_invocation
from statetrace_guard.sessions.gate import SessionContext, admit, join_session

if TYPE_CHECKING:
    from statetrace_guard.audit.trail import Trail
    from statetrace_guard.decision import Verdict

__all__ = ["handle", "next_step"]

Handler = Callable[[HookInput, Invocation, Sequence[str]], Answer]


def handle(hook: HookInput, guard: Sequence[str], env: Mapping[str, str]) -> Answer:
    """Answer one hook call.

    Args:
        hook: the call.
        guard: the argv prefix that runs this guard (for rewritten commands).
        env: the hook process's environment (the runtime's).

    Raises:
        HookInputError: a tool the hook has no rule for, or a malformed input.
        GuardError: the policy, the session or the log failed (fail closed).
    """
    handlers: dict[str, Handler] = {
        "PreToolUse": _pre_tool_use,
        "PostToolUse": _post_tool_use,
        "SessionStart": _session_start,
        "SessionEnd": _session_end,
    }
    if hook.tool_name is not None:
        _kind(hook)  # an unknown tool blocks before anything is loaded
    invocation = resolve_invocation(
        level=None, policy=None, log_dir=None, env=env, cwd=Path(hook.cwd)
    )
    return handlers[hook.event](hook, invocation, guard)


def _kind(hook: HookInput) -> str:
    kind = tool_kind(hook.runtime, hook.tool_name or "")
    if kind is None:
        handled = sorted(SHELL_TOOLS[hook.runtime] | set(FILE_TOOLS[hook.runtime]))
        raise HookInputError(
            f"no rule for tool {hook.tool_name!r} "
            f"(the hook judges {', '.join(handled)})"
        )
    return kind


def _pre_tool_use(
    hook: HookInput, invocation: Invocation, guard: Sequence[str]
) -> Answer:
    kind = _kind(hook)
    mapped = ensure_session(invocation, hook)
    if mapped.ad_hoc_level is not None:
        invocation = replace(invocation, requested_level=mapped.ad_hoc_level)
    if kind == "shell":
        return _pre_shell(hook, invocation, mapped, guard)
    return _pre_file(hook, invocation, mapped)


def _pre_shell(
    hook: HookInput, invocation: Invocation, mapped: Mapped, guard: Sequence[str]
) -> Answer:
    tool_input = dict(hook.tool_input or {})
    original = shell_command(tool_input)
    level = None if mapped.ad_hoc_level is None else mapped.ad_hoc_level.name
    try:
        command, prefix_error = strip_guard(original), None
    except GuardPrefixError as error:
        command, prefix_error = original, str(error)
    if prefix_error is None and "escalate" in command:
        escalation = escalation_argv(command)
        if escalation is not None:  # guard run serves it (and records it)
            wrapped = wrap_argv(
                escalation, guard=guard, session_id=mapped.session_id, level=level
            )
            return allow_with({**tool_input, "command": wrapped})
    options = RunOptions(
        argv=("bash", "-c", command),
        session=mapped.session_id,
        via=f"hook:{hook.runtime}",
    )
    assessed = assess(invocation, options)
    if isinstance(assessed, Blocked) or prefix_error is not None:
        return deny(_deny_reason(assessed, mapped, prefix_error))
    assessed.trail.close()
    wrapped = wrap_command(
        command, guard=guard, session_id=mapped.session_id, level=level
    )
    return allow_with({**tool_input, "command": wrapped})


def _deny_reason(assessed: object, mapped: Mapped, prefix_error: str | None) -> str:
    lines = []
    verdict = None
    if isinstance(assessed, Blocked):
        lines.append(assessed.message)
        verdict = assessed.verdict
    if prefix_error is not None:
        lines.append(
            f"guard: the hook already runs every command through `guard run` "
            f"({prefix_error}): give the command alone"
        )
    if not any("guard: next: " in line for line in lines):
        lines.append(next_step(verdict, managed=mapped.ad_hoc_level is None))
    return "\n".join(lines)


def next_step(verdict: Verdict | None, *, managed: bool) -> str:
    """The next step after a block: what to do instead of retrying.

    The guidance module's step for a blocked verdict; a general one when
    there is no verdict (the session refused to start).
    """
    from statetrace_guard.guidance import next_line  # noqa: PLC0415
    from statetrace_guard.guidance import next_step as guidance_step  # noqa: PLC0415

    step = None if verdict is None else guidance_step(verdict, managed=managed)
    if step is not None:
        return next_line(step)
    return (
        "guard: next: do not retry this in another form; if the task needs it, "
        "ask the operator for a policy rule."
    )


def _pre_file(hook: HookInput, invocation: Invocation, mapped: Mapped) -> Answer:
    tool = hook.tool_name or ""
    paths = file_targets(hook.runtime, tool, hook.tool_input or {})
    try:
        session = _join(invocation, mapped)
    except SessionError as error:
        return deny(f"guard: blocked: {error.message}")
    verdict = judge_write(
        tool, paths, session.level, invocation.policy, invocation.place
    )
    refusal = None
    if verdict.allowed:
        refusal = admit(session, invocation.log_dir, invocation.policy, verdict)
        if refusal is None:
            return no_objection()
        message = (
            f"guard: blocked: {refusal}, session is {session.level.name} (rule session)"
        )
    else:
        message = block_message(verdict, managed=session.managed)
    trail = _trail(invocation, mapped.session_id)
    try:
        source = EditSource(hook.runtime, tool, hook.tool_use_id)
        record_blocked(
            trail,
            source,
            paths,
            verdict,
            message=message,
            cwd=hook.cwd,
            refusal=refusal,
        )
        _session_events(trail, session, invocation, verdict)
    finally:
        trail.close()
    if "guard: next: " not in message:
        message += "\n" + next_step(verdict, managed=session.managed)
    return deny(message)


def _join(invocation: Invocation, mapped: Mapped) -> SessionContext:
    return join_session(
        invocation.log_dir,
        mapped.session_id,
        invocation.requested_level,
        invocation.env,
    )


def _session_events(
    trail: Trail, session: SessionContext, invocation: Invocation, verdict: Verdict
) -> None:
    """The session's own events after a refusal: denials, loops, halts."""
    from statetrace_guard.sessions.gate import note_outcome  # noqa: PLC0415

    for event, fields in note_outcome(
        session, invocation.log_dir, invocation.policy, verdict, None
    ):
        trail.event(event, fields)


def _trail(invocation: Invocation, session_id: str) -> Trail:
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415

    settings = invocation.policy.settings
    return Trail(
        invocation.log_dir,
        session_id,
        durable=settings.durable,
        lock_timeout=settings.lock_timeout_seconds,
        front="direct",
    )


def _post_tool_use(
    hook: HookInput, invocation: Invocation, _guard: Sequence[str]
) -> Answer:
    if _kind(hook) == "shell":
        return no_objection()  # guard run recorded the command itself
    tool = hook.tool_name or ""
    paths = file_targets(hook.runtime, tool, hook.tool_input or {})
    mapped = ensure_session(invocation, hook)
    if mapped.ad_hoc_level is not None:
        invocation = replace(invocation, requested_level=mapped.ad_hoc_level)
    session = _join(invocation, mapped)
    workspace = invocation.place.decide.workspace
    states = [file_state(path, hook.cwd, workspace) for path in paths]
    trail = _trail(invocation, mapped.session_id)
    try:
        record_edit(
            trail,
            EditSource(hook.runtime, tool, hook.tool_use_id),
            states,
            level=session.level,
            cwd=hook.cwd,
        )
    finally:
        trail.close()
    return no_objection()


def _session_start(
    hook: HookInput, invocation: Invocation, _guard: Sequence[str]
) -> Answer:
    mapped = ensure_session(invocation, hook)
    level = mapped.ad_hoc_level
    where = f"guard session {mapped.session_id}" + (
        "" if level is None else f", ad hoc at {level.name}"
    )
    text = (
        f"statetrace guard: every shell command runs through `guard run` ({where}); "
        "file edits are judged by the same rules. A blocked command comes back "
        "with its reason and the next step: do not retry it in another form."
    )
    note = ""
    if mapped.missing:
        missing = "; ".join(mapped.missing)
        text += f" This session has no task board card ({missing})."
        note = f"guard: {mapped.session_id} is ad hoc: {missing}"
    answer = session_context("SessionStart", text)
    return Answer(answer.exit_code, answer.stdout, note)


def _session_end(
    hook: HookInput, invocation: Invocation, _guard: Sequence[str]
) -> Answer:
    from statetrace_guard.sessions.lifecycle import end_session  # noqa: PLC0415
    from statetrace_guard.sessions.report import (  # noqa: PLC0415
        render_cli,
        render_markdown,
    )

    mapped = find_session(invocation.log_dir, hook.runtime, hook.session_id)
    if mapped is None:
        return no_objection(f"guard: no guard session for {hook.runtime} session")
    try:
        report = end_session(
            invocation.workspace,
            invocation.log_dir,
            invocation.policy,
            mapped.session_id,
            status=None,  # the honest default: blocked when halted, failed, done
            next_step=None,
        )
    except SessionError as error:  # already ended: nothing left to do
        return no_objection(f"guard: {error.message}")
    markdown = invocation.log_dir / "Sessions" / f"{mapped.session_id}.md"
    try:
        markdown.write_text(render_markdown(report), encoding="utf-8")
    except OSError as exc:
        return no_objection(render_cli(report) + f"(not written: {markdown}: {exc})")
    return no_objection(render_cli(report) + f"(also in {markdown})")
