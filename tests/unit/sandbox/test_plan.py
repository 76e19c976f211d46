"""Planning without the kernel: grants, splits, network modes, the fallback."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from statetrace_guard.cli.doctor_cmd import doctor
from statetrace_guard.errors import SandboxUnavailable
from statetrace_guard.execute import _gap_line
from statetrace_guard.levels import Level
from statetrace_guard.sandbox import select_backend
from statetrace_guard.sandbox.base import (
    Capabilities,
    FsLayout,
    Grant,
    SandboxPlan,
    make_private_tmp,
    remove_private_tmp,
)
from statetrace_guard.sandbox.layers import Layer, containment_layers, describe_layers
from statetrace_guard.sandbox.linux import LinuxBackend, plan_grants, protected_paths
from statetrace_guard.sandbox.mounts import plan_pins
from statetrace_guard.sandbox.unsafe_none import SandboxWarning, UnsafeNoSandbox

FULL = Capabilities(
    "linux",
    landlock_abi=6,
    netns=True,
    userns=True,
    mountns=True,
    pidns=True,
    seccomp_arch="x86_64",
    drop_bounding=True,
)
BARE = ("pid namespace", "seccomp", "bounding set")


@pytest.fixture
def layout(tmp_path: Path) -> FsLayout:
    ws = tmp_path / "ws"
    for sub in ("Sessions", "NetOps", "Approvals", "Reports"):
        (ws / "Logs" / sub).mkdir(parents=True)
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("")
    (ws / ".git" / "HEAD").write_text("")
    (ws / "src").mkdir()
    (ws / "README.md").write_text("")
    (ws / "link").symlink_to("/etc")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "priv").mkdir()
    protected = tuple(str(ws / "Logs" / s) for s in ("Sessions", "NetOps", "Approvals"))
    return FsLayout(
        str(ws),
        str(tmp_path / "priv"),
        str(tmp_path / "tmp"),
        protected,
        (str(ws / ".git" / "hooks"), str(ws / ".git" / "config")),
    )


def kinds(grants: tuple[Grant, ...]) -> dict[str, str]:
    return {g.path: g.kind for g in grants}


class TestGrants:
    def test_l0_writes_only_private_tmp_and_devices(self, layout):
        """L0 grants the private temp dir and terminal devices, nothing else."""
        for can_mount in (False, True):
            plan = plan_grants(Level.L0, layout, can_mount=can_mount)
            assert kinds(plan.grants) == {
                "/dev/null": "device",
                "/dev/tty": "device",
                "/dev/ptmx": "device",
                "/dev/pts": "device",
                layout.private_tmp: "write",
            }
            assert plan.readonly == ()
            assert plan.pinned == ()
        assert plan_grants(Level.L0, layout).protect == "outside"

    def test_l1_splits_workspace_around_protected(self, layout):
        """Without mounts, L1 grants workspace entries one by one, never the guard's."""
        plan = plan_grants(Level.L1, layout)
        got = kinds(plan.grants)
        ws = layout.workspace
        assert got[f"{ws}/src"] == "write"
        assert got[f"{ws}/README.md"] == "write"
        assert got[f"{ws}/Logs/Reports"] == "write"
        assert got[f"{ws}/.git/HEAD"] == "write"
        assert layout.system_tmp in got
        for path in (*layout.protected, *layout.protected_data):
            assert not any(p == path or p.startswith(path + "/") for p in got)
        assert ws not in got  # split directory gets nothing without mounts
        assert f"{ws}/link" not in got  # a symlink is never a grant
        assert plan.protect == "landlock-split"
        assert plan.readonly == ()

    def test_l1_with_mounts_grants_whole_roots(self, layout):
        """With mounts nothing is split: whole roots, protected paths bound read-only."""
        plan = plan_grants(Level.L1, layout, can_mount=True)
        got = kinds(plan.grants)
        ws = layout.workspace
        assert got[ws] == "write"
        assert got[layout.system_tmp] == "write"
        assert not any(p.startswith(ws + "/") for p in got)
        assert set(plan.readonly) == {*layout.protected, *layout.protected_data}
        assert plan.pinned == (f"{ws}/.git", f"{ws}/Logs")
        assert plan.protect == "mount"

    def test_missing_protected_path_is_not_mounted(self, layout):
        """A missing protected path has nothing to bind; the others still are."""
        Path(layout.protected[2]).rmdir()
        plan = plan_grants(Level.L1, layout, can_mount=True)
        assert layout.protected[2] not in plan.readonly
        assert layout.protected[0] in plan.readonly
        assert kinds(plan.grants)[layout.workspace] == "write"

    def test_missing_protected_path_without_mounts_is_strict(self, layout):
        """Without mounts, every ancestor of a missing protected path is split."""
        Path(layout.protected[2]).rmdir()
        got = kinds(plan_grants(Level.L1, layout).grants)
        assert f"{layout.workspace}/Logs" not in got
        assert layout.workspace not in got

    def test_symlinked_protected_path_is_not_mounted(self, layout, tmp_path):
        """A bind would follow a symlink: it is never a mount point."""
        link = Path(layout.workspace) / "Logs" / "Linked"
        link.symlink_to(tmp_path)
        lay = FsLayout(
            layout.workspace,
            layout.private_tmp,
            layout.system_tmp,
            (*layout.protected, str(link)),
        )
        assert str(link) not in plan_grants(Level.L1, lay, can_mount=True).readonly

    def test_git_protected_only_below_l2(self, layout):
        """The policy's protected paths (.git/hooks) are protected below L2 only."""
        hooks = f"{layout.workspace}/.git/hooks"
        assert hooks in protected_paths(Level.L1, layout)
        assert hooks not in protected_paths(Level.L2, layout)
        assert kinds(plan_grants(Level.L2, layout).grants)[
            f"{layout.workspace}/.git"
        ] == ("write")
        mounted = plan_grants(Level.L2, layout, can_mount=True)
        assert hooks not in mounted.readonly
        assert mounted.pinned == (f"{layout.workspace}/Logs",)

    def test_protected_root_is_not_granted(self, layout):
        """A writable root that is itself protected gets no grant (Landlock only)."""
        lay = FsLayout(
            layout.workspace,
            layout.private_tmp,
            layout.system_tmp,
            (layout.system_tmp,),
        )
        assert layout.system_tmp not in kinds(plan_grants(Level.L1, lay).grants)

    def test_protected_outside_grants_needs_no_mount(self, layout, tmp_path):
        """A protected path outside every grant is read-only in the view already."""
        home = tmp_path / "home"
        home.mkdir()
        lay = FsLayout(
            layout.workspace, layout.private_tmp, layout.system_tmp, (str(home),)
        )
        plan = plan_grants(Level.L1, lay, can_mount=True)
        assert plan.readonly == ()
        assert plan.pinned == ()


