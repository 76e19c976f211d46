from __future__ import annotations

import pytest

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.decision import Decision, DecisionContext, decide, max_required
from statetrace_guard.levels import Effect, Level
from statetrace_guard.policy import load_policy, load_policy_bytes

WS = "/ws"
CTX = DecisionContext(
    workspace=WS,
    cwd=WS,
    protected=(
        f"{WS}/Logs/Sessions",
        f"{WS}/Logs/NetOps",
        "/home/op/.local/state/statetrace-guard",
        f"{WS}/guard.toml",
    ),
    temp_dirs=("/tmp",),
)
OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1", "STATETRACE_AGENT_ALLOW_INSTALL": "1"}
POLICY = load_policy(None)


def cmd(name: str, *effects: Effect, argv: tuple[str, ...] = (), **kw) -> SimpleCommand:
    return SimpleCommand(
        argv=argv or (name,),
        shell="bash",
        name=name,
        effects=frozenset(effects or {Effect.READ}),
        spec=f"test:{name}",
        **kw,
    )


def judge(
    *commands: SimpleCommand,
    level: Level = Level.L1,
    env: dict[str, str] | None = None,
    policy=POLICY,
):
    ctx = DecisionContext(
        workspace=CTX.workspace,
        cwd=CTX.cwd,
        protected=CTX.protected,
        temp_dirs=CTX.temp_dirs,
        env=env or {},
    )
    return decide(Classification(commands=commands), policy, level, ctx)


class TestEffectLevels:
    @pytest.mark.parametrize(
        ("effect", "lowest"),
        [
            (Effect.READ, Level.L0),
            (Effect.WRITE, Level.L1),
            (Effect.NETWORK, Level.L3),
            (Effect.INSTALL, Level.L3),
            (Effect.DYNAMIC, None),
        ],
    )
    def test_effect_sets_required_level(self, effect, lowest):
        """Without a rule, each effect needs the policy's level for it."""
        verdict = judge(cmd("x", effect), level=Level.L3, env=OPT_IN)
        assert verdict.required_level == lowest
        assert verdict.allowed == (lowest is not None)

    def test_strictest_command_wins(self):
        """A list is as strict as its strictest part."""
        verdict = judge(cmd("ls"), cmd("curl", Effect.NETWORK), level=Level.L1)
        assert verdict.decision is Decision.DENY
        assert verdict.required_level is Level.L3
        assert verdict.blocking is not None
        assert verdict.blocking.command.name == "curl"

    def test_never_dominates(self):
        """One dynamic part makes the whole command never allowed."""
        assert max_required([Level.L0, None, Level.L3]) is None
        assert max_required([]) is Level.L0


class TestOptIn:
    @pytest.mark.parametrize("value", [None, "0", "true", "yes", " 1", "1 ", "01"])
    def test_network_needs_opt_in_exactly_one(self, value):
        """Only the exact value 1 opens the network at L3."""
        env = {} if value is None else {"STATETRACE_AGENT_ALLOW_NET": value}
        verdict = judge(cmd("curl", Effect.NETWORK), level=Level.L3, env=env)
        assert not verdict.allowed
        assert verdict.required_level is Level.L3

    def test_network_allowed_at_l3_with_opt_in(self):
        verdict = judge(
            cmd("curl", Effect.NETWORK),
            level=Level.L3,
            env={"STATETRACE_AGENT_ALLOW_NET": "1"},
        )
        assert verdict.allowed

    def test_install_needs_install_opt_in(self):
        """An install needs the install variable, not only the network one."""
        verdict = judge(
            cmd("pip", Effect.INSTALL, Effect.NETWORK),
            level=Level.L3,
            env={"STATETRACE_AGENT_ALLOW_NET": "1"},
        )
        assert not verdict.allowed
        assert verdict.opt_ins == {
            "STATETRACE_AGENT_ALLOW_NET",
            "STATETRACE_AGENT_ALLOW_INSTALL",
        }

    def test_rule_cannot_lower_network_below_l3(self):
        """A permissive rule never lifts the network floor."""
        policy = load_policy_bytes(
            b'name = "t"\n[[rules]]\nid = "loose"\nprogram = ["curl"]\nlevel = "L0"\n',
            "t.toml",
        )
        verdict = judge(cmd("curl", Effect.NETWORK), level=Level.L2, policy=policy)
        assert not verdict.allowed
        assert verdict.required_level is Level.L3


