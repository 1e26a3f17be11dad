"""LM construction from the request's `lm` map or the worker's defaults, and LM error classification."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import dspy
from dspy.utils.exceptions import (
    AdapterParseError,
    LMConfigurationError,
    is_retryable_lm_error,
)
from dspy.utils.exceptions import LMError as DSPyLMError

from .errors import DspexError, LMConfigError, LMError, LMOutputError, WorkerError

# Keys a request may set on the LM; anything else is rejected so typos do not pass silently.
LM_KEYS = {"model", "api_base", "api_key_env", "temperature", "max_tokens", "cache", "num_retries", "adapter"}
ADAPTERS = ("chat", "json")
_JSON_ADAPTER = dspy.JSONAdapter()  # holds only its options, so one instance serves every request


def default_lm_config() -> dict[str, Any] | None:
    """The worker's LM when a request names none: DSPEX_LM (+ DSPEX_LM_API_BASE, DSPEX_LM_API_KEY_ENV)."""
    model = os.environ.get("DSPEX_LM")
    if not model:
        return None
    config: dict[str, Any] = {"model": model}
    if base := os.environ.get("DSPEX_LM_API_BASE"):
        config["api_base"] = base
    if key_env := os.environ.get("DSPEX_LM_API_KEY_ENV"):
        config["api_key_env"] = key_env
    if adapter := os.environ.get("DSPEX_LM_ADAPTER"):
        config["adapter"] = adapter
    if retries := os.environ.get("DSPEX_LM_NUM_RETRIES"):
        config["num_retries"] = int(retries)
    return config


class LMFactory:
    """Builds `dspy.LM` objects and keeps a few alive, since each holds a client and its connection pool."""

    def __init__(self, max_size: int = 32) -> None:
        self._lms: OrderedDict[str, dspy.LM] = OrderedDict()
        self._max_size = max_size

    def get(self, config: dict[str, Any] | None) -> dspy.LM:
        return self.resolve(config)[0]

    def resolve(self, config: dict[str, Any] | None) -> tuple[dspy.LM, dspy.Adapter | None]:
        """The LM a request's `lm` map (or the worker's default) names, and the adapter its `lm.adapter` names
        (None: DSPy's default ChatAdapter) — both belong in the `dspy.context` a request runs in."""
        config = config if config is not None else default_lm_config()
        if config is None:
            raise LMConfigError("no LM configured: the request has no `lm` and the worker has no DSPEX_LM", field="lm")
        adapter = config.get("adapter", "chat")
        if adapter not in ADAPTERS:
            raise LMConfigError(
                f"`lm.adapter` must be one of {', '.join(ADAPTERS)} (got {adapter!r})", field="lm.adapter"
            )
        # The adapter is not part of the client: requests differing only in it share one dspy.LM.
        lm_config = {k: v for k, v in config.items() if k != "adapter"}
        key = json.dumps(lm_config, sort_keys=True)
        lm = self._lms.get(key)
        if lm is None:
            lm = self._build(lm_config)
            self._lms[key] = lm
            if len(self._lms) > self._max_size:
                self._lms.popitem(last=False)
        else:
            self._lms.move_to_end(key)
        return lm, _JSON_ADAPTER if adapter == "json" else None

    @staticmethod
    def _build(config: dict[str, Any]) -> dspy.LM:
        unknown = sorted(set(config) - LM_KEYS)
        if unknown:
            raise LMConfigError(
                f"unknown LM option(s): {', '.join(unknown)}; allowed: {', '.join(sorted(LM_KEYS))}",
                field=f"lm.{unknown[0]}",
            )
        model = config.get("model")
        if not isinstance(model, str) or "/" not in model:
            raise LMConfigError(
                f"`lm.model` must be '<provider>/<model>' such as 'openai/gpt-4o-mini' (got {model!r})",
                field="lm.model",
            )
        if model.startswith("dspex/"):  # in-process LM without a provider (echo_lm.py: benchmarks, smoke tests)
            from .echo_lm import EchoLM

            try:
                return EchoLM(model)
            except ValueError as exc:
                raise LMConfigError(f"invalid LM configuration: {exc}", field="lm.model") from exc
        kwargs: dict[str, Any] = {
            "cache": bool(config.get("cache", False)),
            "num_retries": int(config.get("num_retries", 2)),
        }
        for name in ("temperature", "max_tokens", "api_base"):
            if config.get(name) is not None:
                kwargs[name] = config[name]
        key_env = config.get("api_key_env")
        if key_env is not None:
            if not isinstance(key_env, str) or key_env not in os.environ:
                raise LMConfigError(
                    f"`lm.api_key_env` names {key_env!r}, which is not set on the worker",
                    field="lm.api_key_env",
                )
            kwargs["api_key"] = os.environ[key_env]
        elif "api_base" in kwargs:
            # OpenAI-compatible local endpoints usually need no key, but the client insists on one.
            kwargs["api_key"] = os.environ.get("OPENAI_API_KEY", "unused")
        try:
            return dspy.LM(model, **kwargs)
        except Exception as exc:
            raise LMConfigError(f"invalid LM configuration: {exc}", field="lm") from exc


def classify_exception(exc: BaseException) -> DspexError:
    """Maps what DSPy and the LM client raise to the typed errors of the reply envelope."""
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
        return LMError(str(exc), retryable=is_retryable_lm_error(exc), details=details)
    return WorkerError(f"{type(exc).__name__}: {exc}", details={"exception": type(exc).__name__})