class TestHidden:
    """Guard's home is covered at every level, wherever it lies."""

    def test_hidden_at_every_level_outside_the_grants(self, layout, tmp_path):
        home = tmp_path / "home"
        home.mkdir()
        lay = replace(layout, protected=(str(home),), hidden=(str(home),))
        for level in Level:
            plan = plan_grants(level, lay, can_mount=True)
            assert plan.hidden == (str(home),)
            assert str(home) not in plan.readonly  # outside every grant
            assert not any(p.startswith(str(tmp_path / "home")) for p in plan.pinned)

    def test_hidden_inside_a_grant_has_its_parents_pinned(self, layout):
        home = Path(layout.workspace) / "state" / "guard"
        home.mkdir(parents=True)
        lay = replace(layout, protected=(str(home),), hidden=(str(home),))
        plan = plan_grants(Level.L1, lay, can_mount=True)
        assert plan.hidden == (str(home),)
        assert str(home.parent) in plan.pinned
        assert str(home) not in plan.readonly

    def test_a_home_holding_a_writable_root_is_refused(self, layout, tmp_path):
        lay = replace(layout, hidden=(str(tmp_path),))
        with pytest.raises(SandboxUnavailable, match="guard's home"):
            plan_grants(Level.L0, lay, can_mount=True)

    def test_without_mounts_nothing_is_hidden(self, layout, tmp_path):
        lay = replace(layout, hidden=(str(tmp_path / "home"),))
        assert plan_grants(Level.L1, lay).hidden == ()


class TestDevices:
    """A fresh /dev where root builds the view and nothing of ours lies in /dev."""

    def test_private_as_root_with_mounts(self, layout):
        plan = LinuxBackend(dataclasses.replace(FULL, root=True)).plan(
            Level.L1, network_open=False, layout=layout
        )
        assert plan.details["devices"] == "private"

    def test_made_by_init_without_root(self, layout):
        plan = LinuxBackend(FULL).plan(Level.L1, network_open=False, layout=layout)
        assert plan.details["devices"] == "private-init"

    def test_host_without_mounts(self, layout):
        caps = dataclasses.replace(FULL, mountns=False)
        plan = LinuxBackend(caps).plan(Level.L1, network_open=False, layout=layout)
        assert plan.details["devices"] == "host"

    def test_host_for_a_workspace_in_dev_shm(self, layout):
        lay = replace(layout, workspace="/dev/shm/ws")
        plan = LinuxBackend(dataclasses.replace(FULL, root=True)).plan(
            Level.L0, network_open=False, layout=lay
        )
        assert plan.details["devices"] == "host"


