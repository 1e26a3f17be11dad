"""A request's `lm` map under the operator's policy (profiles.py): which model, which endpoint, whose key.

* No `api_base`: the named profile (`lm.profile`, else the worker's default). `model` may be the profile's or one of
  its `models`; `api_key_env` may only repeat the profile's own; the knobs (temperature, max_tokens, cache,
  num_retries, adapter) override the profile's.
* `api_base`: only an endpoint of the operator's allow-list (and never with a profile); `api_key_env` only the
  variable its entry names; `model` one of the entry's models, or any `openai/<model>` when it names none.
* A `dspex/*` model is a test model (echo.py): it needs no profile and never leaves the process; the factory
  refuses it unless the worker allows test models.

Every refusal is an LMConfigError naming the field. Messages name profiles and endpoints, and never say whether
an environment variable exists: "profile 'x''s key is not configured on this worker" is the most they tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import LMConfigError
from .echo import ECHO_PROVIDER
from .profiles import KNOBS, LMPolicy, Profile, normalize_url

# The OpenAI-compatible protocol: what an allow-listed endpoint speaks unless its entry names models.
OPENAI_COMPATIBLE = "openai/"


@dataclass(frozen=True)
class Resolved:
    """What a request's `lm` comes to: the client's settings, and the one key variable that may go with them."""

    model: str
    api_base: str | None = None
    key_env: str | None = None  # None: no key (a placeholder) is sent
    owner: str = ""  # "profile 'x'" or "endpoint <url>", for messages
    key_field: str = "lm"  # the field a missing key is reported on
    knobs: Mapping[str, Any] = field(default_factory=dict)

    def client_key(self) -> tuple[Any, ...]:
        """Identity of the LM client (the adapter is not the client's)."""
        knobs = tuple(sorted((k, v) for k, v in self.knobs.items() if k != "adapter"))
        return (self.model, self.api_base, self.key_env, knobs)


def _refuse(field_name: str, message: str) -> LMConfigError:
    return LMConfigError(f"{field_name}: {message}", field=field_name)


def _profile(policy: LMPolicy, name: str | None) -> Profile:
    if name is None:
        if policy.default is None:
            raise LMConfigError(
                "lm: no LM configured: the request names no profile and this worker has no default profile "
                "(its operator sets DSPEX_LM or DSPEX_LM_PROFILES)",
                field="lm",
            )
        name = policy.default
    profile = policy.profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(policy.profiles)) or "none"
        raise _refuse("lm.profile", f"unknown profile {name!r}; this worker's profiles: {known}")
    return profile


def _from_profile(policy: LMPolicy, lm: Mapping[str, Any], knobs: dict[str, Any]) -> Resolved:
    profile = _profile(policy, lm.get("profile"))
    key_env = lm.get("api_key_env")
    if key_env is not None and key_env != profile.api_key_env:
        raise _refuse(
            "lm.api_key_env",
            f"a request cannot choose the key: {key_env!r} is not what profile {profile.name!r} sends "
            "(the operator names each profile's key)",
        )
    model = lm.get("model") or profile.model
    if model not in profile.models:
        allowed = ", ".join(sorted(profile.models))
        raise _refuse("lm.model", f"profile {profile.name!r} does not offer {model!r}; it offers: {allowed}")
    return Resolved(
        model=model,
        api_base=profile.api_base,
        key_env=profile.api_key_env,
        owner=f"profile {profile.name!r}",
        key_field="lm.profile",
        knobs={**profile.knobs, **knobs},
    )


def _from_endpoint(policy: LMPolicy, lm: Mapping[str, Any], knobs: dict[str, Any]) -> Resolved:
    if lm.get("profile") is not None:
        raise _refuse("lm.api_base", "a request naming a profile cannot change its endpoint (the profile holds it)")
    try:
        url = normalize_url(str(lm["api_base"]))
    except ValueError as exc:
        raise _refuse("lm.api_base", f"{exc}") from None
    entry = policy.endpoints.get(url)
    if entry is None:
        raise _refuse(
            "lm.api_base",
            f"this worker does not let a request choose the endpoint {url}: name one of its operator's profiles "
            "(lm.profile), or ask the operator to allow-list the endpoint (DSPEX_LM_ALLOW_ENDPOINTS)",
        )
    key_env = lm.get("api_key_env")
    if key_env is not None and key_env != entry.api_key_env:
        raise _refuse(
            "lm.api_key_env",
            f"{key_env!r} may not be sent to {url}: a request names only the key the operator allow-listed for it",
        )
    model = lm.get("model")
    if model is None:
        raise _refuse("lm.model", "is required with lm.api_base (an endpoint has no default model)")
    if entry.models is not None and model not in entry.models:
        raise _refuse("lm.model", f"{url} offers only: {', '.join(sorted(entry.models))}")
    if entry.models is None and not model.startswith(OPENAI_COMPATIBLE):
        raise _refuse(
            "lm.model",
            f"{url} takes openai/<model> (the OpenAI-compatible protocol); its allow-list entry names no other models",
        )
    return Resolved(
        model=model,
        api_base=url,
        key_env=key_env,
        owner=f"endpoint {url}",
        key_field="lm.api_key_env",
        knobs=knobs,
    )


def resolve_lm(policy: LMPolicy, lm: Mapping[str, Any] | None) -> Resolved:
    """The LM a request's (schema-checked) `lm` map names under the policy; None is the default profile."""
    lm = lm or {}
    knobs = {k: lm[k] for k in KNOBS if k in lm}
    if lm.get("api_base") is not None:
        return _from_endpoint(policy, lm, knobs)
    model = lm.get("model")
    if isinstance(model, str) and model.startswith(f"{ECHO_PROVIDER}/"):
        if lm.get("api_key_env") is not None:
            raise _refuse("lm.api_key_env", f"a test model ({model!r}) takes no key")
        return Resolved(model=model, owner=f"test model {model!r}", knobs=knobs)
    return _from_profile(policy, lm, knobs)
