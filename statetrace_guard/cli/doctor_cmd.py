"""``guard doctor``: what this machine can enforce, and what each level gets."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import click

from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir, guard_owned_paths, workspace_root
from statetrace_guard.result import SCHEMA_VERSION
from statetrace_guard.sandbox import select_backend
from statetrace_guard.sandbox.base import (
    FsLayout,
    SandboxBackend,
    make_private_tmp,
    remove_private_tmp,
)

__all__ = ["doctor", "doctor_report"]

_YES_NO = {True: "yes", False: "no"}


def _layout(workspace: Path, private_tmp: str) -> FsLayout:
    policy = workspace / "guard.toml"
    owned = guard_owned_paths(
        default_log_dir(workspace), policy if policy.exists() else None
    )
    git = workspace / ".git"
    return FsLayout(
        workspace=str(workspace),
        private_tmp=private_tmp,
        system_tmp=os.path.realpath(tempfile.gettempdir()),
        protected=tuple(str(p) for p in owned),
        protected_data=tuple(
            str(p) for p in (git / "hooks", git / "config") if p.exists()
        ),
    )


def _level_rows(backend: SandboxBackend, layout: FsLayout) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    cases = [(level.name, level, False) for level in Level]
    cases.append(("L3+opt-in", Level.L3, True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UnsafeNoSandbox warns per plan
        for name, level, network_open in cases:
            plan = backend.plan(level, network_open, layout)
            rows[name] = {
                "enforcement": plan.enforcement,
                "missing": list(plan.missing),
                "protected": plan.details.get("protect", "none"),
                "writable": sorted({g.path for g in plan.grants if g.kind == "write"})[
                    :8
                ],
            }
    return rows


def doctor_report(cwd: Path) -> dict[str, Any]:
    """Return the machine's capabilities and each level's plan (JSON-ready)."""
    backend = select_backend()
    workspace = workspace_root(cwd)
    private = make_private_tmp(os.path.realpath(tempfile.gettempdir()))
    try:
        levels = _level_rows(backend, _layout(workspace, private))
    finally:
        remove_private_tmp(private)
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": backend.name,
        "capabilities": backend.probe().as_dict(),
        "workspace": str(workspace),
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
        f"{'level':<10} {'network':<9} {'filesystem':<15} {'protected':<15} missing",
    ]
    for name, row in report["levels"].items():
        enf = row["enforcement"]
        missing = ", ".join(row["missing"]) or "-"
        lines.append(
            f"{name:<10} {enf['network']:<9} {enf['filesystem']:<15} "
            f"{row['protected']:<15} {missing}"
        )
    click.echo("\n".join(lines))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Show what this machine can enforce and what each level will get."""
    report = doctor_report(Path.cwd())
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        _render(report)