class TestPins:
    def test_pins_every_directory_between_root_and_protected(self):
        """Each directory strictly between the grant and the protected path is pinned."""
        assert plan_pins(("/w",), ("/w/a/b/c", "/w/a/d", "/x/y")) == (
            "/w/a",
            "/w/a/b",
        )

    def test_nested_roots_use_the_innermost(self):
        """The nearest writable root bounds the chain."""
        assert plan_pins(("/t", "/t/w"), ("/t/w/L/S",)) == ("/t/w/L",)


class TestBackend:
    @pytest.mark.parametrize(
        ("caps", "network_open", "expected", "missing"),
        [
            (FULL, False, "netns", ()),
            (FULL, True, "proxy", ()),
            (
                Capabilities("linux", landlock_abi=4),
                False,
                "landlock",
                ("mounts", *BARE),
            ),
            (
                Capabilities("linux", landlock_abi=3),
                False,
                "none",
                ("network", "mounts", *BARE),
            ),
            (
                Capabilities("linux"),
                False,
                "none",
                ("network", "filesystem", *BARE),
            ),
        ],
    )
    def test_network_and_filesystem_modes(
        self, layout, caps, network_open, expected, missing
    ):
        """The plan names the strongest mechanism the machine offers."""
        plan = LinuxBackend(caps).plan(Level.L1, network_open, layout)
        assert plan.enforcement["network"] == expected
        assert plan.missing == missing
        fs = "none" if caps.landlock_abi == 0 else f"landlock-abi-{caps.landlock_abi}"
        assert plan.enforcement["filesystem"] == fs

    def test_record_view(self, layout):
        """as_record carries enforcement, missing and the writable paths."""
        record = (
            LinuxBackend(FULL)
            .plan(Level.L1, network_open=False, layout=layout)
            .as_record()
        )
        assert set(record) == {
            "enforcement",
            "missing",
            "backend",
            "writable",
            "readonly",
        }
        json.dumps(record)

    def test_plan_without_landlock_needs_no_ruleset(self, layout):
        """A plan with filesystem none builds no ruleset."""
        backend = LinuxBackend(Capabilities("linux"))
        setup = backend.child_setup(
            backend.plan(Level.L1, network_open=True, layout=layout)
        )
        setup.close()

    def test_probe_cached(self):
        """select_backend probes once per process."""
        assert select_backend() is select_backend()


class TestUnsafeNoSandbox:
    def test_warns_and_enforces_nothing(self, layout):
        """UnsafeNoSandbox says none and warns on every plan."""
        backend = UnsafeNoSandbox()
        with pytest.warns(SandboxWarning):
            plan = backend.plan(Level.L1, network_open=False, layout=layout)
        assert plan.enforcement == {
            "network": "none",
            "filesystem": "none",
            "namespaces": "none",
            "capabilities": "kept",
            "seccomp": "none",
            "unix_sockets": "allowed",
        }
        assert plan.missing == ("network", "filesystem", "pid namespace", "seccomp")
        setup = backend.child_setup(plan)
        setup.enter()
        setup.restrict()
        setup.close()

    def test_network_open_is_not_missing(self, layout):
        """At L3 with the opt-in only the filesystem is missing."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SandboxWarning)
            plan = UnsafeNoSandbox().plan(Level.L3, network_open=True, layout=layout)
        assert plan.missing == ("filesystem", "pid namespace", "seccomp")
        assert isinstance(plan, SandboxPlan)


class TestPrivateTmp:
    def test_create_and_remove(self, tmp_path):
        """The private temp dir is 0700 and removed with its contents."""
        path = make_private_tmp(str(tmp_path))
        assert (Path(path).stat().st_mode & 0o777) == 0o700
        (Path(path) / "left").write_text("x")
        remove_private_tmp(path)
        assert not Path(path).exists()
        remove_private_tmp(path)

    def test_made_in_the_covered_directory(self, layout, tmp_path):
        """All private dirs share one parent, which each program's view covers."""
        path = make_private_tmp(str(tmp_path))
        parent = Path(path).parent
        assert parent.name == f"statetrace-guard-tmp-{os.getuid()}"
        plan = plan_grants(Level.L1, replace(layout, private_tmp=path), can_mount=True)
        assert plan.tmp_cover == (str(parent), path)
        remove_private_tmp(path)

    def test_a_foreign_parent_is_not_trusted(self, tmp_path):
        """A link planted where the parent belongs: the old place, uncovered."""
        (tmp_path / f"statetrace-guard-tmp-{os.getuid()}").symlink_to("/")
        path = make_private_tmp(str(tmp_path))
        assert Path(path).parent == tmp_path
        remove_private_tmp(path)


