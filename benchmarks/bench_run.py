"""How much the guard adds in front of a command, as ratios measured in one run.

Times, as medians of ``--runs`` runs each, interleaved so machine noise hits
every subject alike:

* ``python -c pass`` with this interpreter (``sys.executable``, never a
  pyenv shim): the baseline every ratio is against;
* ``/bin/true`` on its own;
* ``guard run --level L1 -- /bin/true`` (logging, chaining, enforcement on);
* ``guard run --level L1 -- bash -c 'git status --short | grep -c M; ls'``;
* ``guard run --level L0 -- bash -c 'curl http://example.com'`` (blocked;
  nothing is sent anywhere);
* ``guard check --batch`` throughput on a mix drawn from the test corpus;
* with ``--codex``, the Codex CLI sandbox (``codex sandbox -- /bin/true``,
  the native binary from the npm package ``@openai/codex``, installed into
  the benchmark's cache directory with ``npm`` on first use).

Every subject runs as an agent runs commands: stdin, stdout and stderr not a
terminal (``/dev/null``). The package's bytecode is compiled first, as an
installed wheel has it (``PYTHONDONTWRITEBYTECODE`` would otherwise make
every run compile the guard's modules from source).

Usage: ``python benchmarks/bench_run.py [--runs N] [--json] [--no-daemon]
[--codex] [--corpus DIR]``. The batch mix repeats the corpus's distinct
commands, so a tree with a larger corpus judges more distinct commands in
the same 20,000 lines: compare two trees on one mix (``--corpus`` naming
the other tree's ``tests/corpus``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
GUARD = [sys.executable, "-m", "statetrace_guard"]
SCRATCH = Path.home() / ".cache" / "statetrace-guard-bench"
CODEX_PACKAGE = "@openai/codex"


def guard_script() -> list[str]:
    """Prefer the installed console script (what agents call), else -m."""
    script = Path(sys.executable).with_name("guard")
    return [str(script)] if script.exists() else GUARD


def codex_binary() -> str | None:
    """The Codex CLI's native binary, installed with npm on first use."""
    prefix = SCRATCH / "codex"
    found = sorted(prefix.glob("node_modules/@openai/codex-*/vendor/*/bin/codex"))
    if not found and shutil.which("npm"):
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                CODEX_PACKAGE,
            ],
            check=False,
            capture_output=True,
        )
        found = sorted(prefix.glob("node_modules/@openai/codex-*/vendor/*/bin/codex"))
    return str(found[0]) if found else None


def compile_package() -> None:
    """Write the guard's bytecode, as installing a wheel does."""
    import statetrace_guard  # noqa: PLC0415

    compileall.compile_dir(
        str(Path(statetrace_guard.__file__).parent), quiet=1, workers=1
    )


def subjects(codex: str | None) -> dict[str, list[str]]:
    guard = guard_script()
    extra = {"codex sandbox /bin/true": [codex, "sandbox", "--", "/bin/true"]}
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "/bin/true": ["/bin/true"],
        "guard run L1 /bin/true": [*guard, "run", "--level", "L1", "--", "/bin/true"],
        "guard run L1 bash pipeline": [
            *guard,
            "run",
            "--level",
            "L1",
            "--",
            "bash",
            "-c",
            "git status --short | grep -c M; ls",
        ],
        "guard run L0 blocked curl": [
            *guard,
            "run",
            "--level",
            "L0",
            "--",
            "bash",
            "-c",
            "curl http://example.com",
        ],
        **(extra if codex else {}),
    }


