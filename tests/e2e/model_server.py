"""A scripted model server on 127.0.0.1 for driving the real agent CLIs offline.

It speaks just enough of two wire protocols, both streamed as server-sent
events: Anthropic's ``POST /v1/messages`` (Claude Code) and OpenAI's
``POST /v1/responses`` (Codex). The script is a list of tool calls; the
answer to a request depends only on the conversation it carries: with N tool
results in it, the server makes tool call N, and once every call has its
result it answers with a final text. So retries and side requests (a token
count, a title) never skip a step. Every request body is kept for the test.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FINAL_TEXT", "ModelServer", "ToolCall"]

FINAL_TEXT = "All done."


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes: the tool's name and its input."""

    name: str
    input: dict[str, Any] | str  # a str makes a freeform call (Codex's apply_patch)


@dataclass
class ModelServer:
    """A threaded HTTP server that plays a script of tool calls."""

    calls: list[ToolCall]
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def note(self, path: str, body: dict[str, Any]) -> None:
        """Keep a request for the test."""
        with self._lock:
            self.paths.append(path)
            self.requests.append(body)

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool result the CLIs sent back, in both wire forms, deduplicated."""
        seen: dict[str, dict[str, Any]] = {}
        for body in list(self.requests):
            for item in _anthropic_results(body) + _openai_results(body):
                seen.setdefault(item["id"], item)
        return list(seen.values())


def _anthropic_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = [
        block
        for message in body.get("messages", []) or []
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return [
        {
            "id": block.get("tool_use_id"),
            "text": _text_of(block.get("content")),
            "is_error": bool(block.get("is_error")),
        }
        for block in blocks
    ]


def _openai_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return [
        {
            "id": item.get("call_id"),
            "text": _text_of(item.get("output")),
            "is_error": False,
        }
        for item in items
        if isinstance(item, dict)
        and item.get("type") in {"function_call_output", "custom_tool_call_output"}
    ]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or json.dumps(content))
    return "" if content is None else str(content)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _anthropic_stream(server: ModelServer, body: dict[str, Any]) -> bytes:
    step = len(_anthropic_results(body))
    model = body.get("model", "claude-test")
    message_id = f"msg_{step:04d}"
    usage = {"input_tokens": 10, "output_tokens": 5}
    chunks = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            },
        )
    ]
    if step < len(server.calls):
        call = server.calls[step]
        block = {
            "type": "tool_use",
            "id": f"toolu_{step:04d}",
            "name": call.name,
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(call.input)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": FINAL_TEXT}
        stop = "end_turn"
    chunks += [
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        _sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": delta},
        ),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(chunks)


def _openai_stream(server: ModelServer, body: dict[str, Any]) -> bytes:
    step = len(_openai_results(body))
    response_id = f"resp_{step:04d}"
    if step < len(server.calls):
        call = server.calls[step]
        item: dict[str, Any] = {
            "id": f"fc_{step:04d}",
            "call_id": f"call_{step:04d}",
            "name": call.name,
        }
        if isinstance(call.input, str):
            item |= {"type": "custom_tool_call", "input": call.input}
        else:
            item |= {"type": "function_call", "arguments": json.dumps(call.input)}
    else:
        item = {
            "type": "message",
            "id": f"msg_{step:04d}",
            "role": "assistant",
            "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}],
        }
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    return b"".join(
        [
            _sse(
                "response.created",
                {"type": "response.created", "response": {"id": response_id}},
            ),
            _sse(
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": item},
            ),
            _sse(
                "response.completed",
                {
                    "type": "response.completed",
                    "response": {"id": response_id, "usage": usage},
                },
            ),
        ]
    )


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            return

        def do_GET(self) -> None:
            server.note(self.path, {})
            if self.path.rstrip("/").endswith("/models"):
                self._send(
                    200,
                    "application/json",
                    json.dumps({"data": [], "models": []}).encode(),
                )
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def do_HEAD(self) -> None:
            self._send(200, "text/plain", b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            server.note(self.path, body)
            path = self.path.split("?", 1)[0]
            if path.endswith("/count_tokens"):
                self._send(200, "application/json", b'{"input_tokens": 10}')
            elif path.endswith("/v1/messages"):
                self._send(200, "text/event-stream", _anthropic_stream(server, body))
            elif path.endswith("/responses"):
                self._send(200, "text/event-stream", _openai_stream(server, body))
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, kind: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    return Handler
