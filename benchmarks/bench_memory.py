"""Memory of reading a big session log: ``guard verify`` and the helper's fold.

Generates a correctly chained session log of about ``--mb`` megabytes (the
generator of ``bench_replay.py``: a header, then started/finished pairs and
blocked records of real judgements), then measures, each in a fresh process:

* ``guard verify FILE`` (peak RSS and wall time, through GNU ``time``),
* the helper's fold of the session (``load_session`` of a 200 MB session, as
  the resident helper does before each command of it): peak RSS and time.

The guard home is empty (no key), so verify checks the chain and says it
cannot authenticate: the same work any version does. Run it from a checkout
with its own virtual environment to compare versions on one log
(``--log FILE`` reuses a generated one).

Usage: python benchmarks/bench_memory.py [--mb 200] [--log FILE]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replay import SESSION, write_log

_BYTES_PER_COMMAND = 1_770  # bench_replay's mix, measured


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of one command, through GNU time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M %e", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    peak_kb, seconds = done.stderr.strip().splitlines()[-1].split()
    return int(peak_kb) / 1024, float(seconds)


FOLD = (
    "import sys; from pathlib import Path;"
    "from statetrace_guard.sessions.store import load_session;"
    "s = load_session(Path(sys.argv[1]), sys.argv[2], details=False);"
    "print(s.runs_total)"
)


def main() -> None:
    """Generate (or reuse) the log, then measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        log_dir = root / "Logs"
        (log_dir / "Sessions").mkdir(parents=True)
        log = args.log or root / "log.jsonl"
        if not log.exists():
            gc.disable()
            write_log(log, args.mb * 1_000_000 // _BYTES_PER_COMMAND, root, 2_000)
            gc.enable()
        target = log_dir / "Sessions" / f"{SESSION}.jsonl"
        shutil.copyfile(log, target)
        env = {**os.environ, "STATETRACE_GUARD_HOME": str(root / "home")}
        size = target.stat().st_size / 1e6
        print(f"log: {size:.0f} MB, {sum(1 for _ in target.open('rb')):,} records")
        python = sys.executable
        verify = measure(
            [python, "-m", "statetrace_guard", "verify", str(target)], env, root
        )
        print(f"guard verify     peak {verify[0]:7.0f} MB  {verify[1]:6.1f} s")
        fold = measure([python, "-c", FOLD, str(log_dir), SESSION], env, root)
        print(f"helper's fold    peak {fold[0]:7.0f} MB  {fold[1]:6.1f} s")


if __name__ == "__main__":
    main()
