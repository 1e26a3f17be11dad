"""The worker process: verifies its pool's part of the bus, pulls requests, runs each through the op registry,
replies, acks. The composition root: transport/ moves messages, ops/ runs DSPy, and only this module knows both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.micro
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.request import Request as MicroRequest

from . import __version__, inline_executor
from .buckets import LM_CACHE, open_bucket
from .config import CPU_OPS, WorkerConfig
from .execution import Execution, Request
from .health import start_health_server
from .lm import fleet_cache
from .lm.errors import classify_exception
from .lm.factory import LMFactory
from .lm.hosting import start_local_lm
from .lm.limits import ProfileLimiter, is_rate_limited
from .lm.profiles import LMPolicy, LMProfilesError
from .observability import telemetry
from .observability.log import emit_event, get_logger
from .ops import registry
from .ops.context import OpContext
from .ops.embed import EMBEDDERS
from .programs.packages import discover
from .protocol import DspexError
from .protocol.errors import (
    AffinityError,
    BusError,
    DeadlineExceeded,
    PayloadTooLarge,
    TransportError,
    ValidationError,
)
from .protocol.generated import bus
from .signatures import SignatureCache
from .transport.acks import InProgress, progress_interval
from .transport.bus import REQUEST_STREAM, verify_bus
from .transport.connect import connect_options, server_list
from .transport.dead_letter import DeadLetters
from .transport.direct import DirectServer
from .transport.envelope import decode_request, error_reply, ok_reply, remaining_seconds
from .transport.membership import Membership, assign_partitions
from .transport.pull import Puller
from .transport.replies import Replies

log = get_logger("worker")

SERVICE_NAME = bus.SERVICES["worker"]
WARM_SIGNATURE = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


RunOp = Callable[[OpContext, Request], Awaitable[Execution]]


class Worker:
    def __init__(self, config: WorkerConfig, ops: OpContext | None = None, run_op: RunOp = registry.run) -> None:
        self.config = config
        self.ops = ops or OpContext(
            signatures=SignatureCache(),
            lms=LMFactory(allow_test_models=config.allow_test_models),
            worker_id=config.worker_id,
        )
        # the op registry; the benchmark of the worker's own overhead (bench/py/worker_overhead.py) passes a stub
        self.run_op = run_op
        self.nc: Client | None = None
        self.pull: Puller | None = None
        self.direct: DirectServer | None = None
        self.lm_cache: fleet_cache.FleetCache | None = None
        self.replies: Replies | None = None
        self.membership: Membership | None = None
        self.partitions = 0
        self.recycle_requested = False
        self._reconcile_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready = False
        self.ready = asyncio.Event()  # set once the worker pulls (what the `ready` event on stdout announces)
        self.started_at = time.time()
        # a request without a Dspex-Deadline header runs at most this long (its pool's default)
        self.default_deadline_ms = config.default_deadline_ms or bus.DEFAULT_DEADLINE_MS.get(
            config.pool, bus.DEFAULT_DEADLINE_MS["general"]
        )
        self.handled = 0
        self.failed = 0
        # CPU-heavy ops (config.CPU_OPS) run at most cpu_concurrency at once, however many requests are held
        self._cpu_slots = asyncio.Semaphore(config.cpu_concurrency)
        telemetry.observe_worker(self.stats)

    def request_stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        cache = self.ops.signatures
        return {
            "worker": self.config.worker_id,
            "pool": self.config.pool,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "inflight": (self.pull.inflight if self.pull else 0) + (self.direct.inflight if self.direct else 0),
            "handled": self.handled,
            "failed": self.failed,
            "concurrency": self.config.concurrency,
            "lm_limits": {name: limiter.stats() for name, limiter in self.ops.lms.limiters.items()},
            "signature_cache": {"hits": cache.hits, "misses": cache.misses},
            "rss_mb": round(rss_bytes() / 2**20, 1),
            "partitions": sorted(c for c in (self.pull.consumers if self.pull else []) if c != self.config.pool),
            "pulls": self.pull.describe() if self.pull else {},
            "direct": {
                "inflight": self.direct.inflight,
                "waiting": self.direct.waiting,
                "received": self.direct.received,
                "subjects": self.direct.subjects,
            }
            if self.direct
            else {},
            "reliability": self.replies.stats() if self.replies else {},
            "embed": EMBEDDERS.stats(),
            "lm_cache": self.lm_cache.stats() if self.lm_cache else {"mode": fleet_cache.cache_mode()},
            "programs": self.ops.catalog.advertisement(),
        }

    async def _connect(self) -> Client:
        async def on_reconnect() -> None:
            log.warning("reconnected to NATS")
            if self.pull:
                self.pull.reset_credit()

        async def on_disconnect() -> None:
            log.warning("disconnected from NATS")

        async def on_error(exc: Exception) -> None:
            if self.nc is None and "authorization violation" in str(exc).lower():
                # raised out of nats.connect: refused credentials do not get better by retrying forever
                raise TransportError(
                    "NATS refused this worker's credentials"
                    + (
                        f" ({self.config.nats_creds})"
                        if self.config.nats_creds
                        else ": set NATS_CREDS (docs/security.md)"
                    )
                )
            # e.g. a permissions violation: a publish outside this role's allow-list (docs/security.md)
            log.warning("NATS error", error=f"{type(exc).__name__}: {exc}")

        return await nats.connect(
            server_list(self.config.nats_url),
            name=f"{SERVICE_NAME} {self.config.worker_id}",
            **connect_options(self.config.nats_creds),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            reconnected_cb=on_reconnect,
            disconnected_cb=on_disconnect,
            error_cb=on_error,
        )

    async def run(self) -> None:
        cfg = self.config
        # Pre-warm: build a signature class before taking work.
        self.ops.signatures.get_or_build(WARM_SIGNATURE)
        nc = self.nc = await self._connect()
        try:
            view = await verify_bus(nc, cfg.pool, self._stop)
        except BaseException:
            await nc.close()
            raise
        if view is None:  # stopped while waiting for the bus
            await nc.close()
            return
        self.ops.connect(nc)
        # DSPy's LM cache, shared by the fleet (lm/fleet_cache.py): loaded before the first request
        self.lm_cache = await fleet_cache.install(lambda: open_bucket(nc.jetstream(), LM_CACHE))
        self.replies = Replies(
            nc,
            DeadLetters(nc, cfg.worker_id, keep_inputs=cfg.dlq_keep_inputs),
            progress_interval=progress_interval(view.ack_wait_s, view.backoff_s),
        )
        # one budget of execution slots for both lanes: direct requests running count against the pulls
        self.pull = Puller(
            nc, REQUEST_STREAM, self._handle, cfg.concurrency, busy=lambda: self.direct.inflight if self.direct else 0
        )
        self.direct = DirectServer(nc, cfg.pool, cfg.worker_id, self._handle_direct, cfg.concurrency, self.pull.wake)
        await self.pull.add(bus.pool_consumer(cfg.pool))
        self.partitions = view.partitions
        if self.partitions:
            self.membership = Membership(nc, cfg.pool, cfg.worker_id, self._on_members)
            await self.membership.start()
            self._reconcile_task = asyncio.create_task(self._reconcile_partitions())
        hosted = await start_local_lm() if cfg.host_local_lm and cfg.pool == "gpu" else None
        lm_meta = {"lm_url": hosted.url, "lm_model": f"openai/{hosted.model}"} if hosted else {}
        # Users' programs are imported before pulling so that a broken one is reported in the ready event.
        self.ops.catalog = discover()
        for failure in self.ops.catalog.failures:
            log.warning("program not served", program=failure["name"], path=failure["path"], error=failure["error"])
        self.pull.start()
        await self.direct.start()
        service = await nats.micro.add_service(
            nc,
            name=SERVICE_NAME,
            version=__version__,
            description="DSPex Python worker",
            metadata={
                "pool": cfg.pool,
                "worker": cfg.worker_id,
                "pid": str(os.getpid()),
                "concurrency": str(cfg.concurrency),  # what a batch job sizes its default concurrency by
                **lm_meta,
            },
        )
        # the endpoint `status` of group `dspex.worker.<id>` answers on dspex.worker.<id>.status
        group = service.add_group(name=bus.worker_status_subject(cfg.worker_id).removesuffix(".status"))
        await group.add_endpoint(name="status", handler=self._status_endpoint)
        health = None
        if cfg.health_port is not None:
            health = await start_health_server(cfg.health_port, lambda: self._ready and nc.is_connected, self.stats)
        self._ready = True
        self.ready.set()
        emit_event(
            "ready",
            worker=cfg.worker_id,
            pool=cfg.pool,
            pid=os.getpid(),
            programs=self.ops.catalog.advertisement(),
            **lm_meta,
        )
        log.info("worker ready", worker=cfg.worker_id, pool=cfg.pool)
        # DSPy's model price table (~35 ms to load, once), in a thread now that the worker is ready: the price of an
        # LM call is then a lookup on the loop (inline_executor.py), and the start does not wait for it
        preload = asyncio.create_task(inline_executor.preload_tables())

        await self._stop.wait()
        preload.cancel()
        self._ready = False
        emit_event("stopping", worker=cfg.worker_id)
        if self.membership is not None:
            await self.membership.leave()
        left_direct, left = await asyncio.gather(self.direct.stop(cfg.drain_timeout), self.pull.stop(cfg.drain_timeout))
        if left_direct:
            log.warning("direct requests still running at the drain timeout were cancelled", left=left_direct)
        if left:
            log.warning("requests still running at the drain timeout; they will be redelivered", left=left)
        await service.stop()
        if self.lm_cache is not None:
            await self.lm_cache.replica.stop()
        if health is not None:
            await health.cleanup()
        await nc.drain()
        if hosted is not None:
            await hosted.stop()
        emit_event("stopped", worker=cfg.worker_id, handled=self.handled)

    def _on_members(self, members: list[str]) -> None:
        """Pulls exactly the partitions the shared assignment gives this worker."""
        mine = self._apply_assignment(members)
        emit_event("partitions", worker=self.config.worker_id, partitions=sorted(mine), members=members)

    def _apply_assignment(self, members: list[str]) -> set[int]:
        assert self.pull is not None
        pool, me = self.config.pool, self.config.worker_id
        mine = {p for p, owner in assign_partitions(self.partitions, members).items() if owner == me}
        wanted = {bus.partition_consumer(pool, p) for p in mine}
        current = {c for c in self.pull.consumers if c != bus.pool_consumer(pool)}
        for consumer in sorted(wanted - current):
            asyncio.ensure_future(self.pull.add(consumer, group=bus.PARTITION_GROUP))
        for consumer in sorted(current - wanted):
            asyncio.ensure_future(self.pull.remove(consumer))
        if self.direct is not None:
            asyncio.ensure_future(self.direct.set_partitions(mine))
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
        log.info("recycle", reason=reason, worker=cfg.worker_id)
        if cfg.supervised:
            # The supervisor starts a replacement first, then asks us to drain and stop.
            emit_event("recycle", worker=cfg.worker_id, reason=reason)
        else:
            self.request_stop()

    async def _status_endpoint(self, req: MicroRequest) -> None:
        await req.respond(json.dumps(self.stats()).encode())

    async def _handle(self, msg: Msg) -> None:
        assert self.replies is not None
        started = time.time()
        headers = msg.headers or {}
        reply_to = headers.get(bus.HEADER_REPLY_TO)
        req_id = headers.get(bus.HEADER_MSG_ID, "")
        try:
            queue_ms = max(0.0, (started - msg.metadata.timestamp.timestamp()) * 1000) if msg.reply else 0.0
        except Exception:  # not a JetStream delivery (no metadata)
            queue_ms = 0.0
        if not reply_to:
            # Nobody can hear an answer; the request is dead on arrival.
            log.error("request without a reply subject terminated", id=req_id, header=bus.HEADER_REPLY_TO)
            with contextlib.suppress(Exception):
                reason = f"no {bus.HEADER_REPLY_TO} header: nobody can receive the reply"
                await self.replies.dead_letters.terminate(msg, reason)
            self.failed += 1
            return
        if await self.replies.answer_duplicate(msg, req_id, reply_to):
            return
        progress = InProgress(msg, interval=self.replies.progress_interval)
        try:
            work = self._execute(msg, req_id, headers, queue_ms, started)
            reply = await telemetry.traced_request(work, msg, pool=self.config.pool, queue_ms=queue_ms)
        finally:
            progress.cancel()
        if not await self.replies.finish(msg, req_id, reply_to, reply):
            return  # not sent: left unacked, so it is redelivered (and answered from the reply memory)
        self._check_recycle()

    async def _handle_direct(self, msg: Msg, received: float) -> bytes:
        """One request of the direct lane (transport/direct.py): the same execution, no acks, no reply memory;
        returns the encoded reply, which the direct server publishes once."""
        assert self.replies is not None and self.nc is not None
        started = time.time()
        queue_ms = max(0.0, (started - received) * 1000)  # waiting here for a free slot
        work = self._execute(msg, "", msg.headers or {}, queue_ms, started)
        reply = await telemetry.traced_request(work, msg, pool=self.config.pool, queue_ms=queue_ms)
        data = self.replies.encode_reply(reply, self.nc.max_payload)
        self._check_recycle()
        return data

    def _admit(self, msg: Msg, headers: dict[str, str]) -> tuple[Request, float, str | None]:
        """The decoded request, the seconds left until its deadline and, when the request named none, what its
        deadline is instead — or the error that stops it here."""
        if len(msg.data) > self.config.max_payload:
            raise PayloadTooLarge(
                f"request body is {len(msg.data)} bytes; the limit is {self.config.max_payload}",
                details={"limit": self.config.max_payload, "size": len(msg.data)},
            )
        request = decode_request(msg.data)
        telemetry.note_request(request["op"])
        if headers.get(bus.HEADER_MSG_ID) not in (None, request["id"]):
            raise ValidationError(f"id: differs from the {bus.HEADER_MSG_ID} header", field="id")
        worker, bound = self.config.worker_id, headers.get(bus.HEADER_SESSION_WORKER)
        if bound and bound != worker:
            raise AffinityError(
                f"session {request.get('session')!r} is bound to worker {bound} (affinity: strict), not {worker}",
                field="session",
                details={"bound_worker": bound, "worker": worker},
            )
        remaining = remaining_seconds(headers.get(bus.HEADER_DEADLINE))
        if remaining is None:
            # No deadline: the pool's default, counted from now, or the body's timeout_ms when that is shorter.
            limit_ms = min(self.default_deadline_ms, request.get("timeout_ms") or self.default_deadline_ms)
            default = (
                f"the pool's default deadline ({limit_ms} ms; the request had no {bus.HEADER_DEADLINE} header)"
                if limit_ms == self.default_deadline_ms
                else f"its timeout_ms ({limit_ms} ms; the request had no {bus.HEADER_DEADLINE} header)"
            )
            return request, limit_ms / 1000, default
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline passed {-remaining * 1000:.0f} ms before the work started")
        return request, remaining, None

    async def _execute(
        self, msg: Msg, req_id: str, headers: dict[str, str], queue_ms: float, started: float
    ) -> dict[str, Any]:
        worker = self.config.worker_id
        limiter: ProfileLimiter | None = None
        try:
            request, remaining, default = self._admit(msg, headers)
            req_id = request["id"]
            limiter = self.ops.lms.limiter(request.get("lm"))
            try:
                # asyncio.timeout runs the program in this task (wait_for wraps it in a new one each time); waiting for
                # a CPU slot or the LM profile's limits counts against the deadline too
                async with asyncio.timeout(remaining):
                    async with (
                        self._cpu_slots if request["op"] in CPU_OPS else contextlib.nullcontext(),
                        limiter.slot() if limiter is not None else contextlib.nullcontext(),
                    ):
                        execution = await self.run_op(self.ops, request)
            except TimeoutError:
                raise DeadlineExceeded(f"{default or 'deadline'} passed while the program was running") from None
            if limiter is not None:
                limiter.spent(int(execution.usage.get("total_tokens") or 0))
            self.handled += 1
            return ok_reply(
                req_id,
                execution.outputs,
                lm=execution.lm,
                usage=execution.usage,
                timings=_timings(queue_ms, started),
                worker=worker,
                scores=execution.scores,
                extra=execution.extra,
            )
        except Exception as exc:
            error: DspexError = classify_exception(exc)
            self.failed += 1
            if limiter is not None and is_rate_limited(error.to_wire()):
                retry_after = (error.details or {}).get("retry_after")
                limiter.throttled(float(retry_after) if isinstance(retry_after, int | float) else None)
            unexpected = error.type == "WorkerError"
            log.log(
                logging.ERROR if unexpected else logging.INFO,  # the program's own exceptions vs a request's mistakes
                "request failed",
                exc_info=unexpected,
                id=req_id,
                error_type=error.type,
                error=error.message,
            )
            return error_reply(req_id, error.to_wire(), worker=worker, timings=_timings(queue_ms, started))


def _timings(queue_ms: float, started: float) -> dict[str, float]:
    return {"queue_ms": round(queue_ms, 3), "exec_ms": round((time.time() - started) * 1000, 3)}


def describe_policy(policy: LMPolicy) -> None:
    """The operator's LM profiles in the worker's log (names, models, endpoints, key variables — never keys)."""
    for name, profile in sorted(policy.profiles.items()):
        key = profile.api_key_env
        log.info(
            "LM profile",
            profile=name,
            default=name == policy.default,
            models=sorted(profile.models),
            api_base=profile.api_base or "(the provider's)",
            key_env=key or "(none: no key is sent)",
        )
        if key is not None and not os.environ.get(key):
            log.warning(
                "LM profile's key variable is not set: its requests get LMConfigError", profile=name, key_env=key
            )
    for url, endpoint in sorted(policy.endpoints.items()):
        log.info("LM endpoint a request may name", api_base=url, key_env=endpoint.api_key_env or "(none)")


def rss_bytes() -> int:
    """Resident set size of this Python process."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


async def serve(config: WorkerConfig) -> None:
    try:
        worker = Worker(config)
    except LMProfilesError as exc:
        log.error(f"LM profiles: {exc}", error_type="LMProfilesError")
        sys.exit(2)
    describe_policy(worker.ops.lms.policy)
    loop = asyncio.get_running_loop()
    inline_executor.install(loop)
    if missing := inline_executor.missing_helpers():
        log.warning(f"DSPy no longer has {', '.join(missing)}: those run in threads", helpers=missing)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    try:
        await worker.run()
    except (BusError, TransportError) as exc:
        log.error(exc.message, error_type=exc.type, **(exc.details or {}))
        sys.exit(2)