class TestWrites:
    @pytest.mark.parametrize(
        "target",
        [
            "Logs/Sessions/x.jsonl",
            "Logs/NetOps/2026-01-01.json",
            "./Logs/../Logs/Sessions/a",
            "/ws/Logs/Sessions",
            "Logs",
            "guard.toml",
            "/home/op/.local/state/statetrace-guard/redact.key",
            "Logs\\Sessions\\x",
        ],
    )
    def test_rejects_write_to_guard_files(self, target):
        """Writes to the guard's own files are never allowed, however spelled."""
        verdict = judge(
            cmd("tee", Effect.WRITE, writes=(target,)), level=Level.L3, env=OPT_IN
        )
        assert not verdict.allowed
        assert verdict.required_level is None
        assert verdict.blocking is not None
        assert verdict.blocking.rule == "self-protect"

    @pytest.mark.parametrize(
        "target",
        [
            "/etc/passwd",
            "~/.bashrc",
            "C:\\Windows\\x",
            "HKCU:\\Software\\X",
            "../outside.txt",
        ],
    )
    def test_rejects_write_outside_workspace(self, target):
        verdict = judge(
            cmd("cp", Effect.WRITE, writes=(target,)), level=Level.L3, env=OPT_IN
        )
        assert not verdict.allowed
        assert verdict.blocking is not None
        assert verdict.blocking.rule == "write-outside-workspace"

    @pytest.mark.parametrize(
        "target",
        [
            "out.txt",
            "Logs/Reports/x.json",
            "/tmp/x",
            "Logs\\IngestionMetrics\\a.json",
            ".",
        ],
    )
    def test_accepts_write_inside_workspace_at_l1(self, target):
        verdict = judge(cmd("cp", Effect.WRITE, writes=(target,)), level=Level.L1)
        assert verdict.allowed
        assert not judge(
            cmd("cp", Effect.WRITE, writes=(target,)), level=Level.L0
        ).allowed

    @pytest.mark.parametrize("target", ["/dev/null", "$null", "&2", "/dev/stderr"])
    def test_sinks_are_not_writes(self, target):
        verdict = judge(cmd("echo", redirects=(target,)), level=Level.L0)
        assert verdict.allowed

    def test_redirect_adds_write_to_a_read(self):
        verdict = judge(cmd("echo", redirects=("a.txt",)), level=Level.L0)
        assert not verdict.allowed
        assert Effect.WRITE in verdict.effects


class TestVariables:
    @pytest.mark.parametrize(
        "name",
        ["STATETRACE_GUARD_LEVEL", "statetrace_guard_session", "STATETRACE_GUARD_HOME"],
    )
    def test_rejects_setting_guard_variables(self, name):
        verdict = judge(cmd("export", env_sets=(name,)), level=Level.L3, env=OPT_IN)
        assert not verdict.allowed
        assert verdict.required_level is None

    def test_rejects_self_granted_opt_in(self):
        """Setting the opt-in the operator has not set is blocked at every level."""
        for level in Level:
            verdict = judge(
                cmd("export", env_sets=("STATETRACE_AGENT_ALLOW_NET",)), level=level
            )
            assert not verdict.allowed

    def test_opt_in_already_granted_is_a_no_op_at_l3(self):
        """Re-stating an opt-in the operator set grants nothing new (the plan's L3 form)."""
        verdict = judge(
            cmd("set", env_sets=("STATETRACE_AGENT_ALLOW_INSTALL",)),
            level=Level.L3,
            env={"STATETRACE_AGENT_ALLOW_INSTALL": "1"},
        )
        assert verdict.allowed
        assert verdict.required_level is Level.L3


class TestRules:
    def test_strictest_matching_rule_wins(self):
        """Two rules match: the stricter level decides."""
        script_cmd = SimpleCommand(
            argv=("Tools/Invoke-RoutingCliCaptureSession.ps1", "-Mode", "Online"),
            shell="pwsh",
            name="tools/invoke-routingcliCapturesession.ps1",
            effects=frozenset({Effect.DYNAMIC}),
            spec="script",
            script="Tools/Invoke-RoutingCliCaptureSession.ps1",
        )
        verdict = judge(script_cmd, level=Level.L3, env=OPT_IN)
        assert verdict.commands[0].rule == "routing-capture-online"
        assert verdict.required_level is Level.L3

    def test_rule_names_dynamic_command(self):
        """A rule lifts a dynamic command to its level (pytest runs project code)."""
        verdict = judge(
            cmd("pytest", Effect.DYNAMIC, argv=("pytest", "-q")), level=Level.L1
        )
        assert verdict.allowed
        assert verdict.commands[0].rule == "pytest"

    def test_args_prefix_must_match(self):
        python = cmd("python", Effect.DYNAMIC, argv=("python", "-c", "print(1)"))
        assert not judge(python, level=Level.L3, env=OPT_IN).allowed
        python_pytest = cmd("python", Effect.DYNAMIC, argv=("python", "-m", "pytest"))
        assert judge(python_pytest, level=Level.L1).allowed

    def test_empty_command_list_is_allowed_at_l0(self):
        verdict = judge(level=Level.L0)
        assert verdict.allowed
        assert verdict.required_level is Level.L0


class TestGitConfig:
    @pytest.mark.parametrize(
        "target", [".git/hooks/pre-commit", ".git/config", "/ws/.git/hooks"]
    )
    def test_git_hooks_and_config_need_l2(self, target):
        """As the kernel sandbox keeps them read-only below L2, so does the policy."""
        command = cmd("tee", Effect.WRITE, writes=(target,))
        assert not judge(command, level=Level.L1).allowed
        verdict = judge(command, level=Level.L2)
        assert verdict.allowed
        assert verdict.commands[0].rule == "protected-path"

    def test_other_git_files_are_ordinary_writes(self):
        assert judge(
            cmd("tee", Effect.WRITE, writes=(".git/index.lock",)), level=Level.L1
        ).allowed
