"""Size and browser render time of ``guard report`` for a large session.

Writes a chained session log of N commands (default 10,000; one a second, a
mix of allowed, failing, network and blocked commands judged by the built-in
policy, with escalations and overrides among them), runs ``guard report`` on
it, and loads the page in headless Chromium (Playwright, Debian's
/usr/bin/chromium): the time from navigation start until the page's script
has drawn everything (``body[data-ready]``), as the page measures it.

Usage::

    python benchmarks/bench_report.py [--commands 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import argv_at, command_fields, judge

from statetrace_guard.audit.chain import ChainState, header_record, render, seal
from statetrace_guard.audit.chain import rfc3339_ms as ts
from statetrace_guard.evaluate import make_place
from statetrace_guard.policy import load_policy

SESSION = "2026-01-31_session-0001"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def records(commands: int, workspace: Path) -> list[dict[str, Any]]:
    """The session's records, unsealed, one command a second."""
    policy = load_policy(None)
    place = make_place(workspace, workspace, workspace / "Logs", None, {})
    start = datetime(2026, 1, 31, 9, tzinfo=UTC)
    cache: dict[tuple[str, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = [
        {
            "event": "session.started",
            "ts": ts(start),
            "session_id": SESSION,
            "level": "L1",
            "task_ids": ["ST-A-001"],
            "plan": "docs/plans/PlanA.md",
        }
    ]
    for index in range(commands):
        moment = start + timedelta(seconds=index)
        argv = argv_at(index, 2_000)
        judged = cache.get(argv) or cache.setdefault(argv, judge(argv, policy, place))
        fields = {**command_fields(argv, judged, workspace), "session_id": SESSION}
        if fields["decision"] == "block":
            out.append({**fields, "event": "command.blocked", "ts": ts(moment)})
        else:
            out.append({**fields, "event": "command.started", "ts": ts(moment)})
            done = moment + timedelta(milliseconds=200 + index % 700)
            code = 1 if index % 17 == 0 else 0
            finished = {"exit_code": code, "duration_ms": 200 + index % 700}
            out.append(
                {**fields, **finished, "event": "command.finished", "ts": ts(done)}
            )
        if index % 1000 == 500:
            out.append(
                {
                    "event": "session.override",
                    "ts": ts(moment),
                    "session_id": SESSION,
                    "parameters": {"-ThreadCeilingOverride": "2"},
                    "variables": {},
                }
            )
    return out


def write_log(path: Path, commands: int) -> None:
    """Seal the records into a chained session log."""
    state = ChainState.empty()
    header = seal(
        header_record(
            "session", "2026-01-31T09:00:00.000Z", "0.1.0", session_id=SESSION
        ),
        state,
    )
    chunks = [render(header)]
    state = ChainState.after(header)
    for record in records(commands, path.parent):
        sealed = seal({"schema_version": 1, **record}, state)
        chunks.append(render(sealed))
        state = ChainState.after(sealed)
    path.write_bytes(b"".join(chunks))


def render_ms(page_path: Path) -> dict[str, float]:
    """Load the page in Chromium; return its own timings, in ms from navigation.

    ``script_done``: the page's script has drawn everything; ``interactive``:
    the document is parsed and laid out (DOM interactive); ``loaded``: the load
    event ended.
    """
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        page.wait_for_load_state("load")
        timing = json.loads(page.evaluate("document.body.dataset.timing"))
        nav = page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return [n.domInteractive, n.loadEventEnd]; })()"
        )
        browser.close()
    return {"script_done": timing["end"], "interactive": nav[0], "loaded": nav[1]}


def main() -> None:
    """Make the log, the report, and time the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        log_dir = Path(tmp) / "Logs"
        (log_dir / "Sessions").mkdir(parents=True)
        gc.disable()
        write_log(log_dir / "Sessions" / f"{SESSION}.jsonl", args.commands)
        gc.enable()
        out = Path(tmp) / "report.html"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "statetrace_guard",
                "report",
                "--log-dir",
                str(log_dir),
                "--out",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        build = time.perf_counter() - start
        runs = [render_ms(out) for _ in range(args.runs)]
        medians = {
            key: round(statistics.median(run[key] for run in runs)) for key in runs[0]
        }
        print(
            json.dumps(
                {
                    "commands": args.commands,
                    "report_mb": round(out.stat().st_size / 1e6, 2),
                    "guard_report_seconds": round(build, 2),
                    "median_ms": medians,
                }
            )
        )


if __name__ == "__main__":
    main()
