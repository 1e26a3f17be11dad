"""LM clients from the request's `lm` map or the worker's default (DSPEX_LM), one per distinct configuration.

The `lm` map's shape is the schema's (request.schema.json#/definitions/lm): it is checked once per distinct
configuration, when its client is built, and any problem with it is an LMConfigError naming the field.

`dspex/*` models are test doubles that answer without a model (echo.py, for benchmarks and tests). A worker
refuses them unless it was started with `--allow-test-models` (DSPEX_ALLOW_TEST_MODELS=1), so a production
worker never answers with fake outputs because a request asked it to.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import dspy

from ..protocol import check_lm
from ..protocol.errors import LMConfigError, ValidationError
from .echo import ECHO_PROVIDER, EchoLM

_JSON_ADAPTER = dspy.JSONAdapter()  # holds only its options, so one instance serves every request
# The client owns the retry policy (one layer: its retries of retryable replies, with jitter, within the
# deadline); the LM client's own retries are off unless a request or the operator asks for them.
DEFAULT_NUM_RETRIES = 0


def default_lm_config() -> dict[str, Any] | None:
    """The worker's LM when a request names none: DSPEX_LM (+ DSPEX_LM_API_BASE, DSPEX_LM_API_KEY_ENV,
    DSPEX_LM_ADAPTER, DSPEX_LM_NUM_RETRIES)."""
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


def _lm_config_error(exc: ValidationError) -> LMConfigError:
    """The schema's verdict on an `lm` map, worded for the LM."""
    field = exc.field or "lm"
    rule = (exc.details or {}).get("rule")
    if rule == "additionalProperties":
        option = field.removeprefix("lm.")
        allowed = ", ".join((exc.details or {}).get("allowed", []))
        return LMConfigError(f"{field}: unknown LM option(s): {option}; allowed: {allowed}", field=field)
    if field == "lm.model" and rule == "pattern":
        return LMConfigError(
            f"{field}: must be '<provider>/<model>' such as 'openai/gpt-4o-mini'", field=field, details=exc.details
        )
    return LMConfigError(exc.message, field=field, details=exc.details)


class LMFactory:
    """Builds `dspy.LM` objects and keeps a few alive, since each holds a client and its connection pool."""

    def __init__(self, max_size: int = 32, *, allow_test_models: bool = False) -> None:
        # canonical `lm` map -> (client, adapter); the map is checked only when it is not here
        self._resolved: OrderedDict[str, tuple[dspy.LM, dspy.Adapter | None]] = OrderedDict()
        # the client's part of the map (no adapter) -> client: requests differing only in the adapter share one
        self._clients: OrderedDict[str, dspy.LM] = OrderedDict()
        self._max_size = max_size
        self.allow_test_models = allow_test_models

    def get(self, config: Mapping[str, Any] | None) -> dspy.LM:
        return self.resolve(config)[0]

    def resolve(self, config: Mapping[str, Any] | None) -> tuple[dspy.LM, dspy.Adapter | None]:
        """The LM a request's `lm` map (or the worker's default) names, and the adapter its `lm.adapter` names
        (None: DSPy's default ChatAdapter) — both belong in the `dspy.context` a request runs in."""
        config = config if config is not None else default_lm_config()
        if config is None:
            raise LMConfigError(
                "lm: no LM configured: the request has no `lm` and the worker has no DSPEX_LM", field="lm"
            )
        try:
            key = json.dumps(config, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise LMConfigError(f"lm: not plain JSON data: {exc}", field="lm") from None
        found = self._resolved.get(key)
        if found is not None:
            self._resolved.move_to_end(key)
            return found
        try:
            checked = check_lm(config)
        except ValidationError as exc:
            raise _lm_config_error(exc) from None
        client = {k: v for k, v in checked.items() if k != "adapter"}
        client_key = json.dumps(client, sort_keys=True)
        lm = self._clients.get(client_key) or self._build(client)
        self._clients[client_key] = lm
        self._clients.move_to_end(client_key)
        found = (lm, _JSON_ADAPTER if checked.get("adapter") == "json" else None)
        self._resolved[key] = found
        for cache in (self._resolved, self._clients):
            while len(cache) > self._max_size:
                cache.popitem(last=False)
        return found

    def _build(self, config: dict[str, Any]) -> dspy.LM:
        model: str = config["model"]
        if model.startswith(f"{ECHO_PROVIDER}/"):
            if not self.allow_test_models:
                raise LMConfigError(
                    f"lm.model: {model!r} is a test model; this worker refuses them (start it with "
                    "--allow-test-models or DSPEX_ALLOW_TEST_MODELS=1 for tests and benchmarks)",
                    field="lm.model",
                )
            try:
                return EchoLM(model)
            except ValueError as exc:
                raise LMConfigError(f"lm.model: invalid test model: {exc}", field="lm.model") from exc
        kwargs: dict[str, Any] = {
            "cache": config.get("cache", False),
            "num_retries": config.get("num_retries", DEFAULT_NUM_RETRIES),
        }
        for name in ("temperature", "max_tokens", "api_base"):
            if config.get(name) is not None:
                kwargs[name] = config[name]
        key_env = config.get("api_key_env")
        if key_env is not None:
            if key_env not in os.environ:
                raise LMConfigError(
                    f"lm.api_key_env: names {key_env!r}, which is not set on the worker", field="lm.api_key_env"
                )
            kwargs["api_key"] = os.environ[key_env]
        elif "api_base" in kwargs:
            # OpenAI-compatible local endpoints usually need no key, but the client insists on one.
            kwargs["api_key"] = os.environ.get("OPENAI_API_KEY", "unused")
        try:
            return dspy.LM(model, **kwargs)
        except Exception as exc:
            raise LMConfigError(f"lm: invalid LM configuration: {exc}", field="lm") from exc
