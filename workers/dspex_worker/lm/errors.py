"""What DSPy and the LM client raise, as the typed errors of the reply envelope (error.schema.json)."""

from __future__ import annotations

from typing import Any

from dspy.utils.exceptions import AdapterParseError, LMConfigurationError, is_retryable_lm_error
from dspy.utils.exceptions import LMError as DSPyLMError

from ..protocol import DspexError
from ..protocol.errors import LMConfigError, LMError, LMOutputError, WorkerError


def classify_exception(exc: BaseException) -> DspexError:
    """The wire error an exception stands for; anything unknown is a WorkerError naming its class."""
    if isinstance(exc, DspexError):
        return exc
    if isinstance(exc, AdapterParseError):
        return LMOutputError(
            f"the LM's output could not be parsed into the signature: {exc}",
            details={"adapter": type(exc).__name__},
        )
    if isinstance(exc, LMConfigurationError):
        return LMConfigError(str(exc), field="lm")
    if isinstance(exc, DSPyLMError):
        details: dict[str, Any] = {"dspy_error": type(exc).__name__}
        for attr in ("status", "provider", "model", "retry_after"):
            value = getattr(exc, attr, None)
            if value is not None:
                details[attr] = value
        # DSPy's own verdict on retrying; the caller's retry policy decides whether it does
        return LMError(str(exc), retryable=is_retryable_lm_error(exc), details=details)
    return WorkerError(f"{type(exc).__name__}: {exc}", details={"exception": type(exc).__name__})
