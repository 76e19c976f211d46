"""Kernel enforcement on real processes: Landlock and network namespaces."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from statetrace_guard.levels import Level
from statetrace_guard.runner import RunSpec, run
from statetrace_guard.sandbox.base import FsLayout, make_private_tmp, remove_private_tmp
from statetrace_guard.sandbox.linux import LinuxBackend
from statetrace_guard.sandbox.netns import (
    make_network_namespace,
    reserve_network_namespace,
    take_reserved_network_namespace,
)

BACKEND = LinuxBackend()
CAPS = BACKEND.probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or CAPS.landlock_abi < 1, reason="needs Linux with Landlock"
    ),
]
needs_netns = pytest.mark.skipif(
    CAPS is None or not CAPS.netns, reason="needs network namespaces"
)
needs_landlock_net = pytest.mark.skipif(
    CAPS is None or CAPS.landlock_abi < 4, reason="needs Landlock ABI >= 4"
)
PY = sys.executable
GUARD_SUBDIRS = ("Sessions", "NetOps", "Approvals")


SPLIT_ONLY = (
    LinuxBackend(dataclasses.replace(CAPS, mountns=False)) if CAPS is not None else None
)
USERNS = (
    LinuxBackend(dataclasses.replace(CAPS, root=False)) if CAPS is not None else None
)
MODES = {"mount": BACKEND, "landlock-split": SPLIT_ONLY, "userns": USERNS}


@dataclasses.dataclass
class Room:
    ws: Path
    outside: Path
    layout: FsLayout
    backend: LinuxBackend = BACKEND

    def run(self, level, argv, *, network_open=False, backend=None):
        backend = backend or self.backend
        plan = backend.plan(level, network_open, self.layout)
        env = {**os.environ, "TMPDIR": self.layout.private_tmp}
        return run(
            RunSpec(argv, str(self.ws), env, plan=plan, backend=backend, grace=1)
        )

    def sh(self, level, script, **kwargs):
        return self.run(level, ["sh", "-c", script], **kwargs).exit_status


@pytest.fixture(params=list(MODES))
def room(request, tmp_path):
    ws = tmp_path / "ws"
    for sub in (*GUARD_SUBDIRS, "Reports"):
        (ws / "Logs" / sub).mkdir(parents=True)
        (ws / "Logs" / sub / "a.jsonl").write_text("record\n")
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    (ws / "src").mkdir()
    (ws / "guard.toml").write_text("# policy\n")
    home = tmp_path / "home"
    home.mkdir()
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    private = make_private_tmp(str(systmp))
    protected = (
        *(str(ws / "Logs" / s) for s in GUARD_SUBDIRS),
        str(home),
        str(ws / "guard.toml"),
    )
    git_protected = (str(ws / ".git" / "hooks"), str(ws / ".git" / "config"))
    layout = FsLayout(str(ws), private, str(systmp), protected, git_protected)
    backend = MODES[request.param]
    if request.param == "mount" and not CAPS.mountns:
        pytest.skip("needs mount namespaces")
    if request.param == "userns" and not CAPS.userns:
        pytest.skip("needs unprivileged user namespaces")
    yield Room(ws, outside, layout, backend)
    remove_private_tmp(private)


@pytest.fixture
def server():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(b"hello")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def connect_argv(port):
    code = f"""
        import socket, sys
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
            sys.exit(0 if s.recv(5) == b"hello" else 2)
        except PermissionError:
            sys.exit(13)
        except OSError:
            sys.exit(1)
        """
    return [PY, "-c", textwrap.dedent(code)]


class TestNetwork:
    @needs_netns
    def test_rejects_l1_connect_to_loopback_server(self, room, server):
        """An L1 program cannot reach a server on the host's loopback."""
        outcome = room.run(Level.L1, connect_argv(server))
        assert outcome.exit_status == 1

    @needs_netns
    def test_l3_opt_in_has_no_direct_way_out(self, room, server):
        """At L3 with the opt-in the program keeps its namespace: only the
        guard's proxy leads out (tests/linux/test_l3_egress.py), never a
        direct connection (issue 18)."""
        outcome = room.run(Level.L3, connect_argv(server), network_open=True)
        assert outcome.exit_status == 1

    @needs_netns
    def test_l3_without_opt_in_is_closed(self, room, server):
        """L3 without the opt-in has no network either."""
        assert room.run(Level.L3, connect_argv(server)).exit_status == 1

    @needs_netns
    def test_loopback_is_up_inside(self, room):
        """Inside the namespace the program can use its own loopback."""
        code = """
            import socket
            srv = socket.create_server(("127.0.0.1", 0))
            c = socket.create_connection(srv.getsockname())
            c.sendall(b"x")
            assert srv.accept()[0].recv(1) == b"x"
            """
        assert room.run(Level.L1, [PY, "-c", textwrap.dedent(code)]).exit_status == 0

    @needs_landlock_net
    def test_rejects_connect_with_landlock_fallback(self, room, server):
        """Without namespaces, Landlock ABI >= 4 denies TCP connect."""
        backend = LinuxBackend(dataclasses.replace(CAPS, netns=False))
        plan = backend.plan(Level.L1, network_open=False, layout=room.layout)
        assert plan.enforcement["network"] == "landlock"
        outcome = room.run(Level.L1, connect_argv(server), backend=backend)
        assert outcome.exit_status == 13


