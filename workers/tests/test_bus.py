"""The worker verifies the bus and never provisions it (real nats-server): it waits for its pool's consumer, saying
what is missing; it fails with a BusError naming a missing bucket or a consumer it cannot pull; and it leaves the
bus as it found it. A test-only LM is refused by a worker not started for tests."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats_bus import LogWatch, call, connect, provision, provision_consumer, running_worker

from dspex_worker.protocol.errors import BusError
from dspex_worker.protocol.generated import bus
from dspex_worker.transport.bus import verify_bus

REQUEST_STREAM = bus.STREAMS["requests"]["name"]


async def test_a_worker_waits_for_its_consumer_and_says_what_is_missing(nats_url: str) -> None:
    nc = await connect(nats_url)
    stop = asyncio.Event()
    with LogWatch("waiting for the bus") as watch:
        verifying = asyncio.create_task(verify_bus(nc, "general", stop))
        record = await asyncio.wait_for(watch.seen, 10)
        message = record.getMessage()
        assert f"stream {REQUEST_STREAM}" in message and f"consumer {REQUEST_STREAM}/general" in message
        assert "`dspex bus apply` provisions the bus" in message
        assert not verifying.done(), "still waiting: the provisioning may come later"
        await provision(nc, pools=("general",))
        view = await asyncio.wait_for(verifying, 10)
    assert view is not None and view.ack_wait_s == 30.0 and view.partitions == 0
    await nc.close()


async def test_a_stopped_worker_stops_waiting(nats_url: str) -> None:
    nc = await connect(nats_url)
    stop = asyncio.Event()
    with LogWatch("waiting for the bus") as watch:
        verifying = asyncio.create_task(verify_bus(nc, "general", stop))
        await asyncio.wait_for(watch.seen, 10)
        stop.set()
        assert await asyncio.wait_for(verifying, 10) is None
    await nc.close()


async def test_a_missing_bucket_is_a_bus_error_and_is_not_created(nats_url: str) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=("general",), buckets=("members", "jobs"))
    with pytest.raises(BusError) as info:
        await verify_bus(nc, "general", asyncio.Event(), bucket_grace_s=0.2)
    assert info.value.type == "BusError" and not info.value.retryable
    assert "KV bucket dspex_programs" in info.value.message and "dspex bus apply" in info.value.message
    assert info.value.details == {"missing": ["KV bucket dspex_programs"]}
    with pytest.raises(BucketNotFoundError):
        await nc.jetstream().key_value("dspex_programs")
    await nc.close()


async def test_a_consumer_the_worker_cannot_pull_is_a_bus_error(nats_url: str) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=(), consumer_filter=None)
    await provision_consumer(nc, "general", consumer_filter=lambda pool: bus.request_subject(pool, "p0"))
    with pytest.raises(BusError) as info:
        await verify_bus(nc, "general", asyncio.Event())
    assert f"consumer {REQUEST_STREAM}/general filters ['dspex.req.general.p0'], not dspex.req.general.any" in (
        info.value.message
    )
    await nc.close()


async def test_the_worker_changes_nothing_on_the_bus(nats_url: str) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=("general",))
    jsm = nc.jetstream()
    before = (await jsm.stream_info(REQUEST_STREAM)).config, (await jsm.consumer_info(REQUEST_STREAM, "general")).config
    async with running_worker(nats_url, "general"):
        pass
    after = (await jsm.stream_info(REQUEST_STREAM)).config, (await jsm.consumer_info(REQUEST_STREAM, "general")).config
    assert after == before
    with pytest.raises(NotFoundError):
        await jsm.consumer_info(REQUEST_STREAM, "optimizer")
    with pytest.raises(BucketNotFoundError):
        await jsm.key_value("dspex_sessions")
    await nc.close()


ECHO_PREDICT = {
    "op": "predict",
    "signature": {
        "inputs": [{"name": "question", "type": {"kind": "str"}}],
        "outputs": [{"name": "answer", "type": {"kind": "str"}}],
    },
    "inputs": {"question": "hi"},
    "lm": {"model": "dspex/echo"},
}


async def test_test_models_only_on_a_worker_started_for_tests(nats_url: str) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=("general",))
    async with running_worker(nats_url, "general"):
        refused = await call(nc, "general", dict(ECHO_PREDICT))
    assert refused["ok"] is False
    assert refused["error"]["type"] == "LMConfigError" and refused["error"]["field"] == "lm.model"
    assert "--allow-test-models" in refused["error"]["message"]
    async with running_worker(nats_url, "general", allow_test_models=True):
        served = await call(nc, "general", dict(ECHO_PREDICT))
    assert served["ok"] is True and served["outputs"] == {"answer": "answer: hi"}
    await nc.close()
