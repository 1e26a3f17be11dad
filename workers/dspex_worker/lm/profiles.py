"""The operator's LM policy: named profiles, the default one, and the endpoints a request may name itself
(schemas/lm-profiles.schema.json; docs/security.md, "LM profiles and provider keys"). Read once, when the worker
starts; a bad source stops it with an LMProfilesError naming the source and the field.

Sources, a later one replacing an earlier one's profile of the same name:

* DSPEX_LM_PROFILES_FILE — a JSON file `{profiles?, default_profile?, allow_endpoints?}`;
* DSPEX_LM_PROFILES — the same document as JSON text;
* DSPEX_LM (+ DSPEX_LM_API_BASE, DSPEX_LM_API_KEY_ENV, DSPEX_LM_ADAPTER, DSPEX_LM_NUM_RETRIES) — the profile
  `default` (what the embedded fleet sets for its default LM, the local model included).

DSPEX_LM_DEFAULT_PROFILE names the default profile (else the documents' `default_profile`, else `default` when
there is one). DSPEX_LM_ALLOW_ENDPOINTS adds allow-list entries: JSON (an array of URLs or entries) or URLs
separated by commas or whitespace. Endpoints are compared normalized (normalize_url).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..protocol import check_lm_profiles
from ..protocol.errors import ValidationError

# The knobs a profile sets and a request may change (request.schema.json#/definitions/lm).
KNOBS = ("temperature", "max_tokens", "cache", "num_retries", "adapter")
# A profile's limits on one worker (limits.py); a request cannot change them.
LIMITS = ("max_concurrency", "requests_per_minute", "tokens_per_minute")
DEFAULT_PROFILE = "default"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


class LMProfilesError(ValueError):
    """The operator's LM configuration is wrong: the message names the source (variable or file) and the field."""


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    models: frozenset[str]  # the model and the other models a request may ask for
    api_base: str | None  # normalized; None: the provider's own endpoint
    api_key_env: str | None  # None: no key is sent
    knobs: Mapping[str, Any]  # defaults of temperature, max_tokens, cache, num_retries, adapter
    limits: Mapping[str, Any] = field(default_factory=dict)  # max_concurrency, requests_per_minute, tokens_per_minute


@dataclass(frozen=True)
class Endpoint:
    url: str  # normalized
    api_key_env: str | None  # the only key variable a request may name for it
    models: frozenset[str] | None  # None: any openai/<model>


@dataclass(frozen=True)
class LMPolicy:
    profiles: Mapping[str, Profile]
    default: str | None
    endpoints: Mapping[str, Endpoint]  # by normalized URL


