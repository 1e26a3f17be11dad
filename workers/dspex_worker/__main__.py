"""`python -m dspex_worker --pool general`: run one worker process (`--help` lists the flags)."""

from __future__ import annotations

import asyncio
import os
import sys

# litellm (when a request selects it) would otherwise fetch its model cost map over the network at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

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
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
