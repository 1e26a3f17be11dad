"""What the worker's LM policy (workers/dspex_worker/lm/profiles.py, policy.py) makes of a corpus from
test/parity/lm-policy-parity.test.ts.

Reads one JSON document on stdin — ``{"urls": [...], "policies": [{"env": {...}}], "requests": [{"env", "lm"}]}`` —
and writes one JSON document on stdout:

- ``urls``: ``normalize_url(url)`` -> ``{"ok": normal}`` or ``{"error": message}``;
- ``policies``: ``load_policy(env)`` -> profiles, default and endpoints, or ``{"error": message}``;
- ``requests``: ``resolve_lm(load_policy(env), lm)`` -> the resolved LM, or ``{"field", "message"}`` of the
  LMConfigError.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workers"))

from dspex_worker.lm.policy import resolve_lm
from dspex_worker.lm.profiles import LMPolicy, LMProfilesError, load_policy, normalize_url
from dspex_worker.protocol import check_lm
from dspex_worker.protocol.errors import LMConfigError


def url(u: str) -> dict[str, Any]:
    try:
        return {"ok": normalize_url(u)}
    except ValueError as exc:
        return {"error": str(exc)}


def summary(policy: LMPolicy) -> dict[str, Any]:
    return {
        "default": policy.default,
        "profiles": {
            name: {
                "model": p.model,
                "models": sorted(p.models),
                "api_base": p.api_base,
                "api_key_env": p.api_key_env,
                "knobs": dict(p.knobs),
            }
            for name, p in sorted(policy.profiles.items())
        },
        "endpoints": {
            u: {"api_key_env": e.api_key_env, "models": sorted(e.models) if e.models is not None else None}
            for u, e in sorted(policy.endpoints.items())
        },
    }


def policy(env: dict[str, str]) -> dict[str, Any]:
    try:
        return {"ok": summary(load_policy(env))}
    except LMProfilesError as exc:
        return {"error": str(exc)}


def request(env: dict[str, str], lm: dict[str, Any] | None) -> dict[str, Any]:
    try:
        r = resolve_lm(load_policy(env), check_lm(lm) if lm is not None else None)
    except LMConfigError as exc:
        return {"field": exc.field, "message": exc.message}
    return {
        "model": r.model,
        "api_base": r.api_base,
        "key_env": r.key_env,
        "owner": r.owner,
        "key_field": r.key_field,
        "knobs": dict(r.knobs),
    }


def main() -> None:
    corpus = json.load(sys.stdin)
    json.dump(
        {
            "urls": [url(u) for u in corpus["urls"]],
            "policies": [policy(c["env"]) for c in corpus["policies"]],
            "requests": [request(c["env"], c.get("lm")) for c in corpus["requests"]],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
