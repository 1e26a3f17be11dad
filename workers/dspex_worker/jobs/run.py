"""One run of a job on this worker: its record while it runs, its progress events, its cancellation.

* **Record and lease.** `start()` claims the job: status `running`, `owner` = this worker, `runs` + 1, and a lease
  (`lease_until`) renewed with every progress save and heartbeat; `finish()` writes the final status and
  releases the lease. A job whose lease lapsed (its worker died) may be taken over: the runner of a redelivered
  request waits while another live owner holds it (`wait_while_owned`).
* **Progress events.** JSON `JobProgress` (job.schema.json#/definitions/progress) on `dspex.jobs.progress.<job>`,
  `seq` 0, 1, … per run. The job's own thread reports with `emit()` (thread-safe); events are published in order
  from the event loop, with the job's counters, and a `heartbeat` every HEARTBEAT_S when nothing else happened.
* **Cancel.** `cancel_requested: true` in the record (the durable request, seen at each lease renewal) or a
  message on `dspex.jobs.cancel.<job>` (seen at once) sets `cancelled`, which the job's thread checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..observability.log import get_logger
from ..protocol.generated.bus import job_cancel_subject, job_progress_subject
from ..protocol.generated.types import JobCounts, JobRecord, JobStatus
from .store import JobStore, StoredRecord, now_ms

log = get_logger("jobs")

HEARTBEAT_S: Final = 2.0
# How long a lease holds without renewal: several heartbeats, so a busy moment does not lose the job.
LEASE_MS: Final = 15_000
# Progress is saved into the record on stage and trial events, and otherwise at most this often.
SAVE_EVERY_S: Final = 1.0
EVENT_STATUS: Final[dict[str, JobStatus]] = {"done": "succeeded", "failed": "failed", "cancelled": "cancelled"}

# Jobs this process is running now: a second request for one of them (a client resending it) must not start a
# second run beside the first just because the record names this worker as the owner.
_running_here: set[str] = set()


async def wait_while_owned(store: JobStore, stored: StoredRecord, worker: str) -> StoredRecord:
    """While another worker holds a live lease on the job (a redelivery reached us while it still runs there),
    waits at the lease's pace until the job ends or the lease lapses (its owner is gone)."""
    waiting = False
    while True:
        record = stored.value
        if record["status"] != "running" or record.get("owner") is None:
            return stored
        if record.get("owner") == worker and stored.id not in _running_here:
            return stored  # this worker's earlier life (same id, restarted) ran it: take it over at once
        if record.get("lease_until", 0) <= now_ms():
            log.info("job lease lapsed: taking it over", job=stored.id, owner=record.get("owner"))
            return stored
        if not waiting:
            log.info("job runs on another worker: waiting for it to end", job=stored.id, owner=record.get("owner"))
            # (or on this one, for another request: the same wait)
            waiting = True
        await asyncio.sleep(HEARTBEAT_S)  # the owner renews its lease at this pace
        fresh = await store.get(stored.id)
        if fresh is None:
            return stored
        stored = fresh


