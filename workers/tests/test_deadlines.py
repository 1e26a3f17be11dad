"""A request without a Dspex-Deadline header still has a deadline (issue 15, item 4): its pool's default
(schemas/bus.json defaultDeadlines, DSPEX_<POOL>_TIMEOUT_MS), or its `timeout_ms` when that is shorter. Real
nats-server, a worker in-process, the in-process test LM slowed down (`dspex/echo?latency_ms=…`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from nats.aio.client import Client
from nats_bus import connect, provision, running_worker

from dspex_worker.config import parse_config
from dspex_worker.protocol import decode, encode
from dspex_worker.protocol.generated import bus

SIGNATURE = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


async def without_deadline(nc: Client, **body: Any) -> tuple[dict[str, Any], float]:
    """Publishes a request with no Dspex-Deadline header; its reply and the seconds it took."""
    request_id = str(uuid.uuid4())
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    request = {"v": 1, "id": request_id, "op": "predict", "signature": SIGNATURE, "inputs": {"question": "q"}, **body}
    headers = {bus.HEADER_REPLY_TO: inbox, bus.HEADER_MSG_ID: request_id}
    started = time.monotonic()
    await nc.jetstream().publish(bus.request_subject("general", "any"), encode(request), headers=headers)
    reply = decode((await sub.next_msg(timeout=30)).data)
    return reply, time.monotonic() - started


def test_the_default_comes_from_the_pool_the_environment_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    for pool in bus.POOLS:
        monkeypatch.delenv(f"DSPEX_{pool.upper()}_TIMEOUT_MS", raising=False)
    assert parse_config([]).default_deadline_ms == bus.DEFAULT_DEADLINE_MS["general"] == 60_000
    assert parse_config(["--pool", "optimizer"]).default_deadline_ms == 3_600_000
    monkeypatch.setenv("DSPEX_GPU_TIMEOUT_MS", "1234")
    assert parse_config(["--pool", "gpu"]).default_deadline_ms == 1234
    assert parse_config(["--pool", "gpu", "--default-deadline-ms", "99"]).default_deadline_ms == 99
    monkeypatch.setenv("DSPEX_GPU_TIMEOUT_MS", "soon")
    with pytest.raises(SystemExit):
        parse_config(["--pool", "gpu"])


async def test_a_request_without_a_deadline_header_stops_at_the_pools_default(nats_url: str) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=("general",))
    async with running_worker(nats_url, "general", allow_test_models=True, default_deadline_ms=400):
        reply, took = await without_deadline(nc, lm={"model": "dspex/echo?latency_ms=20000"})
        assert reply["ok"] is False and reply["error"]["type"] == "DeadlineExceeded", reply
        assert "the pool's default deadline (400 ms" in reply["error"]["message"]
        assert 0.35 < took < 5, took
        # a shorter timeout_ms in the body wins
        reply, took = await without_deadline(nc, lm={"model": "dspex/echo?latency_ms=20000"}, timeout_ms=150)
        assert reply["error"]["type"] == "DeadlineExceeded" and "its timeout_ms (150 ms" in reply["error"]["message"]
        assert 0.1 < took < 0.35, took
        # … and work that fits is answered
        reply, _ = await without_deadline(nc, lm={"model": "dspex/echo"})
        assert reply["ok"] is True, reply
    await nc.close()