def quietly(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` as an agent would: no terminal, output discarded."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def time_once(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one run."""
    start = time.perf_counter()
    quietly(argv, cwd, env).wait()
    return time.perf_counter() - start


def peak_rss(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Peak RSS in bytes of the process itself (its largest descendant too).

    Measured through GNU time: a child forked from this benchmark would
    carry the benchmark's own high-water mark across exec. Without
    /usr/bin/time, the figure is an upper bound that includes it.
    """
    gnu_time = "/usr/bin/time"
    if os.access(gnu_time, os.X_OK):
        with tempfile.NamedTemporaryFile("r") as out:
            quietly([gnu_time, "-f", "%M", "-o", out.name, *argv], cwd, env).wait()
            text = out.read().strip().splitlines()
        if text and text[-1].isdigit():
            return int(text[-1]) * 1024
    proc = quietly(argv, cwd, env)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped by wait4 above
    return usage.ru_maxrss * 1024


def time_subjects(
    runs: int, workspace: Path, env: dict[str, str], codex: str | None
) -> dict[str, tuple[float, int]]:
    """Median wall time and peak RSS per subject, runs interleaved."""
    table = subjects(codex)
    samples: dict[str, list[float]] = {name: [] for name in table}
    for argv in table.values():  # warm caches (pyc, page cache, the helper) once
        time_once(argv, workspace, env)
    time.sleep(1.0)  # let a helper started by the warm-up finish starting
    for _ in range(runs):
        for name, argv in table.items():
            samples[name].append(time_once(argv, workspace, env))
    return {
        name: (statistics.median(values), peak_rss(table[name], workspace, env))
        for name, values in samples.items()
    }


def batch_input(count: int, corpus: Path = CORPUS) -> str:
    lines = []
    for path in sorted(corpus.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                lines.append(
                    json.dumps(
                        {
                            "command": case["command"],
                            "shell": case["shell"]
                            if case["shell"] != "exec"
                            else "bash",
                            "level": "L1",
                        }
                    )
                )
    if not lines:
        lines = [json.dumps({"argv": ["git", "status"], "level": "L1"})]
    return "\n".join((lines * (count // len(lines) + 1))[:count]) + "\n"


def batch_throughput(
    count: int, workspace: Path, env: dict[str, str], corpus: Path = CORPUS
) -> float:
    data = batch_input(count, corpus)
    start = time.perf_counter()
    subprocess.run(
        [*GUARD, "check", "--batch", "-"],
        input=data.encode(),
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-daemon", action="store_true", help="measure the in-process path"
    )
    parser.add_argument(
        "--codex", action="store_true", help="also time `codex sandbox -- /bin/true`"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=CORPUS,
        help="draw the batch mix from this corpus directory (default tests/corpus; "
        "comparing two trees needs one mix: the corpus grows)",
    )
    args = parser.parse_args()
    compile_package()
    codex = codex_binary() if args.codex else None
    if args.codex and codex is None:
        print(
            "bench: no Codex CLI binary (npm missing or install failed)",
            file=sys.stderr,
        )
    # Outside the system temp directory, as an agent's workspace would be: a
    # workspace (or guard home) inside /tmp makes the sandbox split /tmp
    # entry by entry, which measures this machine's /tmp, not the guard.
    scratch = SCRATCH
    scratch.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="ws-", dir=scratch))
    (workspace / ".git").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATETRACE_")}
    env["STATETRACE_GUARD_HOME"] = str(
        Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    )
    env["STATETRACE_GUARD_DAEMON"] = "off" if args.no_daemon else "on"
    env["STATETRACE_GUARD_DAEMON_IDLE"] = "60"
    try:
        medians = time_subjects(args.runs, workspace, env, codex)
        rate = batch_throughput(args.batch, workspace, env, args.corpus)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    base = medians["python -c pass"][0]
    report: dict[str, dict[str, float]] = {
        name: {
            "median_ms": round(value * 1000, 2),
            "ratio": round(value / base, 2),
            "peak_rss_mb": round(peak / 2**20, 1),
        }
        for name, (value, peak) in medians.items()
    }
    codex_time = medians.get("codex sandbox /bin/true", (0.0, 0))[0]
    if codex_time:
        for name, row in report.items():
            if name.startswith("guard run"):
                row["vs_codex"] = round(medians[name][0] / codex_time, 2)
    report["check --batch"] = {"commands_per_second": round(rate)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    mode = "in-process" if args.no_daemon else "resident helper"
    print(
        f"medians of {args.runs} runs ({mode}); ratio against python -c pass ({sys.executable})"
    )
    for name, row in report.items():
        if "ratio" in row:
            vs_codex = f"  {row['vs_codex']:>5.2f}x codex" if "vs_codex" in row else ""
            print(
                f"  {name:<30} {row['median_ms']:>8.2f} ms  {row['ratio']:>5.2f}x  "
                f"peak {row['peak_rss_mb']:>5.1f} MB{vs_codex}"
            )
    print(f"  check --batch                  {rate:>8.0f} commands/s")


if __name__ == "__main__":
    main()
