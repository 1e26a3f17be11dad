"""`python -m dspex_worker --pool general`: run one worker process (`--help` lists the flags)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

# litellm (when a request selects it) would otherwise fetch its model cost map over the network at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


from . import nats_import  # noqa: F401 — first: nats without aiohttp (its docstring)
from .config import parse_config
from .observability.log import setup_logging
from .observability.telemetry import setup_telemetry
from .parent import exit_with_parent_if_asked
from .worker import serve


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv if argv is not None else sys.argv[1:])
    setup_logging()
    setup_telemetry(worker_id=config.worker_id, pool=config.pool)
    exit_with_parent_if_asked()
    with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
        runner.run(serve(config))


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop: −13 % worker CPU per request measured (docs/performance.md); None is asyncio's default loop."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


if __name__ == "__main__":
    main()
