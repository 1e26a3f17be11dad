"""Optimizer jobs on the one job model (job.schema.json), against a real nats-server and real DSPy optimizers on the
in-process `dspex/echo` LM: the record in KV `dspex_jobs` through a run, progress events on
`dspex.jobs.progress.<job>`, answers from the record, cancellation, leases. Every record and event the worker
writes is checked with the generated validators."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats_bus import LogWatch, call, connect, provision, running_worker

from dspex_worker.jobs.store import JobStore, new_record
from dspex_worker.protocol import check_job_progress, check_job_record
from dspex_worker.protocol.generated import bus
from dspex_worker.protocol.generated.types import JobRecord
from dspex_worker.worker import Worker

SIGNATURE = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}
TRAINSET = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(4)]
PROGRAMS = bus.BUCKETS["programs"]["name"]
JOBS = bus.BUCKETS["jobs"]["name"]


def program(version: int) -> dict[str, Any]:
    return {"id": "qa", "version": version}


def client_record(job: str, version: int) -> JobRecord:
    """A record as a client creates it before publishing the compile request."""
    return new_record(job, "optimize", {"optimizer": "LabeledFewShot", "program": program(version)})


class Bus:
    def __init__(self, nc: Client, worker: Worker) -> None:
        self.nc = nc
        self.worker = worker
        self.jobs = JobStore(nc.jetstream())

    async def store_program(self, pid: str = "qa") -> int:
        kv = await self.nc.jetstream().key_value(PROGRAMS)
        definition = {"id": pid, "module": "predict", "signature": SIGNATURE}
        return int(await kv.put(pid, json.dumps(definition).encode()))

    async def latest_version(self, pid: str = "qa") -> int:
        kv = await self.nc.jetstream().key_value(PROGRAMS)
        return int((await kv.get(pid)).revision or 0)

    async def record(self, job: str) -> JobRecord:
        stored = await self.jobs.get(job)
        assert stored is not None, f"no record of {job}"
        return check_job_record(stored.value)  # type: ignore[return-value]

    def compile(self, job: str, version: int, lm: str = "dspex/echo", **compile: Any) -> dict[str, Any]:
        spec = {"job": job, "optimizer": "LabeledFewShot", "options": {"k": 2}, "program": program(version)}
        spec.update(trainset=TRAINSET, metric="answer_exact_match", **compile)
        return {"op": "compile", "signature": SIGNATURE, "inputs": {}, "lm": {"model": lm}, "compile": spec}

    async def progress(self, job: str) -> Events:
        events = Events()
        await self.nc.subscribe(bus.job_progress_subject(job), cb=events.add)
        return events


class Events:
    """Progress events of a job as they arrive, each checked against the schema."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._waiters: list[tuple[Any, asyncio.Future[dict[str, Any]]]] = []

    async def add(self, msg: Any) -> None:
        event = check_job_progress(json.loads(msg.data))
        self.items.append(event)
        for match, future in list(self._waiters):
            if match(event) and not future.done():
                future.set_result(event)

    async def first(self, **wanted: Any) -> dict[str, Any]:
        match = lambda e: all(e.get(k) == v for k, v in wanted.items())  # noqa: E731
        for event in self.items:
            if match(event):
                return event
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((match, future))
        return await asyncio.wait_for(future, 60)

    def types(self) -> list[str]:
        return [e["type"] for e in self.items]


@pytest.fixture
async def optimizer_bus(nats_url: str) -> AsyncIterator[Bus]:
    nc = await connect(nats_url)
    await provision(nc, pools=("optimizer",))
    async with running_worker(nats_url, "optimizer", allow_test_models=True) as worker:
        yield Bus(nc, worker)
    await nc.close()


