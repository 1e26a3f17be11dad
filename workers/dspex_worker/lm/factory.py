"""LM clients for requests, one per distinct configuration, under the operator's policy (policy.py, profiles.py).

A request's `lm` map (request.schema.json#/definitions/lm) is checked against the schema once per distinct map,
then resolved under the policy: a profile of the operator (the worker's default when it names none) with the knobs
a request may change, or an endpoint the operator allow-listed. Any problem is an LMConfigError naming the field.

Keys: a client gets the key of the one variable its profile or allow-list entry names, or a non-secret placeholder
when none is named. It never gets nothing: litellm and DSPy's native engine would then fall back to OPENAI_API_KEY
(or the provider's own variable) and send the worker's ambient key to the endpoint.

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
from .limits import ProfileLimiter
from .policy import Resolved, resolve_lm
from .profiles import LMPolicy, load_policy

_JSON_ADAPTER = dspy.JSONAdapter()  # holds only its options, so one instance serves every request
# The client owns the retry policy (one layer: its retries of retryable replies, with jitter, within the
# deadline); the LM client's own retries are off unless a profile or a request asks for them.
DEFAULT_NUM_RETRIES = 0
# Sent as the key where no key is configured: the client libraries insist on one, and without it they read the
# provider's variable (OPENAI_API_KEY, …) from the environment.
NO_KEY = "dspex-no-key"


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

    def __init__(self, max_size: int = 32, *, allow_test_models: bool = False, policy: LMPolicy | None = None) -> None:
        # the operator's policy, read once (LMProfilesError when it is wrong: the worker does not start)
        self.policy = policy if policy is not None else load_policy(os.environ)
        # canonical `lm` map -> (client, adapter); the map is checked only when it is not here
        self._resolved: OrderedDict[str, tuple[dspy.LM, dspy.Adapter | None]] = OrderedDict()
        # the client's identity (no adapter) -> client: requests differing only in the adapter share one
        self._clients: OrderedDict[tuple[Any, ...], dspy.LM] = OrderedDict()
        self._max_size = max_size
        self.allow_test_models = allow_test_models
        # the profiles' limits on this worker (limits.py), one limiter per profile that has any
        self.limiters: dict[str, ProfileLimiter] = {}
        for name, profile in self.policy.profiles.items():
            limiter = ProfileLimiter.from_limits(name, profile.limits)
            if limiter is not None:
                self.limiters[name] = limiter

    def limiter(self, config: Mapping[str, Any] | None) -> ProfileLimiter | None:
        """The limiter of the profile a request's `lm` map names (or the default profile), if it has limits; an
        allow-listed endpoint has none. A map naming no known profile gets none here and its error from resolve."""
        if not self.limiters:
            return None
        if config is not None and config.get("api_base") is not None:
            return None
        name = (config or {}).get("profile") or self.policy.default
        return self.limiters.get(name) if isinstance(name, str) else None

    def get(self, config: Mapping[str, Any] | None) -> dspy.LM:
        return self.resolve(config)[0]

    def resolve(self, config: Mapping[str, Any] | None) -> tuple[dspy.LM, dspy.Adapter | None]:
        """The LM a request's `lm` map (None: the default profile) names, and the adapter it or its profile names
        (None: DSPy's default ChatAdapter) — both belong in the `dspy.context` a request runs in."""
        try:
            key = json.dumps(config, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise LMConfigError(f"lm: not plain JSON data: {exc}", field="lm") from None
        found = self._resolved.get(key)
        if found is not None:
            self._resolved.move_to_end(key)
            return found
        try:
            checked = check_lm(config) if config is not None else None
        except ValidationError as exc:
            raise _lm_config_error(exc) from None
        resolved = resolve_lm(self.policy, checked)
        client_key = resolved.client_key()
        lm = self._clients.get(client_key) or self._build(resolved)
        self._clients[client_key] = lm
        self._clients.move_to_end(client_key)
        found = (lm, _JSON_ADAPTER if resolved.knobs.get("adapter") == "json" else None)
        self._resolved[key] = found
        for cache in (self._resolved, self._clients):
            while len(cache) > self._max_size:
                cache.popitem(last=False)
        return found

    def _build(self, resolved: Resolved) -> dspy.LM:
        model = resolved.model
        if model.startswith(f"{ECHO_PROVIDER}/"):
            if not self.allow_test_models:
                raise LMConfigError(
                    f"lm.model: {model!r} is a test model; this worker refuses them (start it with "
                    "--allow-test-models or DSPEX_ALLOW_TEST_MODELS=1 for tests and benchmarks)",
                    field="lm.model",
                )
            try:
                return EchoLM(model, cache=bool(resolved.knobs.get("cache", False)))
            except ValueError as exc:
                raise LMConfigError(f"lm.model: invalid test model: {exc}", field="lm.model") from exc
        knobs = resolved.knobs
        kwargs: dict[str, Any] = {
            "cache": knobs.get("cache", False),
            "num_retries": knobs.get("num_retries", DEFAULT_NUM_RETRIES),
            "api_key": self._key(resolved),
        }
        for name in ("temperature", "max_tokens"):
            if knobs.get(name) is not None:
                kwargs[name] = knobs[name]
        if resolved.api_base is not None:
            kwargs["api_base"] = resolved.api_base
        try:
            return dspy.LM(model, **kwargs)
        except Exception as exc:
            raise LMConfigError(f"lm: invalid LM configuration for {resolved.owner}: {exc}", field="lm") from exc

    @staticmethod
    def _key(resolved: Resolved) -> str:
        """The key of the one variable the profile or allow-list entry names, or the placeholder."""
        if resolved.key_env is None:
            return NO_KEY
        value = os.environ.get(resolved.key_env)
        if not value:
            field = resolved.key_field
            raise LMConfigError(f"{field}: {resolved.owner}'s key is not configured on this worker", field=field)
        return value