class TestFilesystem:
    def test_rejects_l1_write_outside_workspace(self, room):
        """L1 cannot write outside the workspace: permission denied."""
        target = room.outside / "f"
        code = f"""
            import errno
            try:
                open({str(target)!r}, "w")
            except OSError as exc:  # EACCES from Landlock, EROFS from the view
                raise SystemExit(13 if exc.errno in (13, errno.EROFS) else 1)
            """
        assert room.run(Level.L1, [PY, "-c", textwrap.dedent(code)]).exit_status == 13
        assert not target.exists()

    def test_accepts_l1_workspace_and_tmp_writes(self, room):
        """L1 writes, renames and deletes in the workspace and temp dirs."""
        systmp = room.layout.system_tmp
        script = (
            "echo a > src/f && mv src/f src/g && rm src/g && mkdir src/d && "
            f"echo b > Logs/Reports/r && echo c > {systmp}/t && echo d > $TMPDIR/p"
        )
        assert room.sh(Level.L1, script) == 0

    def test_l0_writes_only_private_tmp(self, room):
        """L0 may write its private temp dir and /dev/null, nothing else."""
        assert room.sh(Level.L0, "echo x > $TMPDIR/ok && echo y > /dev/null") == 0
        for target in ("src/f", f"{room.layout.system_tmp}/f", f"{room.outside}/f"):
            assert room.sh(Level.L0, f"echo x > {target}") != 0, target
        assert room.sh(Level.L0, "rm -rf src") != 0
        assert (room.ws / "src").is_dir()

    def test_l0_can_reopen_its_stdout_file(self, room, tmp_path):
        """A program may reopen the file its stdout already writes (/dev/stdout)."""
        out = tmp_path / "outside" / "stdout.txt"
        saved = os.dup(1)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.dup2(fd, 1)
            status = room.sh(
                Level.L0, f"echo a > /dev/stdout && ! echo b > {room.outside}/other"
            )
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(fd)
        assert status == 0
        assert out.read_text() == "a\n"

    def test_l0_reads_everything(self, room):
        """L0 still reads the workspace and the system."""
        assert room.sh(Level.L0, "cat .git/config /etc/hostname > /dev/null") == 0

    @pytest.mark.parametrize("level", list(Level))
    @pytest.mark.parametrize("sub", GUARD_SUBDIRS)
    def test_rejects_protected_writes_at_every_level(self, room, level, sub):
        """The guard's log subdirectories cannot be written, directly or sideways."""
        log = f"Logs/{sub}/a.jsonl"
        attacks = [
            f"echo x >> {log}",
            f"echo x > Logs/{sub}/new",
            f"rm -f {log}",
            f"ln -s $PWD/{log} src/link && echo x >> src/link",
            f"ln {log} src/hard && echo x >> src/hard",
            f"mv {log} src/moved",
            f"echo x > src/m && mv src/m {log}",
            f"mv Logs/{sub} src/gone",
            "mv Logs src/gone",
            f"rm -rf Logs/{sub}",
            f"ln -s /etc/hostname Logs/{sub}/new",
            f"mkdir Logs/{sub}/new",
        ]
        for attack in attacks:
            room.sh(level, attack)
            assert (room.ws / log).read_text() == "record\n", attack
            assert not (room.ws / "Logs" / sub / "new").exists(), attack

    def test_missing_protected_dir_cannot_be_planted(self, room):
        """Landlock alone: a missing guard subdirectory cannot be created.

        (With mounts, ``guard run`` creates the log subdirectories before the
        program starts: tests/escapes covers paths that may not exist.)
        """
        if room.backend is not SPLIT_ONLY:
            pytest.skip("only the Landlock split refuses new entries by itself")
        (room.ws / "Logs" / "Approvals" / "a.jsonl").unlink()
        (room.ws / "Logs" / "Approvals").rmdir()
        room.sh(Level.L3, "ln -s /etc Logs/Approvals; mkdir Logs/Approvals")
        assert not os.path.lexists(room.ws / "Logs" / "Approvals")
        assert room.sh(Level.L1, "echo x > Logs/Reports/r") == 0

    def test_mounts_do_not_leak_to_the_host(self, room):
        """The read-only binds live only in the program's mount namespace."""
        room.sh(Level.L1, "true")
        assert str(room.ws) not in Path("/proc/self/mountinfo").read_text()

    @pytest.mark.parametrize("level", list(Level))
    def test_rejects_policy_file_write(self, room, level):
        """The policy file inside the workspace stays as it is."""
        room.sh(level, "echo evil > guard.toml; mv guard.toml x; rm -f guard.toml")
        assert (room.ws / "guard.toml").read_text() == "# policy\n"

    @pytest.mark.parametrize("level", [Level.L0, Level.L1])
    def test_rejects_git_hooks_below_l2(self, room, level):
        """Below L2 .git/hooks and .git/config are read-only."""
        assert room.sh(level, "echo x > .git/hooks/pre-commit") != 0
        assert room.sh(level, "echo x >> .git/config") != 0
        assert (room.ws / ".git" / "config").read_text() == "[core]\n"

    @pytest.mark.parametrize("level", [Level.L2, Level.L3])
    def test_accepts_git_hooks_from_l2(self, room, level):
        """From L2 .git/hooks and .git/config are writable."""
        assert (
            room.sh(level, "echo x > .git/hooks/pre-commit && echo y >> .git/config")
            == 0
        )

    def test_workspace_root_and_git_fully_usable_with_mounts(self, room):
        """With mounts the root and .git/ take new, renamed and removed entries."""
        script = (
            "echo x > newfile && mv newfile n2 && rm n2 && mkdir d && echo y > d/f"
            " && mv d d2 && rm -rf d2 && mkdir .git/rebase-merge"
            " && rmdir .git/rebase-merge && echo i > .git/index.lock"
            " && mv .git/index.lock .git/index && rm .git/index && mkdir Logs/New"
            " && rmdir Logs/New"
        )
        if room.backend is not SPLIT_ONLY:
            assert room.sh(Level.L1, script) == 0
            assert sorted(p.name for p in room.ws.iterdir()) == [
                ".git",
                "Logs",
                "guard.toml",
                "src",
            ]
        else:
            assert room.sh(Level.L1, script) != 0
            assert not (room.ws / "newfile").exists()

    def test_existing_root_files_editable(self, room):
        """Existing files at the split workspace root are editable in place."""
        (room.ws / "README.md").write_text("old\n")
        assert room.sh(Level.L1, "echo new > README.md") == 0
        assert (room.ws / "README.md").read_text() == "new\n"

    def test_inherited_directory_descriptor_leads_nowhere(self, room):
        """A directory opened before the mounts cannot reach a protected path."""
        if room.backend is SPLIT_ONLY:
            pytest.skip("Landlock alone judges every open by its path")
        hooks = os.open(room.ws / ".git" / "hooks", os.O_RDONLY | os.O_DIRECTORY)
        code = """
            import os, sys
            try:
                fd = os.open("pre-commit", os.O_CREAT | os.O_WRONLY, dir_fd=3)
            except OSError:
                sys.exit(13)
            os.write(fd, b"planted")
            """
        plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
        spec = RunSpec(
            [PY, "-c", textwrap.dedent(code)],
            str(room.ws),
            {**os.environ, "TMPDIR": room.layout.private_tmp},
            plan=plan,
            backend=room.backend,
            grace=1,
            fds={0: 0, 1: 1, 2: 2, 3: hooks},
        )
        try:
            assert run(spec).exit_status == 13
        finally:
            os.close(hooks)
        assert not (room.ws / ".git" / "hooks" / "pre-commit").exists()

    def test_rejects_mknod_device(self, room):
        """A device node cannot be made in the workspace, even by root."""
        assert room.sh(Level.L1, "mknod src/disk b 8 0") != 0
        assert not (room.ws / "src" / "disk").exists()

    def test_workspace_symlink_out_is_not_a_grant(self, room):
        """A symlink at the workspace root does not extend the grant to its target."""
        (room.ws / "escape").symlink_to(room.outside)
        assert room.sh(Level.L1, "echo x > escape/f") != 0
        assert not (room.outside / "f").exists()

    def test_restrictions_are_inherited(self, room):
        """Grandchildren are restricted as the program is."""
        assert room.sh(Level.L1, f"sh -c 'sh -c \"echo x > {room.outside}/f\"'") != 0


