"""``guard doctor``: what this machine can enforce, and what each level gets."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import click

from statetrace_guard.audit.redact import KEY_FILE_NAME
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.layout import fs_layout
from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir, guard_home, workspace_root
from statetrace_guard.result import SCHEMA_VERSION
from statetrace_guard.sandbox import containment_available, select_backend
from statetrace_guard.sandbox.base import (
    FsLayout,
    SandboxBackend,
    make_private_tmp,
    remove_private_tmp,
)
from statetrace_guard.sandbox.layers import Layer, describe_layers
from statetrace_guard.sandbox.linux import FILE_MODES
from statetrace_guard.sweep import MISSING_PATHS

__all__ = ["doctor", "doctor_report"]

_YES_NO = {True: "yes", False: "no"}


def _layout(workspace: Path, private_tmp: str, level: Level) -> FsLayout:
    invocation = resolve_invocation(level=level.name, policy=None, log_dir=None)
    return fs_layout(
        level=level,
        workspace=os.path.realpath(workspace),
        log_dir=str(default_log_dir(workspace)),
        private_tmp=private_tmp,
        guard_owned=invocation.place.decide.protected,
        patterns=invocation.policy.protect,
        create=False,
    )


def _level_rows(
    backend: SandboxBackend, workspace: Path, private_tmp: str
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    cases = [(level.name, level, False) for level in Level]
    cases.append(("L3+opt-in", Level.L3, True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UnsafeNoSandbox warns per plan
        for name, level, network_open in cases:
            layout = _layout(workspace, private_tmp, level)
            plan = backend.plan(level, network_open, layout)
            rows[name] = {
                "enforcement": plan.enforcement,
                "missing": list(plan.missing),
                "protected": plan.details.get("protect", "none"),
                "writable": [g.path for g in plan.grants if g.kind == "write"],
                "devices": [g.path for g in plan.grants if g.kind == "device"],
                "readonly": list(plan.readonly),
                "pinned": list(plan.pinned),
                "hidden": list(plan.hidden),
            }
    return rows


def _chain_key() -> Layer:
    """The keyed chain: present once guard's home has its key."""
    path = guard_home() / KEY_FILE_NAME
    if importlib.util.find_spec("statetrace_guard.audit.keys") is None:
        return Layer.off(
            "chain key",
            "MISSING in this version: the chain is plain SHA-256 "
            "(a writer of a log could re-seal it)",
        )
    if path.exists():
        return Layer.on("chain key", f"{path}")
    return Layer.off("chain key", f"not created yet: the first run creates {path}")


def doctor_report(cwd: Path) -> dict[str, Any]:
    """Return the machine's capabilities, layers and each level's plan."""
    backend = select_backend()
    workspace = workspace_root(cwd)
    private = make_private_tmp(os.path.realpath(tempfile.gettempdir()))
    try:
        levels = _level_rows(backend, workspace, private)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UnsafeNoSandbox warns per plan
            plan = backend.plan(
                Level.L1,
                network_open=False,
                layout=_layout(workspace, private, Level.L1),
            )
    finally:
        remove_private_tmp(private)
    mode = str(levels["L1"]["protected"])
    layers = describe_layers(backend.probe(), plan, _chain_key())
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": backend.name,
        "capabilities": backend.probe().as_dict(),
        "layers": [layer.as_dict() for layer in layers],
        "containment": containment_available(),
        "workspace": str(workspace),
        "files": {
            "mode": mode,
            "means": FILE_MODES.get(mode, FILE_MODES["none"]),
            "missing_paths": MISSING_PATHS,
        },
        "levels": levels,
    }


def _render(report: dict[str, Any]) -> None:
    caps = report["capabilities"]
    abi = caps["landlock_abi"]
    lines = [
        f"backend             {report['backend']}",
        f"platform            {caps['platform']}",
        f"landlock            {f'ABI {abi}' if abi else 'no'}",
        f"network namespaces  {_YES_NO[caps['network_namespaces']]}",
        f"user namespaces     {_YES_NO[caps['unprivileged_user_namespaces']]}",
        f"mount namespaces    {_YES_NO[caps['mount_namespaces']]}",
        f"root                {_YES_NO[caps['root']]}",
        f"cgroup v2           {_YES_NO[caps['cgroup_v2']]}",
        "",
        f"{'layer':<19} {'active':<7} what it means here",
        *(
            f"{layer['layer']:<19} {_YES_NO[layer['active']]:<7} {layer['detail']}"
            for layer in report["layers"]
        ),
        f"containment         {_YES_NO[report['containment']]:<7} "
        + (
            "every layer of the seal is applied"
            if report["containment"]
            else "not every layer is applied: code the classifier cannot name "
            "is blocked"
        ),
        "",
        f"{'level':<10} {'network':<9} {'filesystem':<15} {'protected':<15} missing",
    ]
    for name, row in report["levels"].items():
        enf = row["enforcement"]
        missing = ", ".join(row["missing"]) or "-"
        lines.append(
            f"{name:<10} {enf['network']:<9} {enf['filesystem']:<15} "
            f"{row['protected']:<15} {missing}"
        )
    files = report["files"]
    lines += [
        "",
        f"files: {files['mode']}: {files['means']}",
        f"paths not there yet: {files['missing_paths']}",
        "",
        *_envelope_lines(report),
    ]
    click.echo("\n".join(lines))


def _envelope_lines(report: dict[str, Any]) -> list[str]:
    """Each level's writes and read-only paths, as what it adds to the one below."""
    workspace = report["workspace"]
    lines = [f"envelopes (workspace {workspace}):"]
    before: set[str] = set()
    for name, row in report["levels"].items():
        writes = [*row["writable"], *row["devices"]]
        added = [path for path in writes if path not in before]
        before |= set(writes)
        lines.append(f"{name:<10} writes {_short(added, workspace) or '(no more)'}")
        if row["readonly"]:
            shown = _short(row["readonly"], workspace)
            lines.append(f"{'':<10} read-only {shown}")
        if row["hidden"]:
            shown = _short(row["hidden"], workspace)
            lines.append(f"{'':<10} unreadable {shown}")
    return lines


def _short(paths: list[str], workspace: str, limit: int = 8) -> str:
    """Paths, workspace-relative where inside it, at most ``limit`` of them."""
    text = [
        os.path.relpath(path, workspace) if path.startswith(workspace + "/") else path
        for path in paths
    ]
    more = f" (+{len(text) - limit} more)" if len(text) > limit else ""
    return ", ".join(text[:limit]) + more


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Show what this machine can enforce and what each level will get."""
    report = doctor_report(Path.cwd())
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        _render(report)
