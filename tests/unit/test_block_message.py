from __future__ import annotations

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.execute import block_message
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy

POLICY = load_policy(None)


def message(tmp_path, level, argv, env=None):
    place = make_place(tmp_path, tmp_path, tmp_path / "Logs", None, env or {})
    verdict = evaluate(argv, level, POLICY, place).verdict
    assert not verdict.allowed
    return block_message(verdict)


class TestBlockMessage:
    def test_names_the_level_below_it(self, tmp_path):
        text = message(tmp_path, Level.L0, ("curl", "-s", "http://example.com"))
        assert text.splitlines()[0] == (
            "guard: blocked: curl -s http://example.com (network) needs L3, "
            "session is L0 (rule effect:network): curl talks to the network"
        )

    def test_names_the_missing_opt_in_at_l3(self, tmp_path):
        """At L3 what is missing is the operator's variable: the line says so."""
        text = message(tmp_path, Level.L3, ("curl", "https://pypi.org/simple/"))
        assert "needs L3 with STATETRACE_AGENT_ALLOW_NET=1, session is L3" in text

    def test_never_for_dynamic(self, tmp_path):
        text = message(tmp_path, Level.L3, ("bash", "-c", 'eval "$X"'))
        assert "needs never, session is L3" in text
