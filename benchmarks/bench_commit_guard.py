"""The commit guard's cost on a large repository (issue 20: under 200 ms).

Builds a git repository with 10,000 tracked files (``--files``), then stages
200 changes (``--staged``: half edits of tracked files, half new files, each a
couple of kilobytes of code-like text) and measures, as medians of ``--runs``
interleaved runs:

* ``evaluate`` of ``git commit -m x`` with an inspector (classify, decide,
  ask git what the commit holds, scan it): the decision-time check inside a
  warm ``guard run`` / helper, in-process;
* the same for ``git commit -a -m x`` with the 200 changes unstaged (the
  working tree is compared too);
* ``evaluate`` of ``git status`` (no commit: no git process runs) for scale;
* the ``pre-commit`` hook as git runs it: a fresh
  ``python -I -m statetrace_guard.guardrails.hook pre-commit`` process,
  against ``python -c pass`` in the same run.

Usage: ``python benchmarks/bench_commit_guard.py [--files N] [--staged N]
[--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.guardrails.inspect import Inspector
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy

TEXT = (
    "function Get-Item{n} {{\n"
    "    param([string]$Path)\n"
    "    # reads the item and returns its properties ({n})\n"
    "    $item = Get-Item -LiteralPath $Path\n"
    "    return [pscustomobject]@{{ Name = $item.Name; Length = $item.Length }}\n"
    "}}\n"
) * 8


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return done.stdout


def build(root: Path, files: int) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.invalid")
    git(root, "config", "user.name", "Bench")
    for i in range(files):
        path = root / f"src/m{i % 50:02d}/d{i % 7}/file{i:05d}.ps1"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TEXT.format(n=i))
    git(root, "add", "-A")
    git(root, "-c", "core.hooksPath=/dev/null", "commit", "-qm", "tracked files")


def change(root: Path, staged: int, files: int) -> None:
    for i in range(staged // 2):
        index = i * (files // max(1, staged // 2))
        path = root / f"src/m{index % 50:02d}/d{index % 7}/file{index:05d}.ps1"
        path.write_text(TEXT.format(n=f"{index}-edited"))
    for i in range(staged - staged // 2):
        path = root / f"new/n{i % 10}/added{i:04d}.ps1"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TEXT.format(n=f"new-{i}"))


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--staged", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    policy = load_policy(None)
    with tempfile.TemporaryDirectory(prefix="bench-commit-guard-") as tmp:
        root = Path(tmp)
        build(root, args.files)
        change(root, args.staged, args.files)
        place = make_place(root, root, root / "Logs", None, dict(os.environ))
        inspector = Inspector(
            str(root.resolve()), str(root.resolve()), str(root / "Logs"), os.environ
        )

        def judge(argv: list[str]) -> None:
            judgement = evaluate(argv, Level.L1, policy, place, inspector)
            if not judgement.verdict.allowed:
                raise SystemExit(f"unexpected block: {judgement.verdict.reasons}")

        def hook() -> None:
            subprocess.run(
                [
                    sys.executable,
                    "-I",
                    "-m",
                    "statetrace_guard.guardrails.hook",
                    "pre-commit",
                ],
                cwd=root,
                check=True,
            )

        def baseline() -> None:
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        def unstage() -> None:
            git(root, "reset", "-q")

        def stage() -> None:
            git(root, "add", "-A")

        stage()
        judge(["git", "status"])  # warm the parsers
        samples: dict[str, list[float]] = {
            "commit (200 staged)": [],
            "commit -a (200 unstaged)": [],
            "git status (no commit)": [],
            "pre-commit hook process": [],
            "python -c pass": [],
        }
        for _ in range(args.runs):
            stage()
            samples["commit (200 staged)"].append(
                timed(lambda: judge(["git", "commit", "-m", "x"]))
            )
            samples["git status (no commit)"].append(
                timed(lambda: judge(["git", "status"]))
            )
            samples["pre-commit hook process"].append(timed(hook))
            samples["python -c pass"].append(timed(baseline))
            unstage()
            samples["commit -a (200 unstaged)"].append(
                timed(lambda: judge(["git", "commit", "-a", "-m", "x"]))
            )
        medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["python -c pass"]
    if args.json:
        print(json.dumps({"files": args.files, "staged": args.staged, "ms": medians}))
        return
    print(
        f"{args.files} tracked files, {args.staged} changes, {args.runs} runs (medians)"
    )
    for name, value in medians.items():
        print(f"  {name:28} {value:8.1f} ms  {value / base:5.2f}x python -c pass")


if __name__ == "__main__":
    main()