@pytest.mark.usefixtures("workspace")
class TestDoctor:
    def test_json_report(self):
        """guard doctor --json lists capabilities and every level."""
        result = CliRunner().invoke(doctor, ["--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["schema_version"] >= 1
        assert set(report["levels"]) == {"L0", "L1", "L2", "L3", "L3+opt-in"}
        assert report["levels"]["L3+opt-in"]["enforcement"]["network"] == "proxy"
        if sys.platform.startswith("linux"):
            assert "landlock_abi" in report["capabilities"]

    def test_text_report(self):
        """guard doctor prints a table a human can read."""
        result = CliRunner().invoke(doctor, [])
        assert result.exit_code == 0, result.output
        assert "landlock" in result.output
        assert "L3+opt-in" in result.output
        assert "envelopes (workspace" in result.output
        assert "paths not there yet:" in result.output

    def test_report_lists_each_envelope(self, workspace):
        """Each level lists its writable roots and read-only paths; files say how."""
        (workspace / ".git" / "hooks").mkdir()
        report = json.loads(CliRunner().invoke(doctor, ["--json"]).output)
        assert {"mode", "means", "missing_paths"} <= set(report["files"])
        if not sys.platform.startswith("linux"):
            return
        levels = report["levels"]
        hooks = str(workspace / ".git" / "hooks")
        assert str(workspace) not in levels["L0"]["writable"]
        assert hooks in levels["L1"]["readonly"]
        assert hooks not in levels["L2"]["readonly"]


class TestLandlockOnlyWarning:
    def test_run_warns_what_missing_mounts_cost(self, layout):
        """Without mount namespaces `guard run` says what that costs."""
        plan = LinuxBackend(Capabilities("linux", landlock_abi=6, netns=True)).plan(
            Level.L1, network_open=False, layout=layout
        )
        assert plan.missing == ("mounts", *BARE)
        line = _gap_line(plan, "mounts")
        assert line.startswith("guard: warning: not enforced here: mounts (Landlock")
        assert "mkdir d" in line
        assert "chmod" in line

    def test_every_layer_is_listed(self):
        """Each layer of the seal has a line; containment is their conjunction."""
        report = json.loads(CliRunner().invoke(doctor, ["--json"]).output)
        names = [layer["layer"] for layer in report["layers"]]
        assert names == [
            "landlock",
            "network namespace",
            "mount namespace",
            "pid namespace",
            "ipc namespace",
            "uts namespace",
            "user namespace",
            "capabilities",
            "seccomp",
            "unix sockets",
            "chain key",
        ]
        seal = [layer for layer in report["layers"] if layer["layer"] != "chain key"]
        assert report["containment"] == all(layer["active"] for layer in seal)
        assert all(layer["detail"] for layer in report["layers"])


class TestLayers:
    """What doctor says on machines without a layer (probe results made up)."""

    def _layers(self, caps: Capabilities) -> dict[str, Layer]:
        backend = LinuxBackend(caps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = backend.plan(Level.L1, network_open=False, layout=_fake_layout())
        found = describe_layers(caps, plan, Layer.off("chain key", "MISSING"))
        return {layer.name: layer for layer in found}

    def test_a_full_machine(self):
        layers = self._layers(FULL)
        assert all(
            layer.active for name, layer in layers.items() if name != "chain key"
        )
        assert containment_layers(FULL)

    def test_no_namespaces_says_what_is_left_open(self):
        bare = Capabilities("linux", landlock_abi=6, seccomp_arch="x86_64")
        layers = self._layers(bare)
        assert not layers["pid namespace"].active
        assert "outlive a killed guard" in layers["pid namespace"].detail
        assert not layers["ipc namespace"].active
        assert not containment_layers(bare)

    def test_no_seccomp_says_sockets_are_open(self):
        caps = dataclasses.replace(FULL, seccomp_arch=None)
        layers = self._layers(caps)
        assert not layers["seccomp"].active
        assert not layers["unix sockets"].active
        assert "tmux" in layers["unix sockets"].detail
        assert not containment_layers(caps)

    def test_not_linux(self):
        assert not containment_layers(Capabilities("darwin"))


class TestNestedGrants:
    def test_private_tmp_inside_a_written_tree_is_no_grant_of_its_own(
        self, layout, tmp_path
    ):
        """At L1 the system temp dir covers the private one: grants stay stable."""
        inner = tmp_path / "tmp" / "guard-private"
        inner.mkdir()
        nested = FsLayout(
            layout.workspace,
            str(inner),
            layout.system_tmp,
            layout.protected,
            layout.protected_data,
        )
        for can_mount in (False, True):
            l1 = kinds(plan_grants(Level.L1, nested, can_mount=can_mount).grants)
            assert str(inner) not in l1
            assert l1[layout.system_tmp] == "write"
            l0 = kinds(plan_grants(Level.L0, nested, can_mount=can_mount).grants)
            assert l0[str(inner)] == "write"


def _fake_layout() -> FsLayout:
    return FsLayout("/nonexistent/ws", "/nonexistent/priv", "/nonexistent/tmp")