class TestRecord:
    def test_enforcement_names(self, room):
        """The plan names what is enforced on this machine."""
        plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
        assert plan.enforcement["filesystem"] == f"landlock-abi-{CAPS.landlock_abi}"
        assert plan.enforcement["network"] in {"netns", "landlock"}
        # Landlock alone misses what the mount view gives (metadata, no split).
        assert plan.missing == (("mounts",) if room.backend is SPLIT_ONLY else ())
        assert plan.as_record()["enforcement"] == plan.enforcement


class TestRulesetCache:
    """The resident helper's launcher reuses rulesets; never a stale one."""

    def test_same_grants_share_one_ruleset_until_a_directory_is_replaced(self, room):
        plan = room.backend.plan(Level.L0, network_open=False, layout=room.layout)
        first = room.backend.child_setup(plan, ())
        again = room.backend.child_setup(plan, ())
        if plan.details["devices"] != "host":
            # Each program's own /dev/pts and /dev/shm are in its rules.
            assert first._ruleset is not again._ruleset
            first.close()
            again.close()
            assert first._devices is None  # closed with its ruleset
            return
        assert first._ruleset is again._ruleset
        first.close()
        assert again._ruleset.fd >= 0  # the cache owns it: close() leaves it
        private = Path(room.layout.private_tmp)
        private.rmdir()
        private.mkdir()
        replaced = room.backend.child_setup(
            room.backend.plan(Level.L0, network_open=False, layout=room.layout), ()
        )
        assert replaced._ruleset is not first._ruleset

    def test_rules_built_ahead_are_taken_only_for_the_same_inodes(self, room):
        """prepare_rules (an init forked ahead): reused only when nothing moved."""
        plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
        prepared = room.backend.prepare_rules(plan)
        if plan.details["devices"] != "private":
            assert prepared is None  # a shared ruleset is cached already
            return
        setup = room.backend.child_setup(plan, (), prepared)
        assert setup._ruleset is prepared.ruleset
        setup.close()
        stale = room.backend.prepare_rules(plan)
        granted = Path(room.layout.system_tmp)  # a granted directory, replaced
        granted.rename(granted.with_name("old-systmp"))
        granted.mkdir()
        plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
        fresh = room.backend.child_setup(plan, (), stale)
        assert fresh._ruleset is not stale.ruleset
        assert stale.ruleset.fd < 0  # the stale one was closed
        fresh.close()

    def test_a_program_writes_into_a_replaced_directory(self, room):
        read_end, write_end = os.pipe()
        env = {**os.environ, "TMPDIR": room.layout.private_tmp}

        def write_into_src() -> int:
            plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
            spec = RunSpec(
                ["sh", "-c", "echo x > src/made && echo ok"],
                str(room.ws),
                env,
                plan=plan,
                backend=room.backend,
                grace=1,
                fds={1: write_end, 2: write_end},
            )
            return run(spec).exit_status

        assert write_into_src() == 0
        shutil.rmtree(room.ws / "src")
        (room.ws / "src").mkdir()
        assert write_into_src() == 0
        os.close(write_end)
        assert os.read(read_end, 100) == b"ok\nok\n"
        os.close(read_end)

    def test_output_file_given_by_descriptor_may_be_reopened(self, room, tmp_path):
        """At L0 a program may reopen the stdout file it was handed (not ours)."""
        out = tmp_path / "elsewhere.log"
        with out.open("wb") as handle:
            plan = room.backend.plan(Level.L0, network_open=False, layout=room.layout)
            spec = RunSpec(
                ["sh", "-c", "echo reopened > /dev/stdout"],
                str(room.ws),
                dict(os.environ),
                plan=plan,
                backend=room.backend,
                grace=1,
                fds={1: handle.fileno()},
            )
            assert run(spec).exit_status == 0
        assert out.read_bytes() == b"reopened\n"


@needs_netns
@pytest.mark.skipif(os.geteuid() != 0, reason="prepared namespaces are for root")
def test_prepared_network_namespace_is_entered_with_loopback_up(room):
    if room.backend is not BACKEND:
        pytest.skip("one backend is enough")
    prepared = make_network_namespace()
    expected = os.readlink(f"/proc/self/fd/{prepared}")
    assert expected != os.readlink("/proc/self/ns/net")  # we are back home
    reserve_network_namespace(prepared)
    read_end, write_end = os.pipe()
    code = (
        "import os, socket\n"
        "s = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(s.getsockname()).close()\n"
        "print(os.readlink('/proc/self/ns/net'))"
    )
    plan = room.backend.plan(Level.L1, network_open=False, layout=room.layout)
    spec = RunSpec(
        [PY, "-c", code],
        str(room.ws),
        dict(os.environ),
        plan=plan,
        backend=room.backend,
        grace=1,
        fds={1: write_end, 2: write_end},
    )
    assert run(spec).exit_status == 0
    os.close(write_end)
    assert os.read(read_end, 200).decode().strip() == expected
    os.close(read_end)
    assert take_reserved_network_namespace() is None  # used once
