"""The worker process: binds to its pool's durable consumer, runs requests through DSPy, replies, acks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

import nats
import nats.micro
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.request import Request as MicroRequest

from . import __version__, telemetry
from .config import WorkerConfig
from .errors import AffinityError, DeadlineExceeded, DspexError, PayloadTooLarge, ValidationError
from .executor import Executor
from .health import start_health_server
from .lm import classify_exception
from .local_lm_host import start_local_lm
from .log import emit_event
from .membership import Membership, assign_partitions
from .pull import Puller
from .reliability import Reliability, decode_guarded
from .wire import (
    HEADER_DEADLINE,
    HEADER_MSG_ID,
    HEADER_REPLY_TO,
    HEADER_SESSION_WORKER,
    PARTITION_GROUP,
    REQUEST_STREAM,
    error_reply,
    ok_reply,
)

log = logging.getLogger("dspex.worker")

SERVICE_NAME = "dspex-worker"
WARM_SIGNATURE = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


class Worker:
    def __init__(self, config: WorkerConfig, executor: Executor | None = None) -> None:
        self.config = config
        self.executor = executor or Executor()
        self.executor.worker_id = config.worker_id  # recorded in optimizer jobs (optimize.py)
        self.nc: Client | None = None
        self.pull: Puller | None = None
        self.membership: Membership | None = None
        self.partitions = 0
        self.recycle_requested = False
        self._reconcile_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready = False
        self.started_at = time.time()
        self.handled = 0
        self.failed = 0
        self.reliability = Reliability(config.worker_id)  # redeliveries, confirmed replies, dead letters
        telemetry.observe_worker(self.stats)

    def request_stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        cache = self.executor.signatures
        return {
            "worker": self.config.worker_id,
            "pool": self.config.pool,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "inflight": self.pull.inflight if self.pull else 0,
            "handled": self.handled,
            "failed": self.failed,
            "concurrency": self.config.concurrency,
            "signature_cache": {"hits": cache.hits, "misses": cache.misses},
            "rss_mb": round(rss_bytes() / 2**20, 1),
            "partitions": sorted(c for c in (self.pull.consumers if self.pull else []) if c != self.config.pool),
            "pulls": self.pull.describe() if self.pull else {},
            "reliability": self.reliability.stats(),
        }

    async def _wait_for_consumer(self, nc: Client) -> None:
        """The router provisions streams and consumers; a worker that starts first waits for them."""
        js = nc.jetstream()
        delay = 0.1
        while not self._stop.is_set():
            try:
                await js.consumer_info(REQUEST_STREAM, self.config.pool)
                return
            except Exception as exc:
                log.info("waiting for consumer %s on %s: %s", self.config.pool, REQUEST_STREAM, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, 2.0)

    async def run(self) -> None:
        cfg = self.config
        # Pre-warm: build a signature class and a module before taking work.
        self.executor.signatures.get_or_build(WARM_SIGNATURE)

        async def on_reconnect() -> None:
            log.warning("reconnected to NATS")
            if self.pull:
                self.pull.reset_credit()

        async def on_disconnect() -> None:
            log.warning("disconnected from NATS")

        nc = await nats.connect(
            cfg.nats_url,
            name=f"{SERVICE_NAME} {cfg.worker_id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            reconnected_cb=on_reconnect,
            disconnected_cb=on_disconnect,
        )
        self.nc = nc
        self.executor.programs.nc = nc
        await self._wait_for_consumer(nc)
        await self.reliability.start(nc, cfg.pool)
        if self._stop.is_set():
            await nc.close()
            return
        self.pull = Puller(nc, REQUEST_STREAM, self._handle, cfg.concurrency)
        await self.pull.add(cfg.pool)
        self.partitions = await self._count_partitions(nc)
        if self.partitions:
            self.membership = Membership(nc, cfg.pool, cfg.worker_id, self._on_members)
            await self.membership.start()
            self._reconcile_task = asyncio.create_task(self._reconcile_partitions())
        hosted = await start_local_lm() if cfg.host_local_lm and cfg.pool == "gpu" else None
        lm_meta = {"lm_url": hosted.url, "lm_model": f"openai/{hosted.model}"} if hosted else {}
        self.pull.start()
        service = await nats.micro.add_service(
            nc,
            name=SERVICE_NAME,
            version=__version__,
            description="DSPex Python worker",
            metadata={"pool": cfg.pool, "worker": cfg.worker_id, "pid": str(os.getpid()), **lm_meta},
        )
        group = service.add_group(name=f"dspex.worker.{cfg.worker_id}")
        await group.add_endpoint(name="status", handler=self._status_endpoint)
        health = None
        if cfg.health_port is not None:
            health = await start_health_server(cfg.health_port, lambda: self._ready and nc.is_connected, self.stats)
        self._ready = True
        emit_event("ready", worker=cfg.worker_id, pool=cfg.pool, pid=os.getpid(), **lm_meta)
        log.info("worker ready", extra={"fields": {"worker": cfg.worker_id, "pool": cfg.pool}})

        await self._stop.wait()
        self._ready = False
        emit_event("stopping", worker=cfg.worker_id)
        if self.membership is not None:
            await self.membership.leave()
        left = await self.pull.stop(cfg.drain_timeout)
        if left:
            log.warning("%d request(s) still running at the drain timeout; they will be redelivered", left)
        await service.stop()
        if health is not None:
            await health.cleanup()
        await nc.drain()
        if hosted is not None:
            await hosted.stop()
        emit_event("stopped", worker=cfg.worker_id, handled=self.handled)

    async def _count_partitions(self, nc: Client) -> int:
        """Partition consumers of this pool (`<pool>-p<N>`), as the router provisioned them."""
        prefix = f"{self.config.pool}-p"
        infos = await nc.jetstream().consumers_info(REQUEST_STREAM)
        return sum(1 for i in infos if i.name.startswith(prefix) and i.name[len(prefix) :].isdigit())

    def _on_members(self, members: list[str]) -> None:
        """Pulls exactly the partitions the shared assignment gives this worker."""
        mine = self._apply_assignment(members)
        emit_event("partitions", worker=self.config.worker_id, partitions=sorted(mine), members=members)

    def _apply_assignment(self, members: list[str]) -> set[int]:
        assert self.pull is not None
        mine = {p for p, owner in assign_partitions(self.partitions, members).items() if owner == self.config.worker_id}
        wanted = {f"{self.config.pool}-p{p}" for p in mine}
        current = {c for c in self.pull.consumers if c != self.config.pool}
        for consumer in sorted(wanted - current):
            asyncio.ensure_future(self.pull.add(consumer, group=PARTITION_GROUP))
        for consumer in sorted(current - wanted):
            asyncio.ensure_future(self.pull.remove(consumer))
        return mine

    async def _reconcile_partitions(self, interval: float = 2.0) -> None:
        """Re-applies the assignment now and then: an add and a remove racing during a membership change
        can leave a partition unpulled or pulled twice, and this mends either within seconds."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self.membership is not None and not self._stop.is_set():
                self._apply_assignment(self.membership.members)

    def _check_recycle(self) -> None:
        """After N requests or above an RSS limit, a worker is replaced: drained, never killed mid-request."""
        cfg = self.config
        reason = None
        if cfg.max_requests and self.handled + self.failed >= cfg.max_requests:
            reason = f"handled {self.handled + self.failed} requests (limit {cfg.max_requests})"
        elif cfg.max_rss_mb and rss_bytes() > cfg.max_rss_mb * 2**20:
            reason = f"RSS {rss_bytes() / 2**20:.0f} MiB over the limit of {cfg.max_rss_mb} MiB"
        if reason is None or self.recycle_requested:
            return
        self.recycle_requested = True
        log.info("recycle: %s", reason, extra={"fields": {"worker": cfg.worker_id}})
        if cfg.supervised:
            # The supervisor starts a replacement first, then asks us to drain and stop.
            emit_event("recycle", worker=cfg.worker_id, reason=reason)
        else:
            self.request_stop()

    async def _status_endpoint(self, req: MicroRequest) -> None:
        import json

        await req.respond(json.dumps(self.stats()).encode())

    def _progress(self, msg: Msg, interval: float) -> _Progress:
        """Tells JetStream the request is still being worked on, so AckWait does not redeliver it."""
        return _Progress(msg, interval)

    async def _handle(self, msg: Msg) -> None:
        assert self.nc is not None
        started = time.time()
        headers = msg.headers or {}
        reply_to = headers.get(HEADER_REPLY_TO)
        req_id = headers.get(HEADER_MSG_ID, "")
        try:
            queue_ms = max(0.0, (started - msg.metadata.timestamp.timestamp()) * 1000) if msg.reply else 0.0
        except Exception:
            queue_ms = 0.0
        if not reply_to:
            # Nobody can hear an answer; the request is dead on arrival.
            log.error("request without %s header terminated", HEADER_REPLY_TO, extra={"fields": {"id": req_id}})
            with contextlib.suppress(Exception):
                await self.reliability.terminate(msg, f"no {HEADER_REPLY_TO} header: nobody can receive the reply")
            self.failed += 1
            return
        if await self.reliability.answer_duplicate(msg, req_id, reply_to):
            return
        progress = self._progress(msg, interval=self.reliability.progress_interval)
        try:
            work = self._execute(msg, req_id, headers, queue_ms, started)
            reply = await telemetry.traced_request(work, msg, pool=self.config.pool, queue_ms=queue_ms)
        finally:
            progress.cancel()
        if not await self.reliability.finish(msg, req_id, reply_to, reply):
            return  # not sent: left unacked, so it is redelivered (and answered from the reply memory)
        self._check_recycle()

    async def _execute(
        self, msg: Msg, req_id: str, headers: dict[str, str], queue_ms: float, started: float
    ) -> dict[str, Any]:
        worker = self.config.worker_id
        try:
            if len(msg.data) > self.config.max_payload:
                raise PayloadTooLarge(
                    f"request body is {len(msg.data)} bytes; the limit is {self.config.max_payload}",
                    details={"limit": self.config.max_payload, "size": len(msg.data)},
                )
            request = decode_guarded(msg.data)  # unexpected decode failures are DecodeErrors too
            telemetry.note_request(request.op)
            req_id = request.id
            if headers.get(HEADER_MSG_ID) not in (None, request.id):
                raise ValidationError("`id` differs from the Nats-Msg-Id header", field="id")
            bound = headers.get(HEADER_SESSION_WORKER)
            if bound and bound != worker:
                raise AffinityError(
                    f"session {request.session!r} is bound to worker {bound} (affinity: strict), not {worker}",
                    field="session",
                    details={"bound_worker": bound, "worker": worker},
                )
            remaining = _remaining_seconds(headers.get(HEADER_DEADLINE))
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"deadline passed {-remaining * 1000:.0f} ms before the work started")
            try:
                # asyncio.timeout runs the program in this task (wait_for wraps it in a new one each time)
                async with asyncio.timeout(remaining):
                    execution = await self.executor.run(request)
            except TimeoutError:
                raise DeadlineExceeded("deadline passed while the program was running") from None
            exec_ms = (time.time() - started) * 1000
            self.handled += 1
            return ok_reply(
                req_id,
                execution.outputs,
                lm=execution.lm,
                usage=execution.usage,
                timings={"queue_ms": round(queue_ms, 3), "exec_ms": round(exec_ms, 3)},
                worker=worker,
                scores=execution.scores,
                extra=execution.extra,
            )
        except Exception as exc:
            error: DspexError = classify_exception(exc)
            self.failed += 1
            level = logging.ERROR if error.type == "WorkerError" else logging.INFO
            log.log(
                level,
                "request failed: %s",
                error.message,
                exc_info=error.type == "WorkerError",
                extra={"fields": {"id": req_id, "error_type": error.type}},
            )
            exec_ms = (time.time() - started) * 1000
            return error_reply(
                req_id,
                error.to_wire(),
                worker=worker,
                timings={"queue_ms": round(queue_ms, 3), "exec_ms": round(exec_ms, 3)},
            )


class _Progress:
    """In-progress acks every `interval` seconds from a loop timer: a request that finishes first never
    costs a task (most requests are far shorter than a third of AckWait)."""

    __slots__ = ("_msg", "_interval", "_loop", "_timer", "_task")

    def __init__(self, msg: Msg, interval: float) -> None:
        self._msg = msg
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._task = self._loop.create_task(self._send())
        self._timer = self._loop.call_later(self._interval, self._tick)

    async def _send(self) -> None:
        with contextlib.suppress(Exception):
            await self._msg.in_progress()

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


def rss_bytes() -> int:
    """Resident set size of this Python process."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _remaining_seconds(deadline_header: str | None) -> float | None:
    if not deadline_header:
        return None
    try:
        return int(deadline_header) / 1000 - time.time()
    except ValueError:
        raise ValidationError(
            f"{HEADER_DEADLINE} must be Unix epoch milliseconds (got {deadline_header!r})",
            field=HEADER_DEADLINE,
        ) from None


async def serve(config: WorkerConfig) -> None:
    worker = Worker(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    await worker.run()
