"""guard report in a real headless browser: Debian's Chromium driven by Playwright.

The page must load from a file:// URL with no console error and no request
but its own, carry the session log's facts in its embedded JSON document, show
blocked rows and markers, and stay fast and small for 10,000 commands. A
screenshot of a golden session is kept as a test artifact (the directory in
$GUARD_TEST_ARTIFACTS, else the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from statetrace_guard.audit.chain import ChainState, header_record, render, seal
from statetrace_guard.audit.table import command_text
from statetrace_guard.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, Chromium needs --no-sandbox; the rest keep it off the network
# (background requests are refused by this machine's closed network).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GOLDEN = Path(__file__).resolve().parents[2] / "examples" / "sessions"
# The l2-pipeline golden session (its id changes when examples are regenerated).
SESSION = json.loads((GOLDEN / "index.json").read_text())["l2-pipeline"]["session_id"]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("GUARD_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def report(log_dir: Path, out: Path, *args: str) -> Path:
    result = CliRunner().invoke(
        main, ["report", "--log-dir", str(log_dir), "--out", str(out), *args]
    )
    assert result.exit_code == 0, result.output
    return out


class Loaded:
    """A page loaded from disk, with what it logged and requested."""

    def __init__(self, browser: Any, path: Path, width: int = 1280) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.console: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        self.url = path.resolve().as_uri()

    def data(self) -> dict[str, Any]:
        text = self.page.eval_on_selector("#guard-report-data", "e => e.textContent")
        return dict(json.loads(text))

    def count(self, selector: str) -> int:
        return int(self.page.eval_on_selector_all(selector, "els => els.length"))


def log_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class TestGoldenSession:
    @pytest.fixture
    def loaded(self, browser, tmp_path) -> Iterator[Loaded]:
        out = report(GOLDEN, tmp_path / "report.html", "--session", SESSION)
        page = Loaded(browser, out)
        yield page
        page.page.close()

    def test_loads_clean_and_offline(self, loaded):
        """No console message at all, and no request but the file itself."""
        assert loaded.console == []
        assert loaded.requests == [loaded.url]

    def test_embedded_json_matches_the_log(self, loaded):
        """Every command of the log, in order, with its state and level."""
        records = log_records(GOLDEN / "Sessions" / f"{SESSION}.jsonl")
        expected = [
            (
                command_text(r),
                "blocked" if r["event"] == "command.blocked" else "finished",
                r["level"],
            )
            for r in records
            if r["event"] in {"command.started", "command.blocked"}
        ]
        data = loaded.data()
        assert data["scope"]["sessions"] == [SESSION]
        got = [(c["command"], c["state"], c["level"]) for c in data["commands"]]
        assert got == expected
        finished = [r for r in records if r["event"] == "command.finished"]
        assert [
            c.get("exit_code") for c in data["commands"] if c["state"] == "finished"
        ] == [r["exit_code"] for r in finished]
        assert all(f["ok"] for f in data["files"])
        assert [level["level"] for level in data["sessions"][0]["levels"]] == [
            "L1",
            "L2",
        ]

    def test_blocked_rows_and_markers(self, loaded):
        """The blocked row says BLOCK with its reason; escalation and overrides are marked."""
        blocked = loaded.page.inner_text("#commands .r.blocked")
        assert "BLOCK" in blocked
        assert "needs L2" in blocked
        assert loaded.count("#timeline rect.bar") == 7
        markers = loaded.page.eval_on_selector_all(
            "#timeline g.mark text", "els => els.map(e => e.textContent)"
        )
        assert markers.count("▲") == 1
        assert markers.count("◆") == 3
        assert markers.count("✔") == 1

    def test_hover_and_filter(self, loaded):
        """Hover shows the deciding reason; the blocked filter leaves one row."""
        bar = loaded.page.locator("#timeline rect.bar").first
        bar.hover()
        tip = loaded.page.inner_text("#tip")
        assert "Invoke-StateTracePipeline.ps1: write needs L2" in tip
        loaded.page.select_option("#f-state", "blocked")
        visible = loaded.page.eval_on_selector_all(
            "#commands .body .r", "rows => rows.filter(r => !r.hidden).length"
        )
        assert visible == 1
        assert "showing 1 of 7" in loaded.page.inner_text("#f-count")

    def test_screenshot_artifact(self, loaded, artifacts):
        """A screenshot of the golden session, kept for people to look at."""
        shot = artifacts / f"report-{SESSION}.png"
        loaded.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

    def test_prints(self, loaded, artifacts):
        """Printed (A4 PDF), the page keeps its rows and drops the filters."""
        pdf = artifacts / f"report-{SESSION}.pdf"
        loaded.page.emulate_media(media="print")
        assert not loaded.page.is_visible(".filters")
        loaded.page.pdf(path=str(pdf), format="A4")
        assert pdf.stat().st_size > 10_000


def test_every_golden_session_and_the_halt(browser, tmp_path):
    """All sessions of the day: a halt marker, FAIL and PASS test runs."""
    out = report(GOLDEN, tmp_path / "all.html", "--since", "2026-11-24")
    loaded = Loaded(browser, out)
    assert loaded.console == []
    data = loaded.data()
    assert len(data["sessions"]) == 5
    assert [t["result"] for t in data["tests"]] == ["FAIL", "PASS"]
    markers = loaded.page.eval_on_selector_all(
        "#timeline g.mark text", "els => els.map(e => e.textContent)"
    )
    assert "■" in markers
    # 12: the L3 loopback download is refused too (no [[network]] entry names it)
    assert loaded.count("#commands .r.blocked") == 12
    loaded.page.close()


def test_markup_in_records_stays_text(browser, tmp_path):
    """A command holding </script> and HTML is shown as text; nothing runs."""
    log_dir = tmp_path / "Logs"
    evil = "echo '</script><script>console.error(\"pwned\")</script><img src=x onerror=alert(1)>'"
    write_session(log_dir, "2026-12-01_session-0001", [("bash", "-c", evil)])
    loaded = Loaded(browser, report(log_dir, tmp_path / "evil.html"))
    assert loaded.console == []
    assert loaded.requests == [loaded.url]
    assert "</script><script>" in loaded.page.inner_text("#commands .cmd")
    loaded.page.close()


def write_session(
    log_dir: Path, session: str, commands: list[tuple[str, ...]], blocked_every: int = 0
) -> Path:
    """Write a chained session log quickly (no judging): one command a second."""
    path = log_dir / "Sessions" / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = ChainState.empty()
    header = seal(
        header_record(
            "session", "2026-12-01T09:00:00.000Z", "0.1.0", session_id=session
        ),
        state,
    )
    chunks = [render(header)]
    state = ChainState.after(header)
    base = {
        "schema_version": 1,
        "session_id": session,
        "level": "L1",
        "pid": 1,
        "cwd": "/w",
    }
    for index, argv in enumerate(commands):
        second = f"2026-12-01T{9 + index // 3600:02d}:{index // 60 % 60:02d}:{index % 60:02d}"
        blocked = blocked_every and index % blocked_every == 0
        fields = {
            **base,
            "argv": list(argv),
            "effects": ["network"] if blocked else ["read"],
            "reasons": [
                f"{argv[0]}: network (posix:{argv[0]}) needs L3: the policy's level for network"
                if blocked
                else f"{argv[0]}: read (posix:{argv[0]}) needs L0: the policy's level for read"
            ],
            "decision": "block" if blocked else "allow",
            "rules": ["effect:network" if blocked else "effect:read"],
        }
        events = (
            [{**fields, "event": "command.blocked", "ts": second + ".000Z"}]
            if blocked
            else [
                {**fields, "event": "command.started", "ts": second + ".000Z"},
                {
                    **fields,
                    "event": "command.finished",
                    "ts": second + ".400Z",
                    "exit_code": 1 if index % 7 == 0 else 0,
                    "duration_ms": 400.0,
                },
            ]
        )
        for event in events:
            record = seal(event, state)
            chunks.append(render(record))
            state = ChainState.after(record)
    path.write_bytes(b"".join(chunks))
    return path


@pytest.mark.slow
def test_ten_thousand_commands(browser, tmp_path):
    """10,000 commands: under 5 MB, every row drawn, and no error."""
    log_dir = tmp_path / "Logs"
    commands = [
        ("grep", "-rn", f"needle_{i}", f"src/module_{i % 300}") for i in range(10_000)
    ]
    write_session(log_dir, "2026-12-01_session-0002", commands, blocked_every=9)
    out = report(log_dir, tmp_path / "big.html")
    assert out.stat().st_size < 5_000_000
    loaded = Loaded(browser, out)
    assert loaded.console == []
    assert loaded.count("#commands .body .r") == 10_000
    assert loaded.count("#timeline rect.bar") == 10_000
    timing = json.loads(loaded.page.evaluate("document.body.dataset.timing"))
    print(
        f"10,000 commands: {out.stat().st_size:,} bytes, page script done at {timing['end']} ms"
    )
    loaded.page.close()
