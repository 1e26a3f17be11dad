"""Errors as data and back: the one mapping between `ErrorWire` maps and the generated classes."""

from __future__ import annotations

from typing import Any

from .error_base import DspexError
from .generated.errors import *  # noqa: F403 — the generated classes are this module's public surface
from .generated.errors import ERROR_CLASSES


def error_from_wire(wire: dict[str, Any]) -> DspexError:
    """The typed error an error envelope stands for; an unknown type keeps its name and `retryable`."""
    cls = ERROR_CLASSES.get(str(wire.get("type")))
    kwargs: dict[str, Any] = {
        "field": wire.get("field"),
        "retryable": bool(wire.get("retryable", False)),
        "details": wire.get("details"),
    }
    if cls is None:
        return DspexError(str(wire.get("message", "")), type=str(wire.get("type")), **kwargs)
    return cls(str(wire.get("message", "")), **kwargs)
