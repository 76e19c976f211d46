"""``guard run``'s options: one table, two parsers that always agree."""

from __future__ import annotations

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statetrace_guard import run_options
from statetrace_guard.cli.run_cmd import run

WORDS = [
    *(name for name, *_ in run_options.OPTIONS),
    "--",
    "-",
    "--help",
    "--bogus",
    "--level=l2",
    "--durable=1",
    "L1",
    "l3",
    "L9",
    "0",
    "1.5",
    "-1",
    "nan",
    "inf",
    "1e3",
    "7",
    "x",
    "",
    "ls",
    "/",
    "ST-A-1",
]


def click_parse(args: list[str]) -> tuple[dict[str, object], list[str]] | None:
    """What the click command makes of ARGS; None for a usage error or help."""
    try:
        ctx = run.make_context("run", list(args), resilient_parsing=False)
    except (click.UsageError, click.exceptions.Exit):
        return None
    params = dict(ctx.params)
    argv = list(params.pop("argv"))
    options = {
        name: value
        for name, value in params.items()
        if value is not None and value is not False
    }
    return (options, argv) if argv else None


class TestOneTable:
    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(WORDS), max_size=7))
    def test_client_parser_agrees_with_click(self, args):
        """Any option list: the helper's client parses it as click does, or leaves it to click."""
        assert run_options.parse(args) == click_parse(args)

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--level", "l0", "--", "ls"], ({"level": "L0"}, ["ls"])),
            (
                ["--level=L2", "--durable", "git", "status"],
                ({"level": "L2", "durable": True}, ["git", "status"]),
            ),
            (
                ["--timeout", "1.5", "--max-memory", "100", "--", "x", "--level"],
                ({"timeout": 1.5, "max_memory": 100}, ["x", "--level"]),
            ),
        ],
    )
    def test_parses_run_options(self, args, expected):
        assert run_options.parse(args) == expected

    def test_every_option_is_in_help(self):
        text = run.get_help(click.Context(run))
        for name, *_ in run_options.OPTIONS:
            assert name in text
