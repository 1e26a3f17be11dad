"""What code running inside a request on a worker reaches over the bus: the worker's connection, bound for the
length of each request, and tools served by TypeScript processes (docs/dspy-surface.md, "Tools").

`run_planned` binds the connection and the request id (`bound`, a context variable, which `asyncio.to_thread`
carries into a program's thread). Users' programs reach it through `dspex_worker.retrieval` (collections) and
`remote_tool` (a TypeScript tool as a `dspy.Tool`, for `dspy.ReAct` inside a program); built-in `react` requests
name their tools in the request (ops/tools.py). Both call tools the same way (`call_tool`).

Tool protocol, msgpack both ways: `{v: 1, tool, args, request}` to the tool's subject (default
`dspex.tool.<name>`), reply `{ok: true, result}` or `{ok: false, error: {type, message}}`. A failed call — an
error reply, no responder, no answer within the timeout — raises `ToolCallError`, which dspy.ReAct records as the
step's observation: the agent sees the failure and carries on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import dspy
import nats.errors
from nats.aio.client import Client

from .protocol import decode, encode
from .protocol.generated.bus import tool_subject

DEFAULT_TOOL_TIMEOUT_MS = 30_000


class ToolCallError(Exception):
    """A tool call that failed: becomes the agent's observation, not a failed request."""


@dataclass(frozen=True, slots=True)
class Bus:
    nc: Client
    loop: asyncio.AbstractEventLoop
    thread: int  # the event loop's thread: a blocking call from it would wait for itself
    request_id: str


_BUS: ContextVar[Bus | None] = ContextVar("dspex_program_bus", default=None)


@contextmanager
def bound(nc: Client, request_id: str) -> Iterator[None]:
    """Lets the code run inside (a request, on the running loop) reach the bus through `nc`."""
    token = _BUS.set(Bus(nc, asyncio.get_running_loop(), threading.get_ident(), request_id))
    try:
        yield
    finally:
        _BUS.reset(token)


def current(what: str) -> Bus:
    """The bus bound to this request; `what` names the caller in the error outside one."""
    bus = _BUS.get()
    if bus is None:
        raise RuntimeError(f"{what}: no bus here; it works inside a request on a DSPex worker")
    return bus


def blocking(what: str, coro: Any) -> Any:
    """Runs a coroutine on the worker's loop from synchronous code in a program's thread, and waits for it."""
    bus = current(what)
    if threading.get_ident() == bus.thread:
        coro.close()
        raise RuntimeError(
            f"{what}: a blocking call on the worker's event loop would wait for itself; "
            "call it from forward() (run in a thread) or await the async form from aforward()"
        )
    return asyncio.run_coroutine_threadsafe(coro, bus.loop).result()


async def call_tool(nc: Client, subject: str, name: str, args: dict[str, Any], request_id: str, timeout_ms: int) -> Any:
    """One tool call: the `result` of an ok reply; ToolCallError otherwise."""
    body = encode({"v": 1, "tool": name, "args": args, "request": request_id})
    try:
        msg = await nc.request(subject, body, timeout=timeout_ms / 1000)
    except nats.errors.NoRespondersError:
        raise ToolCallError(f"tool {name} is not being served (no responder on {subject})") from None
    except nats.errors.TimeoutError:
        raise ToolCallError(f"tool {name} did not answer within {timeout_ms} ms") from None
    try:
        reply = decode(msg.data)
    except Exception as exc:
        raise ToolCallError(f"tool {name} sent a reply that is not msgpack: {exc}") from None
    if not isinstance(reply, dict):
        raise ToolCallError(f"tool {name} sent a reply that is not a map")
    if reply.get("ok") is True:
        return reply.get("result")
    raw_error = reply.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    raise ToolCallError(f"{error.get('type', 'ToolError')}: {error.get('message', 'the tool failed')}")


def remote_tool(
    name: str,
    description: str,
    parameters: dict[str, Any] | None = None,
    *,
    subject: str | None = None,
    timeout_ms: int = DEFAULT_TOOL_TIMEOUT_MS,
) -> dspy.Tool:
    """A tool served by a TypeScript process (`client.tools.serve`) as a `dspy.Tool` for a program's own
    `dspy.ReAct`: `parameters` is the JSON Schema of its arguments (`{type: "object", properties, required}`)."""
    schema = parameters or {"type": "object", "properties": {}}
    properties: dict[str, Any] = dict(schema.get("properties") or {})
    required: list[str] = list(schema.get("required") or [])
    target = subject or tool_subject(name)

    async def call(**kwargs: Any) -> Any:
        missing = [r for r in required if r not in kwargs]
        if missing:
            raise ToolCallError(f"missing argument(s) {', '.join(missing)} for tool {name}")
        bus = current(f"tool {name}")
        return await call_tool(bus.nc, target, name, kwargs, bus.request_id, timeout_ms)

    call.__name__ = name
    return dspy.Tool(call, name=name, desc=description, args=properties, arg_types={})
