"""A real bus for the worker's integration tests: a nats-server (JetStream, temporary store) from the venv, the
layout of schemas/bus.json provisioned the way `dspex bus apply` does it (the tests play the provisioner; the
worker only verifies), workers run in-process, and requests published exactly as a client in any language does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import nats
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StreamConfig

from dspex_worker.config import WorkerConfig
from dspex_worker.protocol.generated import bus
from dspex_worker.worker import Worker

NATS_SERVER = Path(sys.executable).parent / "nats-server"
REQUESTS = bus.STREAMS["requests"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nats_server(store: Path) -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [str(NATS_SERVER), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the server says when it accepts connections
            if b"Server is ready" in line:
                break
        else:
            raise RuntimeError(f"nats-server exited with {proc.wait()}")
        # keep reading its log, so a full pipe never blocks the server
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def connect(url: str) -> Client:
    return await nats.connect(url)


async def provision(
    nc: Client,
    *,
    pools: tuple[str, ...] = ("general", "optimizer"),
    buckets: tuple[str, ...] = ("members", "programs", "jobs", "lmCache"),
    ack_wait_s: float = 30.0,
    consumer_filter: Callable[[str], str] | None = None,
) -> None:
    """What `dspex bus apply` creates, as far as these tests need it."""
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=REQUESTS["name"], subjects=REQUESTS["subjects"], retention=RetentionPolicy.WORK_QUEUE)
    )
    for pool in pools:
        await provision_consumer(nc, pool, ack_wait_s=ack_wait_s, consumer_filter=consumer_filter)
    for name in buckets:
        spec = bus.BUCKETS[name]
        ttl = spec.get("ttlMs")
        await js.create_key_value(
            KeyValueConfig(bucket=spec["name"], history=spec["history"], ttl=ttl / 1000 if ttl else None)
        )


async def provision_consumer(
    nc: Client, pool: str, *, ack_wait_s: float = 30.0, consumer_filter: Callable[[str], str] | None = None
) -> None:
    await nc.jetstream().add_consumer(
        REQUESTS["name"],
        ConsumerConfig(
            durable_name=bus.pool_consumer(pool),
            filter_subject=(consumer_filter or (lambda p: bus.request_subject(p, "any")))(pool),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
        ),
    )


@contextlib.asynccontextmanager
async def running_worker(url: str, pool: str, worker_id: str = "w1", **config: Any) -> AsyncIterator[Worker]:
    worker = Worker(WorkerConfig(nats_url=url, pool=pool, worker_id=worker_id, **config))
    task = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the worker failed to start: raise why
    assert worker.ready.is_set(), "worker not ready within 30 s"
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 40)


async def call(nc: Client, pool: str, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Publishes a request as any client does (schemas/README.md) and returns the decoded reply."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    request_id = str(body.setdefault("id", str(uuid.uuid4())))
    headers = {
        bus.HEADER_REPLY_TO: inbox,
        bus.HEADER_MSG_ID: request_id,
        bus.HEADER_DEADLINE: str(int((time.time() + timeout) * 1000)),
    }
    await nc.jetstream().publish(
        bus.request_subject(pool, "any"), msgpack.packb({"v": 1, **body}, use_bin_type=True), headers=headers
    )
    msg = await sub.next_msg(timeout=timeout)
    reply: dict[str, Any] = msgpack.unpackb(msg.data, raw=False)
    return reply


class LogWatch(logging.Handler):
    """Resolves an asyncio future when a log record whose message contains `text` is written: the tests wait for
    what the worker says it is doing instead of sleeping."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.records: list[logging.LogRecord] = []
        self._loop = asyncio.get_running_loop()
        self.seen: asyncio.Future[logging.LogRecord] = self._loop.create_future()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            if not self.seen.done():
                self._loop.call_soon_threadsafe(lambda: self.seen.done() or self.seen.set_result(record))

    def __enter__(self) -> LogWatch:
        logging.getLogger("dspex").addHandler(self)
        logging.getLogger("dspex").setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("dspex").removeHandler(self)
