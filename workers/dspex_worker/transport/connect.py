"""How a worker authenticates to NATS (docs/security.md): its role's `.creds` file (NATS_CREDS, `--nats-creds`),
the inbox prefix that role may subscribe to (the `dspex-inbox:` tag of the user JWT, so the credentials file is
all a worker needs), and TLS from NATS_CA / NATS_CERT / NATS_KEY."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import TransportError

_JWT_BLOCK = re.compile(r"-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_\-.]+)\s*------END NATS USER JWT------")


@dataclass(frozen=True)
class Credentials:
    path: str
    role: str | None
    inbox_prefix: str | None


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def read_credentials(path: str) -> Credentials:
    """The role and inbox prefix a creds file's user JWT names (the server verifies the JWT; this only reads it)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise TransportError(f"cannot read NATS credentials {path}: {exc.strerror}") from None
    match = _JWT_BLOCK.search(text)
    if match is None:
        raise TransportError(f"NATS credentials {path}: no user JWT in the file")
    try:
        claims: dict[str, Any] = json.loads(_b64url(match.group(1).split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise TransportError(f"NATS credentials {path}: the user JWT does not decode: {exc}") from None
    tags = [str(t) for t in (claims.get("nats") or {}).get("tags") or []]

    def tag(name: str) -> str | None:
        return next((t[len(name) + 1 :] for t in tags if t.startswith(f"{name}:")), None)

    return Credentials(path=path, role=tag("dspex-role"), inbox_prefix=tag("dspex-inbox"))


def tls_context(env: dict[str, str] | None = None) -> ssl.SSLContext | None:
    """A client TLS context when NATS_CA (and for mutual TLS NATS_CERT/NATS_KEY) are set."""
    env = dict(os.environ) if env is None else env
    ca, cert, key = env.get("NATS_CA"), env.get("NATS_CERT"), env.get("NATS_KEY")
    if not ca and not cert:
        return None
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"TLS files (NATS_CA/NATS_CERT/NATS_KEY): {exc}") from None
    return context


def server_list(urls: str) -> list[str]:
    """`NATS_URL` as a list: any node of a cluster, comma-separated; the client reconnects across them."""
    servers = [u.strip() for u in urls.split(",") if u.strip()]
    if not servers:
        raise TransportError("no NATS server given (NATS_URL / --nats-url is empty)")
    for url in servers:
        # nats-py's WebSocket transport is not used (the worker imports nats without it: __main__.py)
        if url.lower().startswith(("ws://", "wss://")):
            raise TransportError(
                f"NATS_URL: {url!r} is a WebSocket URL; the worker connects with nats:// or tls://",
                field="NATS_URL",
            )
    return servers


def connect_options(creds_path: str | None) -> dict[str, Any]:
    """The `nats.connect` keyword arguments for authentication and TLS."""
    options: dict[str, Any] = {}
    if creds_path:
        creds = read_credentials(creds_path)
        options["user_credentials"] = creds.path
        if creds.inbox_prefix:
            options["inbox_prefix"] = creds.inbox_prefix
    if (context := tls_context()) is not None:
        options["tls"] = context
    return options
