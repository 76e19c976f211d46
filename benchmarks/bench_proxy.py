"""What the L3 egress proxy costs: per connection, and in throughput.

Everything on loopback, in the same run, interleaved:

* a small server on 127.0.0.1 that answers every connection with a short
  response (``connections``) or a large body (``throughput``) and closes;
* the proxy as ``guard run`` starts it at L3: its own process
  (:func:`start_proxy`), writing a session record and a NetOps line per
  connection to a scratch log directory, with an entry allowing 127.0.0.1.

Per connection (``--connections N`` of each, medians): connect + one small
GET + the whole response, ``direct`` to the server, through the proxy as a
plain HTTP request, and through a ``CONNECT`` tunnel (what TLS clients do);
the added time is the proxy's overhead (target: under 2 ms).

Throughput (``--mb``, default 100, ``--rounds`` of each): the same body read
directly and through a CONNECT tunnel (relayed with splice) and as a plain
HTTP response; ratio against direct (target: at least 80%).

Run: ``python benchmarks/bench_proxy.py [--connections N] [--mb M] [--rounds R]``
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

from statetrace_guard.online.egress import Egress
from statetrace_guard.online.plumbing import send_listener, start_proxy
from statetrace_guard.policy import load_policy_bytes

SMALL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
BLOCK = b"x" * (1 << 20)
POLICY = (
    b'name = "bench"\n[[network]]\nid = "lo"\nhost = "127.0.0.1"\n'
    b'schemes = ["https", "http"]\n'
)


class Server:
    """Answers each connection: after the request head, ``body_mb`` MB or SMALL."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.body_mb = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            if b"/big" not in head.split(b"\r\n", 1)[0]:
                conn.sendall(SMALL)
                return
            size = self.body_mb << 20
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(self.body_mb):
                conn.sendall(BLOCK)


def read_all(sock: socket.socket) -> int:
    buffer = bytearray(1 << 20)
    total = 0
    while count := sock.recv_into(buffer):
        total += count
    return total


def direct(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        return read_all(sock)


def plain(proxy: int, port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", proxy)) as sock:
        sock.sendall(
            b"GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: x\r\n\r\n"
            % (port, path.encode())
        )
        return read_all(sock)


def tunnel(proxy: int, port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", proxy)) as sock:
        sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"CONNECT refused: {answer[:80]!r}")
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        return read_all(sock)


def timed(function: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = function()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    server = Server()
    logs = tempfile.mkdtemp(prefix="bench-proxy-")
    port_holder = socket.socket()
    port_holder.bind(("127.0.0.1", 0))
    proxy_port = port_holder.getsockname()[1]
    port_holder.close()
    egress = Egress(load_policy_bytes(POLICY, "bench").network)
    plan = {
        "egress": egress.to_wire(),
        "command": {"session_id": "bench-session", "argv": ["bench"], "level": "L3"},
        "log_dir": logs,
    }
    proxy = start_proxy(plan)
    send_listener(proxy.channel, proxy_port)
    proxy.channel = -1
    try:
        report_connections(server.port, proxy_port, args.connections)
        server.body_mb = args.mb
        report_throughput(server.port, proxy_port, args.mb, args.rounds)
    finally:
        proxy.stop()


def report_connections(port: int, proxy: int, count: int) -> None:
    subjects = {
        "direct": lambda: direct(port, "/"),
        "plain HTTP via proxy": lambda: plain(proxy, port, "/"),
        "CONNECT tunnel via proxy": lambda: tunnel(proxy, port, "/"),
    }
    for function in subjects.values():  # warm up
        function()
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(count):
        for name, function in subjects.items():
            times[name].append(timed(function)[0] * 1000)
    base = statistics.median(times["direct"])
    print(f"per connection ({count} each, interleaved, medians):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:26} {median:6.3f} ms   added {median - base:+6.3f} ms")


def report_throughput(port: int, proxy: int, mb: int, rounds: int) -> None:
    subjects = {
        "direct": lambda: direct(port, "/big"),
        "CONNECT tunnel via proxy": lambda: tunnel(proxy, port, "/big"),
        "plain HTTP via proxy": lambda: plain(proxy, port, "/big"),
    }
    speeds: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, function in subjects.items():
            seconds, count = timed(function)
            if count < mb << 20:
                raise SystemExit(f"{name}: short read ({count} bytes)")
            speeds[name].append(count / seconds / (1 << 20))
    base = statistics.median(speeds["direct"])
    print(f"throughput, a {mb} MB body ({rounds} rounds each, medians):")
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"  {name:26} {median:8.0f} MB/s   {median / base:6.1%} of direct")


if __name__ == "__main__":
    main()
