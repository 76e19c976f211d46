"""Added wall time of kernel enforcement per command.

Times, in this process and interleaved, ``run()`` of ``/bin/true``:

* ``bare``: no plan (no sandbox);
* ``L1``: layout (placeholders, the built-in [protect] list expanded) + plan
  (probe cached) + ruleset + namespaces + mount view, as ``guard run --level
  L1`` does per command;
* ``L0``: the same at L0.

and, as the scale of issue 8, ``python -c pass`` as a subprocess. Prints the
medians in ms, the added cost of enforcement and ratios. Target: enforcement
adds at most 10 ms.

Run: ``python benchmarks/bench_enforcement.py [--runs N] [--workspace DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from statetrace_guard.layout import fs_layout
from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir, guard_owned_paths, workspace_root
from statetrace_guard.policy import load_policy
from statetrace_guard.runner import RunSpec, run
from statetrace_guard.sandbox import select_backend
from statetrace_guard.sandbox.base import FsLayout, make_private_tmp, remove_private_tmp

TRUE = "/bin/true"


def layout_for(workspace: Path, private: str, level: Level) -> FsLayout:
    """The layout `guard run` builds: guard's paths and the built-in [protect] list."""
    owned = guard_owned_paths(default_log_dir(workspace), None)
    return fs_layout(
        level=level,
        workspace=os.path.realpath(workspace),
        log_dir=str(default_log_dir(workspace)),
        private_tmp=private,
        guard_owned=tuple(os.path.realpath(p) for p in owned),
        patterns=load_policy(None).protect,
    )


def once_bare(env: dict[str, str]) -> float:
    start = time.perf_counter()
    outcome = run(RunSpec([TRUE], "/", env))
    assert outcome.exit_status == 0, outcome
    return (time.perf_counter() - start) * 1000


def once_enforced(env: dict[str, str], workspace: Path, level: Level) -> float:
    backend = select_backend()
    start = time.perf_counter()
    private = make_private_tmp(os.path.realpath(tempfile.gettempdir()))
    plan = backend.plan(
        level, network_open=False, layout=layout_for(workspace, private, level)
    )
    outcome = run(
        RunSpec(
            [TRUE],
            str(workspace),
            {**env, "TMPDIR": private},
            plan=plan,
            backend=backend,
        )
    )
    remove_private_tmp(private)
    assert outcome.exit_status == 0, outcome
    return (time.perf_counter() - start) * 1000


def once_python() -> float:
    start = time.perf_counter()
    outcome = run(RunSpec([sys.executable, "-c", "pass"], "/", dict(os.environ)))
    assert outcome.exit_status == 0
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="workspace to plan for [default: a scratch copy of a repo layout]",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = (
            workspace_root(args.workspace)
            if args.workspace
            else scratch_workspace(scratch)
        )
        measure(workspace, args.runs)


def scratch_workspace(scratch: str) -> Path:
    """A workspace shaped like StateTrace's: 20 entries, .git, Logs, Data."""
    root = Path(os.path.realpath(scratch)) / "ws"
    for sub in ("Sessions", "NetOps", "Approvals", "Reports", "IngestionMetrics"):
        (root / "Logs" / sub).mkdir(parents=True)
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".git" / "config").write_text("")
    for site in ("BOS1", "NYC2", "SFO3"):
        (root / "Data" / site).mkdir(parents=True)
        (root / "Data" / site / f"{site}.accdb").write_text("")
    (root / "Data" / "StateTraceSettings.json").write_text("{}")
    for i in range(10):
        (root / f"dir{i}").mkdir()
        (root / f"file{i}.txt").write_text("")
    return root


def measure(workspace: Path, runs: int) -> None:
    """Print medians of bare, enforced and ``python -c pass`` runs."""
    env = dict(os.environ)
    backend = select_backend()
    print(f"backend {backend.name}: {backend.probe().as_dict()}")
    plan = backend.plan(
        Level.L1,
        network_open=False,
        layout=layout_for(workspace, "/nonexistent", Level.L1),
    )
    print(
        f"L1 plan: {plan.enforcement}, {len(plan.grants)} grants, "
        f"{len(plan.readonly)} read-only mounts, {len(plan.pinned)} pinned, "
        f"protect={plan.details.get('protect')}"
    )
    times: dict[str, list[float]] = {
        "bare": [],
        "L1": [],
        "L0": [],
        "python -c pass": [],
    }
    for _ in range(3):  # warm up caches and the probe
        once_bare(env), once_enforced(env, workspace, Level.L1)
    for _ in range(max(runs, 20)):
        times["bare"].append(once_bare(env))
        times["L1"].append(once_enforced(env, workspace, Level.L1))
        times["L0"].append(once_enforced(env, workspace, Level.L0))
        times["python -c pass"].append(once_python())
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, value in med.items():
        print(f"{name:<16} median {value:7.2f} ms  (n={len(times[name])})")
    for level in ("L1", "L0"):
        added = med[level] - med["bare"]
        verdict = "OK" if added <= 10.0 else "OVER TARGET"
        print(
            f"enforcement {level} adds {added:6.2f} ms "
            f"(ratio {med[level] / med['bare']:.2f}x bare, "
            f"{added / med['python -c pass']:.2f}x python -c pass): {verdict}"
        )


if __name__ == "__main__":
    main()