class JobRun:
    def __init__(
        self,
        nc: Client,
        store: JobStore,
        stored: StoredRecord,
        *,
        worker: str,
        counters: Callable[[], dict[str, Any]] = dict,
        counts: Callable[[], JobCounts] | None = None,
    ) -> None:
        self.nc = nc
        self.store = store
        self.stored = stored
        self.worker = worker
        self.cancelled = threading.Event()
        self.counters = counters  # the job's counters as event fields (called on the event loop)
        self.counts = counts  # ... and as the record's `progress`
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._seq = 0
        self._started = time.monotonic()
        self._publisher: asyncio.Task[None] | None = None
        self._cancel_sub: Subscription | None = None

    @property
    def job(self) -> str:
        return self.stored.id

    @property
    def record(self) -> JobRecord:
        return self.stored.value

    async def _write(self, change: Callable[[JobRecord], None]) -> None:
        stored = await self.store.update(self.stored, change)
        if stored is None:  # the record was deleted: nobody wants the job any more
            self.cancelled.set()
            return
        self.stored = stored
        if stored.value.get("cancel_requested"):
            self.cancelled.set()

    async def start(self) -> bool:
        """Claims the job — only if its record is as this run read it: a record that moved meanwhile (another
        worker claimed it, a client asked to cancel) has to be looked at again — then starts its events,
        heartbeat and cancel watch. False when the record had moved."""
        now = now_ms()
        record = copy.deepcopy(self.record)
        record["status"] = "running"
        record["owner"] = self.worker
        record["lease_until"] = now + LEASE_MS
        record["started_at"] = now
        record["runs"] = record.get("runs", 0) + 1
        for stale in ("error", "result", "finished_at"):
            record.pop(stale, None)  # type: ignore[misc]
        claimed = await self.store.replace(self.stored, record)
        if claimed is None:
            return False
        self.stored = claimed
        _running_here.add(self.job)
        self._started = time.monotonic()
        self._cancel_sub = await self.nc.subscribe(job_cancel_subject(self.job), cb=self._on_cancel)
        self._publisher = asyncio.create_task(self._publish_loop())
        self.emit("started")
        return True

    async def _on_cancel(self, _msg: Msg) -> None:
        log.info("job cancel requested", job=self.job)
        self.cancelled.set()

    def emit(self, kind: str, **fields: Any) -> None:
        """Queues a progress event; callable from any thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, {"type": kind, **fields})

    async def _publish_loop(self) -> None:
        saved = time.monotonic()
        while True:
            try:
                event = await asyncio.wait_for(self._queue.get(), HEARTBEAT_S)
            except TimeoutError:
                event = {"type": "heartbeat"}
            if event is None:
                return
            if event["type"] in ("heartbeat", "stage", "trial") or time.monotonic() - saved > SAVE_EVERY_S:
                saved = time.monotonic()
                await self._save_progress()
            await self._publish(event)

    async def _save_progress(self) -> None:
        lease_until = now_ms() + LEASE_MS
        counts = self.counts() if self.counts is not None else None

        def renew(record: JobRecord) -> None:
            record["lease_until"] = lease_until
            if counts is not None:
                record["progress"] = counts

        try:
            await self._write(renew)
        except Exception as exc:  # reconnecting: the next save renews the lease
            log.warning("job record not saved", job=self.job, error=f"{type(exc).__name__}: {exc}")

    async def _publish(self, event: dict[str, Any]) -> None:
        body: dict[str, Any] = {
            "v": 1,
            "job": self.job,
            "kind": self.record.get("kind", "optimize"),  # a record written before the job model had no kind
            "seq": self._seq,
            "status": EVENT_STATUS.get(event["type"], "running"),
            "at": now_ms(),
            "elapsed_ms": round((time.monotonic() - self._started) * 1000),
            **self.counters(),
            **event,
        }
        if self.record.get("runs"):
            body["run"] = self.record["runs"]
        self._seq += 1
        try:
            await self.nc.publish(job_progress_subject(self.job), json.dumps(body).encode())
        except Exception as exc:  # progress is advisory; the record is the truth
            log.warning("job progress not published", job=self.job, error=f"{type(exc).__name__}: {exc}")

    async def finish(self, status: JobStatus, event: dict[str, Any], **fields: Any) -> None:
        """Ends the run (or settles a job that never started): the queued events go out, the record gets its final
        status and `fields` (result, error) and loses its lease, then the last event (done, failed, cancelled)."""
        _running_here.discard(self.job)
        if self._cancel_sub is not None:
            with contextlib.suppress(Exception):
                await self._cancel_sub.unsubscribe()
        if self._publisher is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publisher, 5)
        counts = self.counts() if self.counts is not None else None

        def settle(record: JobRecord) -> None:
            record["status"] = status
            record["finished_at"] = now_ms()
            cast(dict[str, Any], record).update(fields)  # result, error: JobRecord fields
            record.pop("lease_until", None)
            if counts is not None:
                record["progress"] = counts

        try:
            await self._write(settle)
        except Exception as exc:  # the bus is down: the reply still tells the caller; a redelivery runs it again
            log.warning("job record not settled", job=self.job, status=status, error=f"{type(exc).__name__}: {exc}")
        await self._publish(event)
