"""The base of every DSPex error. The classes themselves are generated from error.schema.json's catalogue
(generated/errors.py): one class per wire error type, with the same name in Python and TypeScript."""

from __future__ import annotations

from typing import Any, ClassVar


class DspexError(Exception):
    """An error that travels as data (`ErrorWire`). `field` names the offending field when there is one."""

    type: str = "DspexError"
    default_retryable: ClassVar[bool] = False

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
            self.type = type  # an error type this side does not know (a newer peer's)
        self.message = message
        self.field = field
        self.retryable = self.default_retryable if retryable is None else retryable
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message, "retryable": self.retryable}
        if self.field is not None:
            out["field"] = self.field
        if self.details:
            out["details"] = self.details
        return out
