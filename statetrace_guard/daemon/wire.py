"""Plans and run parameters as plain values, for the socket and back.

Both ends build the same frozen values: :func:`plan_to_wire` on the daemon,
:func:`plan_from_wire` on the client. Only sandbox modules are imported here
(and only when called), never the judging or recording layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from statetrace_guard.execute import Prepared
    from statetrace_guard.runner import RunControl, RunSpec
    from statetrace_guard.sandbox.base import SandboxBackend, SandboxPlan
    from statetrace_guard.testpicker import TestPicker

__all__ = [
    "backend_from_wire",
    "plan_from_wire",
    "plan_to_wire",
    "run_spec_from_wire",
    "spec_to_wire",
]


def plan_to_wire(plan: SandboxPlan, backend: SandboxBackend) -> dict[str, Any]:
    """Flatten a plan and the backend's probe result for the client."""
    return {
        "level": int(plan.level),
        "network_open": plan.network_open,
        "enforcement": dict(plan.enforcement),
        "missing": list(plan.missing),
        "grants": [[grant.path, grant.kind] for grant in plan.grants],
        "readonly": list(plan.readonly),
        "pinned": list(plan.pinned),
        "hidden": list(plan.hidden),
        "tmp_cover": list(plan.tmp_cover),
        "backend": plan.backend,
        "details": {str(k): v for k, v in plan.details.items()},
        "seal": _fields(plan.seal),
        "capabilities": _fields(backend.probe()),
    }


def _fields(value: object) -> dict[str, Any]:
    """A dataclass's own fields as a dict (shallow: the values are plain)."""
    from dataclasses import fields  # noqa: PLC0415 - daemon side only

    return {item.name: getattr(value, item.name) for item in fields(value)}  # type: ignore[arg-type]


def plan_from_wire(data: dict[str, Any]) -> SandboxPlan:
    """Rebuild the plan the daemon made."""
    from statetrace_guard.levels import Level  # noqa: PLC0415 - client path
    from statetrace_guard.sandbox.base import Grant, SandboxPlan, Seal  # noqa: PLC0415

    seal = dict(data["seal"])
    seal["namespaces"] = tuple(seal["namespaces"])
    return SandboxPlan(
        level=Level(data["level"]),
        network_open=bool(data["network_open"]),
        enforcement=dict(data["enforcement"]),
        missing=tuple(data["missing"]),
        grants=tuple(Grant(path, kind) for path, kind in data["grants"]),
        readonly=tuple(data["readonly"]),
        pinned=tuple(data["pinned"]),
        hidden=tuple(data["hidden"]),
        tmp_cover=tuple(data["tmp_cover"]),
        backend=data["backend"],
        details=dict(data["details"]),
        seal=Seal(**seal),
    )


def backend_from_wire(data: dict[str, Any]) -> SandboxBackend:
    """The same backend the daemon planned with, trusting its probe result."""
    from statetrace_guard.sandbox.base import Capabilities  # noqa: PLC0415

    capabilities = Capabilities(**data["capabilities"])
    if data["backend"] == "linux":
        from statetrace_guard.sandbox.linux import LinuxBackend  # noqa: PLC0415

        return LinuxBackend(capabilities)
    from statetrace_guard.sandbox.unsafe_none import UnsafeNoSandbox  # noqa: PLC0415

    return UnsafeNoSandbox()


def spec_to_wire(prepared: Prepared) -> dict[str, Any]:
    """What to run and how, for whoever runs it (a supervisor, a client)."""
    return {
        "argv": list(prepared.argv),
        "cwd": prepared.cwd,
        "env": dict(prepared.env),
        "timeout": prepared.timeout,
        "grace": prepared.grace,
        "max_memory": prepared.max_memory,
        "max_processes": prepared.max_processes,
        "allow_background": prepared.allow_background,
        "watch_tests": (
            None if prepared.watch_tests is None else prepared.watch_tests.to_wire()
        ),
    }


def run_spec_from_wire(
    spec: Mapping[str, Any],
    plan: SandboxPlan,
    backend: SandboxBackend,
    *,
    control: RunControl | None = None,
    fds: Mapping[int, int] | None = None,
) -> RunSpec:
    """The runner's spec from :func:`spec_to_wire` and the rebuilt plan."""
    from statetrace_guard.runner import RunSpec  # noqa: PLC0415 - run path only

    return RunSpec(
        argv=spec["argv"],
        cwd=spec["cwd"],
        env=spec["env"],
        timeout=spec["timeout"],
        grace=spec["grace"],
        max_memory=spec["max_memory"],
        max_processes=spec["max_processes"],
        plan=plan,
        backend=backend,
        allow_background=spec["allow_background"],
        control=control,
        fds=fds,
        watch_tests=_picker(spec.get("watch_tests")),
    )


def _picker(data: list[dict[str, Any]] | None) -> TestPicker | None:
    """The test picker sent with a launch, if the command has a test part."""
    if data is None:
        return None
    from statetrace_guard.testpicker import TestPicker  # noqa: PLC0415 - tests only

    return TestPicker.from_wire(data)
