"""Structured JSON logs on stderr; stdout is reserved for the worker's lifecycle events."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from .telemetry import trace_fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(trace_fields())  # trace_id / span_id of the current span, if any
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


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
    """Lifecycle events (ready, stopping, stopped) as JSON lines on stdout, read by the embedded supervisor."""
    sys.stdout.write(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()
