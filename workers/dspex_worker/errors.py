"""Typed errors that travel in the reply envelope (see schemas/error.schema.json)."""

from __future__ import annotations

from typing import Any

# Error types on the wire. Retryable ones may be retried by a caller with the same request id.
ERROR_TYPES: dict[str, bool] = {
    "DecodeError": False,  # body is not msgpack or not a map
    "VersionError": False,  # unsupported envelope version
    "UnknownOperation": False,
    "ValidationError": False,  # bad signature, missing/extra/wrong-typed inputs
    "PayloadTooLarge": False,
    "LMConfigError": False,  # invalid or unusable LM configuration
    "LMError": True,  # provider failed (HTTP 5xx, 429, connection)
    "LMOutputError": False,  # DSPy could not parse the LM's output into the signature
    "WorkerError": False,  # exception inside the program / user code
    "DeadlineExceeded": False,
    "AffinityError": False,  # a strict-affinity session's request reached a worker other than its own
    "Unsupported": False,  # module/optimizer cannot run here: no Deno sandbox, no fine-tuning provider (modules.py)
    "Cancelled": False,  # an optimizer job was cancelled (optimize.py)
}


class DspexError(Exception):
    """An error that becomes an error reply. `field` names the offending field when there is one."""

    type: str = "WorkerError"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        if type is not None:
            self.type = type
        self.message = message
        self.field = field
        self.retryable = ERROR_TYPES.get(self.type, False) if retryable is None else retryable
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message, "retryable": self.retryable}
        if self.field is not None:
            out["field"] = self.field
        if self.details:
            out["details"] = self.details
        return out


class DecodeError(DspexError):
    type = "DecodeError"


class VersionError(DspexError):
    type = "VersionError"


class UnknownOperation(DspexError):
    type = "UnknownOperation"


class ValidationError(DspexError):
    type = "ValidationError"


class PayloadTooLarge(DspexError):
    type = "PayloadTooLarge"


class LMConfigError(DspexError):
    type = "LMConfigError"


class LMError(DspexError):
    type = "LMError"


class LMOutputError(DspexError):
    type = "LMOutputError"


class WorkerError(DspexError):
    type = "WorkerError"


class DeadlineExceeded(DspexError):
    type = "DeadlineExceeded"


class AffinityError(DspexError):
    type = "AffinityError"
