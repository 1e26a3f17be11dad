"""A `gpu`-pool worker can host the local model: it starts `python -m dspex_worker.local_lm` beside itself
and advertises the endpoint (micro-service metadata and its `ready` event), so every worker of every pool
calls it through DSPy's normal OpenAI-compatible client path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass

from ..observability.log import get_logger

log = get_logger("local_lm_host")


@dataclass
class HostedLM:
    url: str
    model: str
    process: asyncio.subprocess.Process

    async def stop(self, grace: float = 5.0) -> None:
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_local_lm(timeout: float = 120.0) -> HostedLM:
    """Starts the local model server and waits for its ready line (model loaded, port open)."""
    env = {**os.environ, "DSPEX_EXIT_WITH_PARENT": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dspex_worker.local_lm",
        "--port",
        # a fixed port (the embedded fleet picks one) lets a restarted host serve where the workers look
        os.environ.get("DSPEX_LOCAL_LM_PORT", "0"),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"the local LM did not start within {timeout:.0f} s") from None
    if not line:
        code = await proc.wait()
        raise RuntimeError(
            f"the local LM exited with code {code} before it was ready"
            + (" (not installed: run scripts/install-local-lm.sh)" if code == 3 else "")
        )
    info = json.loads(line)
    log.info("hosting the local LM", url=info["url"], model=info["model"])
    # Keep draining stdout so the child never blocks on a full pipe.
    asyncio.ensure_future(_drain(proc))
    return HostedLM(url=info["url"], model=info["model"], process=proc)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    with contextlib.suppress(Exception):
        while await proc.stdout.readline():
            pass