async def test_a_job_without_a_record_gets_one_and_reports_its_run(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    events = await b.progress("job-1")
    reply = await call(b.nc, "optimizer", b.compile("job-1", version))
    assert reply["ok"] is True, reply
    await events.first(type="done")

    record = await b.record("job-1")
    assert reply["extra"]["job"]["id"] == "job-1" and reply["extra"]["job"]["status"] == "succeeded"
    assert record["kind"] == "optimize" and record["status"] == "succeeded" and record["runs"] == 1
    assert record["owner"] == "w1" and "lease_until" not in record, "the lease is released when the run ends"
    assert record["spec"] == {
        "optimizer": "LabeledFewShot",
        "options": {"k": 2},
        "program": {"id": "qa", "version": version},
        "metric": "answer_exact_match",
        "evaluate": True,
        "trainset_size": 4,
        "valset_size": None,
    }
    assert record["result"] == {
        "program": {"id": "qa", "version": await b.latest_version()},
        "parent_version": version,
        "score": 0.0,  # dspex/echo answers "answer: <question>": never the gold answer
        "baseline_score": 0.0,
    }
    assert record["progress"] == {"done": 2, "total": None, "score": None, "stage": "storing"}
    assert record["started_at"] <= record["finished_at"] and record["created_at"] <= record["started_at"]

    assert events.types()[0] == "started" and events.types()[-1] == "done"
    assert [e["seq"] for e in events.items] == list(range(len(events.items))), "in order, none lost"
    assert {e["run"] for e in events.items} == {1} and {e["kind"] for e in events.items} == {"optimize"}
    stages = [e["stage"] for e in events.items if e["type"] == "stage"]
    assert stages == ["baseline", "compiling", "final", "storing"]
    assert [e["last_score"] for e in events.items if e["type"] == "trial"] == [0.0, 0.0]
    done = events.items[-1]
    assert done["status"] == "succeeded" and done["program"] == record["result"]["program"]
    assert done["baseline_score"] == 0.0 and done["lm_calls"] == 8 and done["trials"] == 2


async def test_a_finished_job_is_answered_from_its_record(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    first = await call(b.nc, "optimizer", b.compile("job-2", version))
    stored_version = await b.latest_version()
    # a redelivery after the ack was lost, or a client resending: a new request, the same job
    again = await call(b.nc, "optimizer", b.compile("job-2", version))
    assert again["ok"] is True and again["extra"]["job"] == first["extra"]["job"]
    assert again["usage"]["total_tokens"] == 0, "not run again"
    assert await b.latest_version() == stored_version
    assert (await b.record("job-2"))["runs"] == 1


async def test_a_client_created_record_is_run_and_kept(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    created = client_record("job-3", version)
    created["name"] = "from a client"
    await b.jobs.create(check_job_record(created))  # type: ignore[arg-type]
    reply = await call(b.nc, "optimizer", b.compile("job-3", version))
    assert reply["ok"] is True
    record = await b.record("job-3")
    assert record["status"] == "succeeded" and record["runs"] == 1
    assert record["name"] == "from a client" and record["created_at"] == created["created_at"]
    assert record["spec"] == created["spec"], "the client's spec stays"


async def test_a_job_cancelled_before_it_starts_does_not_run(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    created = client_record("job-4", version)
    created["cancel_requested"] = True
    await b.jobs.create(created)
    events = await b.progress("job-4")
    reply = await call(b.nc, "optimizer", b.compile("job-4", version))
    assert reply["ok"] is False and reply["error"]["type"] == "Cancelled"
    assert (await b.record("job-4"))["status"] == "cancelled"
    assert (await events.first(type="cancelled"))["status"] == "cancelled"
    assert await b.latest_version() == version, "nothing stored"


@pytest.mark.parametrize("how", ["subject", "record"])
async def test_a_running_job_is_cancelled(optimizer_bus: Bus, how: str) -> None:
    b = optimizer_bus
    version = await b.store_program()
    events = await b.progress(f"job-5-{how}")
    # 4 baseline LM calls of 1.5 s: long enough that the cancel arrives while the baseline runs
    body = b.compile(f"job-5-{how}", version, lm="dspex/echo?latency_ms=1500")
    reply_task = asyncio.create_task(call(b.nc, "optimizer", body))
    await events.first(type="stage", stage="baseline")
    started = time.monotonic()
    if how == "subject":
        await b.nc.publish(bus.job_cancel_subject(f"job-5-{how}"))
    else:  # the durable request, as a client writes it: compare-and-set on the record
        stored = await b.jobs.get(f"job-5-{how}")
        assert stored is not None
        await b.jobs.update(stored, lambda record: record.update(cancel_requested=True))
    reply = await reply_task
    assert reply["ok"] is False and reply["error"]["type"] == "Cancelled", reply
    # the whole job would take 12 s (8 LM calls of 1.5 s): it stops at its next LM call after the cancel is seen
    assert time.monotonic() - started < 9, "stopped, not run to the end"
    record = await b.record(f"job-5-{how}")
    assert record["status"] == "cancelled" and record["runs"] == 1 and "result" not in record
    assert events.types()[-1] == "cancelled"
    assert await b.latest_version() == version


async def test_a_job_rejected_before_it_starts_is_recorded_as_failed(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    events = await b.progress("job-6")
    body = b.compile("job-6", version, optimizer="SIMBA", options={"bsize": 10})
    reply = await call(b.nc, "optimizer", body)
    assert reply["ok"] is False and reply["error"]["field"] == "compile.options.bsize"
    record = await b.record("job-6")
    assert record["status"] == "failed" and record["runs"] == 0
    assert record["error"]["field"] == "compile.options.bsize" and record["spec"]["optimizer"] == "SIMBA"
    failed = await events.first(type="failed")
    assert failed["error"] == record["error"] and "run" not in failed, "it never ran"


async def test_another_workers_live_lease_is_waited_for(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    running = client_record("job-7", version)
    running.update(status="running", owner="w0", lease_until=int(time.time() * 1000) + 60_000, runs=1)
    stored = await b.jobs.create(running)
    assert stored is not None
    with LogWatch("job runs on another worker") as watch:
        reply_task = asyncio.create_task(call(b.nc, "optimizer", b.compile("job-7", version)))
        await asyncio.wait_for(watch.seen, 30)
    result = {"program": program(version + 1), "parent_version": version, "score": 1.0, "baseline_score": 0.0}

    def finished(record: JobRecord) -> None:
        record.update(status="succeeded", result=result)

    await b.jobs.update(stored, finished)  # w0 finishes its run
    reply = await reply_task
    assert reply["ok"] is True and reply["extra"]["job"]["result"] == result
    assert (await b.record("job-7"))["runs"] == 1, "not run a second time"


async def test_a_lapsed_lease_is_taken_over(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    abandoned = client_record("job-8", version)
    abandoned.update(status="running", owner="w0", lease_until=int(time.time() * 1000) - 1, runs=1)
    await b.jobs.create(abandoned)
    events = await b.progress("job-8")
    reply = await call(b.nc, "optimizer", b.compile("job-8", version))
    assert reply["ok"] is True
    record = await b.record("job-8")
    assert record["status"] == "succeeded" and record["owner"] == "w1" and record["runs"] == 2
    assert {e["run"] for e in events.items if "run" in e} == {2}


async def test_two_requests_for_one_job_run_it_once(optimizer_bus: Bus) -> None:
    b = optimizer_bus
    version = await b.store_program()
    body = b.compile("job-9", version, lm="dspex/echo?latency_ms=50")
    first, second = await asyncio.gather(call(b.nc, "optimizer", dict(body)), call(b.nc, "optimizer", dict(body)))
    assert first["ok"] is True and second["ok"] is True
    assert first["extra"]["job"]["result"] == second["extra"]["job"]["result"]
    assert (await b.record("job-9"))["runs"] == 1
    assert await b.latest_version() == version + 1, "one program stored"
