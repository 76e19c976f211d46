"""SIGKILL and SIGSTOP of helper, launcher, supervisor and client, 8 commands in flight."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from faultlib import Client, Fleet

IN_FLIGHT = 8
ROUNDS = 3


def _launch(fleet: Fleet, session: str, *, sleep: float = 0.4) -> list[Client]:
    clients = []
    for _ in range(IN_FLIGHT):
        client = fleet.client("--session", session, "--", "sh", "-c", "true")
        clients.append(client)
    return clients


def _burst(fleet: Fleet, session: str, *, sleep: float) -> list[Client]:
    """Eight commands of one session in flight, each appending its token."""
    clients = []
    for _ in range(IN_FLIGHT):
        token = os.urandom(5).hex()
        command = fleet.token_command(
            token, sleep=sleep, status=random.choice([0, 0, 3])
        )
        clients.append(fleet.client("--session", session, "--", *command, token=token))
    return clients


def _until_started(
    fleet: Fleet, session: str, at_least: int, timeout: float = 20
) -> None:
    """Wait until the session log holds ``at_least`` more starts than now."""
    path = fleet.workspace / "Logs" / "Sessions" / f"{session}.jsonl"
    base = path.read_bytes().count(b'"command.started"')
    deadline = time.monotonic() + timeout
    while path.read_bytes().count(b'"command.started"') < base + at_least:
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)


def _settle(fleet: Fleet, clients: list[Client], timeout: float = 60) -> None:
    fleet.resume_all()
    for client in clients:
        client.finish(timeout)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_helper_killed_at_random_points(fleet, seed):
    """A killed helper never turns a command into 125 or two finishes."""
    rng = random.Random(seed)
    session = fleet.start_session()
    helper = fleet.start_helper()
    clients = _burst(fleet, session, sleep=rng.choice([0, 0.2]))
    _until_started(fleet, session, rng.randint(1, IN_FLIGHT - 1))
    time.sleep(rng.uniform(0, 0.05))
    os.kill(helper, signal.SIGKILL)
    _settle(fleet, clients)
    fleet.check(clients)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_helper_stopped_at_random_points(fleet, seed):
    """A stopped helper holds no client forever: each ends within its deadline."""
    rng = random.Random(seed)
    session = fleet.start_session()
    helper = fleet.start_helper()
    clients = _burst(fleet, session, sleep=rng.choice([0, 0.2]))
    _until_started(fleet, session, rng.randint(0, IN_FLIGHT - 1))
    fleet.stop(helper)
    began = time.monotonic()
    for client in clients:
        client.finish(timeout=fleet.wait * 4 + 60)
    # Every client ended while the helper was still stopped.
    assert time.monotonic() - began < fleet.wait * 4 + 60
    fleet.resume_all()
    time.sleep(1.0)  # the resumed helper settles what it held
    fleet.check(clients)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_launcher_killed_or_stopped(fleet, seed):
    """The launcher's death or stop loses no record and runs nothing twice."""
    rng = random.Random(seed)
    session = fleet.start_session()
    helper = fleet.start_helper()
    clients = _burst(fleet, session, sleep=0.3)
    _until_started(fleet, session, rng.randint(1, IN_FLIGHT - 1))
    launcher = fleet.launcher_pid(helper)
    assert launcher
    if seed % 2:
        fleet.stop(launcher)
        for client in clients:
            client.finish(timeout=fleet.wait * 4 + 60)
        fleet.resume_all()
    else:
        os.kill(launcher, signal.SIGKILL)
        _settle(fleet, clients)
    time.sleep(1.5)
    fleet.check(clients)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_supervisors_killed_or_stopped(fleet, seed):
    """A killed supervisor: its command is recorded (123 when its end is unknown)."""
    rng = random.Random(seed)
    session = fleet.start_session()
    helper = fleet.start_helper()
    clients = _burst(fleet, session, sleep=1.0)
    _until_started(fleet, session, IN_FLIGHT)
    time.sleep(0.3)
    victims = fleet.supervisors(helper)
    rng.shuffle(victims)
    for pid in victims[: rng.randint(1, max(len(victims), 1))]:
        if seed % 2:
            fleet.stop(pid)
        else:
            os.kill(pid, signal.SIGKILL)
    time.sleep(rng.uniform(0, 1.0))
    _settle(fleet, clients)
    time.sleep(0.5)
    counts = fleet.check(clients)
    assert counts["finishes"] == counts["starts"]


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_clients_killed_or_stopped(fleet, seed):
    """A killed client is recorded as lost; a stopped one finishes when resumed."""
    rng = random.Random(seed)
    session = fleet.start_session()
    fleet.start_helper()
    clients = _burst(fleet, session, sleep=0.5)
    _until_started(fleet, session, rng.randint(1, IN_FLIGHT))
    for client in rng.sample(clients, rng.randint(1, 3)):
        if seed % 2:
            fleet.stop(client.proc.pid)
        else:
            client.proc.send_signal(signal.SIGKILL)
            client.killed = True
    time.sleep(rng.uniform(0, 0.5))
    _settle(fleet, clients)
    time.sleep(3.0)  # supervisors end the trees of lost clients
    fleet.check(clients)
    lost = [
        record
        for records in fleet.records().values()
        for record in records
        if record.get("client_lost")
    ]
    assert all("client" in record["error"] for record in lost)
