"""The worker's one log shape: a JSON line per record on stderr — `ts` (epoch seconds), `level`, `logger`, `msg`,
`trace_id`/`span_id` while a span is current, then the record's fields. stdout is reserved for the lifecycle
events the embedded supervisor reads (`emit_event`).

    log = get_logger("worker")                      # logger "dspex.worker"
    log.info("worker ready", worker=wid, pool=pool)  # keyword arguments become fields of the line
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace

# Keyword arguments the logging module itself takes; any other keyword is a field of the line.
_LOGGING_KWARGS = frozenset({"exc_info", "stack_info", "stacklevel", "extra"})


def trace_fields() -> dict[str, str]:
    """`trace_id` / `span_id` of the current span, for structured log lines; empty outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(trace_fields())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class FieldLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose calls take the line's fields as keyword arguments."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOGGING_KWARGS}
        if fields:
            extra = dict(kwargs.get("extra") or {})
            extra["fields"] = {**extra.get("fields", {}), **fields}
            kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> FieldLogger:
    """The logger `dspex.<name>`."""
    return FieldLogger(logging.getLogger(f"dspex.{name}"), {})


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    # LiteLLM and httpx are chatty at INFO.
    for name in ("LiteLLM", "litellm", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def emit_event(event: str, **fields: Any) -> None:
    """Lifecycle events (ready, stopping, stopped, …) as JSON lines on stdout, read by the embedded supervisor."""
    sys.stdout.write(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()
