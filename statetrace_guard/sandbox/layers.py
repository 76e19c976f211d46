"""Every layer of the seal, active or missing, as ``guard doctor`` shows it.

A pure function of the probe result and a plan: the same data the child
applies and the records carry. A missing layer says plainly what it leaves
open and what stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statetrace_guard.sandbox.base import Capabilities, SandboxPlan

__all__ = ["Layer", "containment_layers", "describe_layers"]


@dataclass(frozen=True)
class Layer:
    """One layer: its name, whether it is active here, and what that means."""

    name: str
    active: bool
    detail: str

    @classmethod
    def on(cls, name: str, detail: str) -> Layer:
        """An active layer."""
        return cls(name, active=True, detail=detail)

    @classmethod
    def off(cls, name: str, detail: str) -> Layer:
        """A missing layer (``detail`` says what that leaves open)."""
        return cls(name, active=False, detail=detail)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (``guard doctor --json``)."""
        return {"layer": self.name, "active": self.active, "detail": self.detail}


def _landlock(caps: Capabilities) -> Layer:
    if caps.landlock_abi >= 1:
        return Layer.on("landlock", f"ABI {caps.landlock_abi}: writes only in grants")
    return Layer.off(
        "landlock",
        "MISSING: nothing limits where a program writes except the mount view",
    )


def _namespaces(caps: Capabilities) -> list[Layer]:
    pid = (
        "own init as PID 1: the tree dies with its supervisor; fresh /proc"
        if caps.pidns
        else "MISSING: the program sees and may signal its user's processes; "
        "background processes can outlive a killed guard"
    )
    user = "root: namespaces made directly"
    if not caps.root:
        user = (
            "made with the others (the program keeps its own uid)"
            if caps.userns
            else "MISSING: no user namespaces, so no other namespace either"
        )
    return [
        Layer(
            "network namespace",
            caps.netns,
            "loopback only unless L3 with the opt-in"
            if caps.netns
            else "MISSING: Landlock ABI >= 4 denies TCP instead, if present",
        ),
        Layer(
            "mount namespace",
            caps.mountns,
            "read-only view, grants on top, guard's files read-only"
            if caps.mountns
            else "MISSING: protected paths only by Landlock splits",
        ),
        Layer("pid namespace", caps.pidns, pid),
        Layer(
            "ipc namespace",
            caps.pidns,
            "no SysV IPC of the host" if caps.pidns else "MISSING: host SysV IPC",
        ),
        Layer(
            "uts namespace",
            caps.pidns,
            "own hostname" if caps.pidns else "MISSING (no capability to change it)",
        ),
        Layer("user namespace", caps.root or caps.userns, user),
    ]


def _capabilities(caps: Capabilities, plan: SandboxPlan | None) -> Layer:
    seal = plan.seal.capabilities if plan is not None else "kept"
    if seal == "none":
        return Layer.on(
            "capabilities",
            "none: every set empty, bounding set dropped, secure bits locked, "
            "no_new_privs; checked before exec",
        )
    if seal == "none-bounding-kept":
        return Layer.off(
            "capabilities",
            "every set emptied and no_new_privs, but the bounding set stays "
            "(no CAP_SETPCAP here)",
        )
    return Layer.off("capabilities", f"MISSING on {caps.platform}")


def _seccomp(caps: Capabilities, plan: SandboxPlan | None) -> list[Layer]:
    unix = plan.seal.unix_sockets if plan is not None else "allowed"
    if caps.seccomp_arch is None:
        return [
            Layer.off(
                "seccomp",
                "MISSING (no filter for this architecture or kernel): file "
                "handles, ptrace, keyrings, io_uring and TIOCSTI stay open",
            ),
            Layer.off(
                "unix sockets",
                "MISSING: a program can connect to any Unix socket it can "
                "write (tmux, docker, ssh-agent)",
            ),
        ]
    return [
        Layer.on(
            "seccomp",
            f"{caps.seccomp_arch} filter: file handles, ptrace, keyrings, bpf, "
            "io_uring, mounts, namespaces, TIOCSTI, other processes' limits",
        ),
        Layer(
            "unix sockets",
            unix == "denied",
            "no new Unix socket (connected pairs and inherited ones only)"
            if unix == "denied"
            else "allowed at this level by the policy",
        ),
    ]


def describe_layers(
    caps: Capabilities, plan: SandboxPlan | None, chain_key: Layer
) -> list[Layer]:
    """Every layer for ``plan`` (the default level's) on this machine.

    Args:
        caps: the probe result.
        plan: a plan made on this machine (its seal), or None.
        chain_key: the trail's keyed chain, as the audit layer reports it.
    """
    return [
        _landlock(caps),
        *_namespaces(caps),
        _capabilities(caps, plan),
        *_seccomp(caps, plan),
        chain_key,
    ]


def containment_layers(caps: Capabilities) -> bool:
    """Whether every layer of the seal can be applied on this machine."""
    return (
        caps.platform == "linux"
        and caps.landlock_abi >= 1
        and caps.netns
        and caps.mountns
        and caps.pidns
        and caps.seccomp_arch is not None
        and caps.drop_bounding
    )
