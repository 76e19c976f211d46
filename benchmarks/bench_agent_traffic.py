"""How much ordinary agent traffic the guard lets run, and what it keeps out.

Reads a corpus of real agent commands (JSON Lines: ``command``, ``kind``
``local|loopback|network|install|l2``, ``agent``, ``source``; ``{ws}`` stands
for the workspace root) and the StateTrace command list (``command``,
``shell``, ``level``), judges each with ``guard check --batch`` of the
interpreter running this script, and prints:

* the share of ``local`` commands allowed at L1, and how many of those rely
  on containment;
* every ``network``/``install`` command allowed below L3 (opt-ins set), which
  must be none;
* StateTrace commands usable at their own level, and L2+ ones allowed below
  L2 (with whether they rely on containment).

Run it with the interpreter of the guard to measure, e.g. before/after::

    /work/base/.venv/bin/python benchmarks/bench_agent_traffic.py CORPUS.jsonl
    .venv/bin/python benchmarks/bench_agent_traffic.py CORPUS.jsonl --rows out.jsonl

Nothing runs: ``check --batch`` only judges.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATETRACE = HERE.parent / "tests" / "assets" / "statetrace" / "commands.jsonl"
OPT_INS = {"STATETRACE_AGENT_ALLOW_NET": "1", "STATETRACE_AGENT_ALLOW_INSTALL": "1"}


def judge(lines: list[dict], workspace: Path, home: Path) -> list[dict]:
    """Judge batch lines with this interpreter's guard; one answer per line."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STATETRACE_", "GUARD_"))
    }
    env["STATETRACE_GUARD_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "statetrace_guard", "check", "--batch", "-"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=workspace,
        env=env,
        check=False,
    )
    answers = [json.loads(text) for text in done.stdout.splitlines()]
    if len(answers) != len(lines):
        sys.exit(f"guard answered {len(answers)} of {len(lines)} lines: {done.stderr}")
    return answers


def batch_line(
    command: str, shell: str, level: str, workspace: Path, **extra: object
) -> dict:
    """One ``check --batch`` input line."""
    return {
        "command": command.replace("{ws}", str(workspace)),
        "shell": shell,
        "level": level,
        **extra,
    }


def agent_rows(corpus: list[dict], workspace: Path, home: Path) -> list[dict]:
    """Judge the agent corpus at L1 (and network/install at L2 with opt-ins)."""
    lines = [batch_line(row["command"], "bash", "L1", workspace) for row in corpus]
    lines += [
        batch_line(row["command"], "bash", "L2", workspace, env=OPT_INS)
        for row in corpus
    ]
    answers = judge(lines, workspace, home)
    out = []
    for index, row in enumerate(corpus):
        at_l1, at_l2 = answers[index], answers[len(corpus) + index]
        out.append(
            {
                **row,
                "l1": at_l1.get("decision"),
                "contained": bool(at_l1.get("contained")),
                "required": at_l1.get("required_level"),
                "l2_with_opt_ins": at_l2.get("decision"),
            }
        )
    return out


def statetrace_rows(workspace: Path, home: Path) -> list[dict]:
    """Judge the StateTrace list at its own level and at the level below."""
    rows = [json.loads(text) for text in STATETRACE.read_text().splitlines() if text]
    below = {"L0": "L0", "L1": "L0", "L2": "L1", "L3": "L2"}
    lines = [
        batch_line(r["command"], r["shell"], r["level"], workspace, env=OPT_INS)
        for r in rows
    ]
    lines += [
        batch_line(r["command"], r["shell"], below[r["level"]], workspace) for r in rows
    ]
    answers = judge(lines, workspace, home)
    return [
        {
            **row,
            "own": answers[index].get("decision"),
            "below": answers[len(rows) + index].get("decision"),
            "below_contained": bool(answers[len(rows) + index].get("contained")),
        }
        for index, row in enumerate(rows)
    ]


def report(agents: list[dict], statetrace: list[dict]) -> None:
    """Print the figures."""
    local = [row for row in agents if row["kind"] == "local"]
    allowed = [row for row in local if row["l1"] == "allow"]
    contained = [row for row in allowed if row["contained"]]
    print(
        f"local agent commands allowed at L1: {len(allowed)}/{len(local)} "
        f"({100 * len(allowed) / len(local):.1f}%), {len(contained)} contained"
    )
    for row in local:
        if row["l1"] != "allow":
            print(f"  blocked at L1: [{row['agent']}] {row['command'][:100]!r}")
    risky = [row for row in agents if row["kind"] in {"network", "install"}]
    leaked = [
        row
        for row in risky
        if row["l1"] == "allow" or row["l2_with_opt_ins"] == "allow"
    ]
    print(f"network/install commands allowed below L3: {len(leaked)}/{len(risky)}")
    for row in leaked:
        how = "contained: network namespace" if row["contained"] else "NOT contained"
        print(f"  allowed ({how}): {row['command'][:100]!r}")
    for level in ("L0", "L1", "L2", "L3"):
        mine = [row for row in statetrace if row["level"] == level]
        usable = [row for row in mine if row["own"] == "allow"]
        print(
            f"StateTrace {level} commands usable at {level}: {len(usable)}/{len(mine)}"
        )
    high = [row for row in statetrace if row["level"] in {"L2", "L3"}]
    early = [row for row in high if row["below"] == "allow"]
    print(
        f"StateTrace L2+ commands allowed one level below: {len(early)}/{len(high)}, "
        f"{sum(row['below_contained'] for row in early)} of them contained"
    )
    for row in early:
        tag = "contained" if row["below_contained"] else "NOT contained"
        print(f"  {row['level']} allowed below ({tag}): {row['command'][:100]!r}")


def main() -> None:
    """Parse arguments, judge, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="agent commands (JSON Lines)")
    parser.add_argument("--rows", type=Path, help="write every judged row here")
    args = parser.parse_args()
    corpus = [json.loads(text) for text in args.corpus.read_text().splitlines() if text]
    with tempfile.TemporaryDirectory(prefix="agent-traffic-") as scratch:
        workspace = Path(scratch) / "ws"
        (workspace / ".git").mkdir(parents=True)
        home = Path(scratch) / "home"
        home.mkdir()
        agents = agent_rows(corpus, workspace, home)
        statetrace = statetrace_rows(workspace, home)
    report(agents, statetrace)
    if args.rows:
        with args.rows.open("w") as out:
            for row in (*agents, *statetrace):
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
