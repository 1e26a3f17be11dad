"""The worker verifies the bus when it connects; it never creates or changes a stream, consumer or KV bucket
(`dspex bus apply` provisions them from schemas/bus.json, once, with the deployment's settings).

* The pool's consumer on the request stream is waited for: on Kubernetes the provisioning Job may run after the
  workers start. A log line names what is missing and how to provision it, each time that changes.
* The KV buckets the worker uses — members (when the pool has partitions), programs, jobs — are made by the
  same provisioning, so once the consumer exists they get a short grace, then their absence is a BusError
  naming them.
* A consumer that exists but is not what a worker can pull (another filter, no explicit acks) is a BusError at
  once: waiting would not change it.

What the worker reads here it needs anyway: the consumer's ack wait and BackOff (to pace in-progress acks) and
the pool's partition consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import AckPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError

from ..buckets import APPLY_HINT, JOBS, MEMBERS, PROGRAMS
from ..observability.log import get_logger
from ..protocol.errors import BusError
from ..protocol.generated import bus

log = get_logger("bus")

REQUEST_STREAM = bus.STREAMS["requests"]["name"]


@dataclass(frozen=True, slots=True)
class BusView:
    """What the worker learned about its pool's part of the bus."""

    ack_wait_s: float | None
    backoff_s: list[float] | None
    partitions: int


async def _missing_consumer(js: JetStreamContext, pool: str) -> list[str]:
    try:
        await js.stream_info(REQUEST_STREAM)
    except NotFoundError:
        return [f"stream {REQUEST_STREAM}", f"consumer {REQUEST_STREAM}/{bus.pool_consumer(pool)}"]
    try:
        await js.consumer_info(REQUEST_STREAM, bus.pool_consumer(pool))
    except NotFoundError:
        return [f"consumer {REQUEST_STREAM}/{bus.pool_consumer(pool)}"]
    return []


async def _missing_buckets(js: JetStreamContext, names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            await js.key_value(name)
        except BucketNotFoundError:
            missing.append(f"KV bucket {name}")
    return missing


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _check_consumer(js: JetStreamContext, pool: str) -> tuple[float | None, list[float] | None]:
    name = bus.pool_consumer(pool)
    config = (await js.consumer_info(REQUEST_STREAM, name)).config
    wanted = bus.request_subject(pool, "any")
    filters = [config.filter_subject] if config.filter_subject else list(config.filter_subjects or [])
    problems = []
    if filters != [wanted]:
        problems.append(f"filters {filters or 'nothing'}, not {wanted}")
    if config.ack_policy != AckPolicy.EXPLICIT:
        problems.append(f"ack policy {config.ack_policy}, not explicit")
    if problems:
        raise BusError(
            f"consumer {REQUEST_STREAM}/{name} {'; '.join(problems)}; {APPLY_HINT} as the worker needs it",
            details={"different": [f"consumer {REQUEST_STREAM}/{name}"], "problems": problems},
        )
    return config.ack_wait, config.backoff


async def _count_partitions(js: JetStreamContext, pool: str) -> int:
    """Partition consumers of the pool (`<pool>-p<N>`), as provisioned."""
    prefix = bus.partition_consumer(pool, "")
    names = [info.name for info in await js.consumers_info(REQUEST_STREAM)]
    return sum(1 for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit())


async def verify_bus(nc: Client, pool: str, stop: asyncio.Event, *, bucket_grace_s: float = 10.0) -> BusView | None:
    """Waits for the pool's consumer, then checks it and the buckets; None when `stop` was set while waiting."""
    js = nc.jetstream()
    reported: list[str] = []
    delay = 0.1
    while missing := await _missing_consumer(js, pool):
        if missing != reported:
            log.warning(f"waiting for the bus: missing {', '.join(missing)}; {APPLY_HINT}", missing=missing)
            reported = missing
        await _pause(stop, delay)
        if stop.is_set():
            return None
        delay = min(delay * 2, 2.0)
    ack_wait, backoff = await _check_consumer(js, pool)
    partitions = await _count_partitions(js, pool)
    buckets = [PROGRAMS, JOBS, *([MEMBERS] if partitions else [])]
    give_up = time.monotonic() + bucket_grace_s
    while missing := await _missing_buckets(js, buckets):
        if time.monotonic() >= give_up or stop.is_set():
            raise BusError(
                f"the bus is missing {', '.join(missing)}; {APPLY_HINT}",
                details={"missing": missing},
            )
        await _pause(stop, 0.5)
    return BusView(ack_wait_s=ack_wait, backoff_s=backoff, partitions=partitions)
