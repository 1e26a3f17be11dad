"""Job records in the KV bucket `dspex_jobs` (key = job id): JSON `JobRecord`s (job.schema.json#/definitions/record)
written with compare-and-set on the KV revision, so a worker renewing its lease and a client asking to cancel
(`cancel_requested: true`) never overwrite each other: a write that lost the race re-reads the record and applies
its change to what is there now."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ..buckets import JOBS, open_bucket
from ..protocol.generated.types import JobKind, JobRecord, JobStatus

# succeeded, failed and cancelled end a job; a client may queue a failed or cancelled one again (resume).
FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
RECORD_VERSION: Final = 1
_MAX_CONFLICTS = 32


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class StoredRecord:
    """A record as read from KV, with the revision a compare-and-set update must name."""

    value: JobRecord
    revision: int

    @property
    def id(self) -> str:
        return self.value["id"]


class JobStore:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await open_bucket(self._js, JOBS)
        return self._kv

    async def get(self, job: str) -> StoredRecord | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(job)
        except KeyNotFoundError:
            return None
        value = json.loads(entry.value or b"null")
        if not isinstance(value, dict):
            return None
        return StoredRecord(value=cast(JobRecord, value), revision=int(entry.revision or 0))

    async def create(self, record: JobRecord) -> StoredRecord | None:
        """Writes a new record; None when one exists already (someone else created it first)."""
        kv = await self._bucket()
        try:
            revision = await kv.create(record["id"], json.dumps(record).encode())
        except KeyWrongLastSequenceError:
            return None
        return StoredRecord(value=record, revision=int(revision))

    async def get_or_create(self, record: JobRecord) -> StoredRecord:
        """The job's record; `record` is written when there is none (a client that did not create it)."""
        for _ in range(_MAX_CONFLICTS):
            stored = await self.get(record["id"]) or await self.create(record)
            if stored is not None:
                return stored
        raise RuntimeError(f"job {record['id']}: the record keeps being created and deleted")

    async def replace(self, stored: StoredRecord, value: JobRecord) -> StoredRecord | None:
        """Writes `value` if the record is still at `stored.revision`; None when it moved (someone wrote first)."""
        kv = await self._bucket()
        value["updated_at"] = now_ms()
        try:
            revision = await kv.update(stored.id, json.dumps(value).encode(), last=stored.revision)
        except KeyWrongLastSequenceError:
            return None
        return StoredRecord(value=value, revision=int(revision))

    async def update(self, stored: StoredRecord, change: Callable[[JobRecord], None]) -> StoredRecord | None:
        """Applies `change` to the record and writes it if the record is still at `stored.revision`; else re-reads
        it and applies `change` to the fresh one. None when the record is gone (deleted)."""
        for _ in range(_MAX_CONFLICTS):
            value = copy.deepcopy(stored.value)
            change(value)
            written = await self.replace(stored, value)
            if written is not None:
                return written
            fresh = await self.get(stored.id)
            if fresh is None:
                return None
            stored = fresh
        raise RuntimeError(f"job {stored.id}: more than {_MAX_CONFLICTS} conflicting writes in a row")


def new_record(job: str, kind: JobKind, spec: dict[str, Any], *, status: JobStatus = "queued") -> JobRecord:
    now = now_ms()
    return {
        "v": RECORD_VERSION,
        "id": job,
        "kind": kind,
        "status": status,
        "spec": spec,
        "created_at": now,
        "updated_at": now,
        "runs": 0,
    }
