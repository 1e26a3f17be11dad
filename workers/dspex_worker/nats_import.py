"""Imports nats-py without its WebSocket transport; imported first by `python -m dspex_worker` (__main__.py).

nats-py imports aiohttp, when it is installed, for its WebSocket transport alone: ~60 ms of a worker's start
(docs/performance.md, cold start). The worker connects with nats:// and tls:// only (transport/connect.py refuses
ws://), so nats is imported while aiohttp is hidden; aiohttp stays importable afterwards for whoever needs it
(DSPy's LM clients, the health server).
"""

from __future__ import annotations

import sys


def import_nats_without_websockets() -> None:
    if "nats" in sys.modules or "aiohttp" in sys.modules:
        return  # too late to matter, or aiohttp is loaded anyway
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # `import aiohttp` raises ImportError meanwhile
    try:
        import nats.aio.transport  # noqa: F401
    finally:
        del sys.modules["aiohttp"]


import_nats_without_websockets()
