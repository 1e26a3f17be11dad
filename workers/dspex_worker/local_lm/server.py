"""OpenAI-compatible HTTP front for the local engine (stdlib only).

Endpoints: ``POST /v1/chat/completions`` (non-streaming; ``stream: true`` gets the whole answer as one
SSE chunk), ``GET /v1/models``, ``GET /health``.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..observability.log import get_logger
from .engine import Engine, EngineBusy, EngineRequestError

log = get_logger("local_lm")

MAX_BODY_BYTES = 8 * 1024 * 1024


class LocalLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: Engine, request_timeout: float = 600.0) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.request_timeout = request_timeout
        self.started = int(time.time())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}/v1"


def _error(message: str, type_: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    server: LocalLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format % args, client=self.address_string())

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def do_GET(self) -> None:
        path = self._path()
        engine = self.server.engine
        if path in ("/v1/models", "/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": engine.model.id,
                            "object": "model",
                            "created": self.server.started,
                            "owned_by": "dspex-local",
                        }
                    ],
                },
            )
        elif path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok", "model": engine.model.id, "queued": engine.queued()})
        else:
            self._send_json(404, _error(f"no route GET {path}", "not_found_error", 404))

    def do_POST(self) -> None:
        path = self._path()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._discard_body()
            self._send_json(404, _error(f"no route POST {path}", "not_found_error", 404))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length <= 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(400, _error("a JSON body with Content-Length is required", "invalid_request_error", 400))
            return
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._send_json(400, _error(f"body is not JSON: {exc}", "invalid_request_error", 400))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self._send_json(400, _error("`messages` must be a non-empty list", "invalid_request_error", 400))
            return
        stream = bool(body.get("stream"))
        try:
            result = self.server.engine.chat(body, timeout=self.server.request_timeout)
        except EngineBusy as exc:
            self._send_json(503, _error(str(exc), "server_busy", 503))
            return
        except EngineRequestError as exc:
            self._send_json(400, _error(str(exc), "invalid_request_error", 400))
            return
        except FutureTimeout:
            self._send_json(504, _error("generation timed out", "timeout", 504))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client, logged here
            log.exception("generation failed")
            self._send_json(500, _error(f"{type(exc).__name__}: {exc}", "server_error", 500))
            return
        if stream:
            self._send_stream(result)
        else:
            self._send_json(200, result)

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)

    def _send_stream(self, result: dict[str, Any]) -> None:
        """Server-sent events for clients that asked to stream: the whole answer in one chunk."""
        choice = (result.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        base = {
            "id": result.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": result.get("created", int(time.time())),
            "model": result.get("model"),
        }
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": message.get("content", "")}}]},
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
                "usage": result.get("usage"),
            },
        ]
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
