"""User code by dotted path (`package.module:function`) for metrics and rewards, loaded only when the worker's
environment allows it: the variable lists `package.module:function` or `package.module:*` entries, comma-separated.
A request can name code; only the deployment decides which code may run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..protocol.errors import ValidationError

_loaded: dict[str, Callable[..., Any]] = {}


def allowed_paths(env_var: str, env: Mapping[str, str] | None = None) -> list[str]:
    raw = (env if env is not None else os.environ).get(env_var, "")
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def is_allowed(path: str, allow: list[str]) -> bool:
    module, _, _function = path.partition(":")
    return any(entry == path or (entry.endswith(":*") and entry[:-2] == module) for entry in allow)


def load_allowed(
    path: str, env_var: str, *, what: str, field: str, env: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """The function at `path` if `env_var` allows it; ValidationError naming `field` otherwise."""
    if not is_allowed(path, allowed_paths(env_var, env)):
        raise ValidationError(
            f"{field}: {what} {path!r} is not allowed on this worker; add it to {env_var}", field=field
        )
    if path in _loaded:
        return _loaded[path]
    module_name, _, function_name = path.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"{field}: cannot load {what} {path!r}: {exc}", field=field) from exc
    if not callable(function):
        raise ValidationError(f"{field}: {what} {path!r} is not callable", field=field)
    _loaded[path] = function
    return function  # type: ignore[no-any-return]