def normalize_url(url: str) -> str:
    """An http(s) base URL in one spelling (scheme and host lower case, default port and trailing slashes
    dropped), so that two spellings of one endpoint compare equal. Raises ValueError saying what is wrong with
    anything else: credentials, a query or fragment, dot segments, whitespace, backslashes."""
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise ValueError("must not contain whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError("must not carry credentials")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("must not have a query or fragment")
    host = (parts.hostname or "").lower()
    if not (_HOST.match(host) or ("[" in parts.netloc and _IPV6.match(host))):
        raise ValueError("must name a host")
    segments = parts.path.split("/")
    if any(s in (".", "..") or s.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for s in segments):
        raise ValueError("must not have . or .. path segments")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _checked(document: Any, source: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = check_lm_profiles(document)
    except ValidationError as exc:
        raise LMProfilesError(f"{source}: {exc.message}") from None
    return result


def _json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LMProfilesError(f"{source}: not valid JSON: {exc}") from None


def _url(url: str, where: str) -> str:
    try:
        return normalize_url(url)
    except ValueError as exc:
        raise LMProfilesError(f"{where}: {exc}") from None


def _profile(name: str, raw: Mapping[str, Any], where: str) -> Profile:
    model: str = raw["model"]
    models = [model, *raw.get("models", [])]
    base = raw.get("api_base")
    if base is None:
        # Without an endpoint the provider decides where the key goes: keep a profile's models at one provider.
        provider = model.split("/", 1)[0]
        for i, other in enumerate(raw.get("models", [])):
            if other.split("/", 1)[0] != provider:
                raise LMProfilesError(
                    f"{where}.models[{i}]: {other!r} is not a {provider}/ model; without api_base a profile's models "
                    "must share its provider (define another profile for another provider)"
                )
    return Profile(
        name=name,
        model=model,
        models=frozenset(models),
        api_base=_url(base, f"{where}.api_base") if base is not None else None,
        api_key_env=raw.get("api_key_env"),
        knobs={k: raw[k] for k in KNOBS if k in raw},
        limits={k: raw[k] for k in LIMITS if k in raw},
    )


def _env_profile(env: Mapping[str, str]) -> dict[str, Any] | None:
    """DSPEX_LM and its companions as the profile `default`."""
    model = env.get("DSPEX_LM")
    if not model:
        return None
    raw: dict[str, Any] = {"model": model}
    for name, key in (("DSPEX_LM_API_BASE", "api_base"), ("DSPEX_LM_API_KEY_ENV", "api_key_env")):
        if env.get(name):
            raw[key] = env[name]
    if env.get("DSPEX_LM_ADAPTER"):
        raw["adapter"] = env["DSPEX_LM_ADAPTER"]
    if env.get("DSPEX_LM_NUM_RETRIES"):
        try:
            raw["num_retries"] = int(env["DSPEX_LM_NUM_RETRIES"])
        except ValueError:
            raise LMProfilesError("DSPEX_LM_NUM_RETRIES: must be a non-negative integer") from None
    return raw


def _allow_list(text: str) -> list[Any]:
    """DSPEX_LM_ALLOW_ENDPOINTS: JSON (`[url | {url, api_key_env?, models?}, …]`) or URLs separated by commas or
    whitespace."""
    if text.lstrip().startswith("["):
        value = _json(text, "DSPEX_LM_ALLOW_ENDPOINTS")
        return [{"url": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else [value]
    return [{"url": url} for url in re.split(r"[\s,]+", text.strip()) if url]


def load_policy(env: Mapping[str, str]) -> LMPolicy:
    """The operator's LM policy from the worker's environment (see the module's docstring)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    if path := env.get("DSPEX_LM_PROFILES_FILE"):
        source = f"DSPEX_LM_PROFILES_FILE {path}"
        try:
            content = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LMProfilesError(f"{source}: cannot be read: {exc.strerror}") from None
        documents.append((source, _checked(_json(content, source), source)))
    if inline := env.get("DSPEX_LM_PROFILES"):
        documents.append(("DSPEX_LM_PROFILES", _checked(_json(inline, "DSPEX_LM_PROFILES"), "DSPEX_LM_PROFILES")))
    if (raw := _env_profile(env)) is not None:
        documents.append(("DSPEX_LM", _checked({"profiles": {DEFAULT_PROFILE: raw}}, "DSPEX_LM")))
    if allowed := env.get("DSPEX_LM_ALLOW_ENDPOINTS"):
        entries = _allow_list(allowed)
        documents.append(
            ("DSPEX_LM_ALLOW_ENDPOINTS", _checked({"allow_endpoints": entries}, "DSPEX_LM_ALLOW_ENDPOINTS"))
        )

    profiles: dict[str, Profile] = {}
    endpoints: dict[str, Endpoint] = {}
    default: str | None = None
    default_source = ""
    for source, document in documents:
        for name, raw_profile in document.get("profiles", {}).items():
            profiles[name] = _profile(name, raw_profile, f"{source}: profiles.{name}")
        for i, entry in enumerate(document.get("allow_endpoints", [])):
            url = _url(entry["url"], f"{source}: allow_endpoints[{i}].url")
            models = entry.get("models")
            endpoints[url] = Endpoint(url, entry.get("api_key_env"), frozenset(models) if models is not None else None)
        if "default_profile" in document:
            default, default_source = document["default_profile"], f"{source}: default_profile"
    if name := env.get("DSPEX_LM_DEFAULT_PROFILE"):
        default, default_source = name, "DSPEX_LM_DEFAULT_PROFILE"
    if default is not None and default not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise LMProfilesError(f"{default_source}: names profile {default!r}, which is not defined (profiles: {known})")
    if default is None and DEFAULT_PROFILE in profiles:
        default = DEFAULT_PROFILE
    return LMPolicy(profiles=profiles, default=default, endpoints=endpoints)
