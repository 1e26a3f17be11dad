"""Unit tests of the worker's reply memory and reliability helpers (the fault tests in test/faults run them
against real processes)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from nats.errors import NoRespondersError

from dspex_worker.transport.acks import progress_interval
from dspex_worker.transport.dead_letter import DeadLetters, pool_of
from dspex_worker.transport.memory import ReplyMemory
from dspex_worker.transport.replies import Replies


class FakeMsg:
    def __init__(self, seq: int = 7, delivered: int = 1, headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}
        self.subject = "dspex.req.general.any"
        self.reply = "$JS.ACK.x"
        self.data = b""
        self.metadata = SimpleNamespace(
            sequence=SimpleNamespace(stream=seq), num_delivered=delivered, consumer="general"
        )
        self.acked = 0
        self.progress = 0

    async def ack(self) -> None:
        self.acked += 1

    async def in_progress(self) -> None:
        self.progress += 1


class FakeNc:
    def __init__(self, fail_requests: int = 0) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.requests: list[tuple[str, bytes]] = []
        self.fail_requests = fail_requests
        self.max_payload = 1024 * 1024

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        self.published.append((subject, payload))

    async def request(self, subject: str, payload: bytes = b"", timeout: float = 1.0) -> object:
        self.requests.append((subject, payload))
        if self.fail_requests > 0:
            self.fail_requests -= 1
            raise NoRespondersError
        return object()


def reliability(nc: FakeNc) -> Replies:
    return Replies(nc, DeadLetters(nc, "w-1"), ReplyMemory(), progress_interval=0.05)  # type: ignore[arg-type]


def test_progress_interval_is_a_third_of_the_shortest_ack_wait() -> None:
    assert progress_interval(2.0, [2.0, 4.0]) == pytest.approx(2 / 3)
    assert progress_interval(30.0, None) == 10.0
    assert progress_interval(None, None) == 10.0
    assert progress_interval(0.1, []) == 0.1


def test_pool_of_subject() -> None:
    assert pool_of("dspex.req.gpu.p3") == "gpu"
    assert pool_of("other") == "unknown"


async def test_memory_running_done_abandoned_and_bounded() -> None:
    memory = ReplyMemory(max_entries=2, max_bytes=10)

    async def never_replies() -> None:
        return None

    task = asyncio.ensure_future(never_replies())
    memory.start("1:a", task)  # type: ignore[arg-type]
    assert memory.get("1:a") is not None and memory.get("1:a").running  # type: ignore[union-attr]
    await task
    assert memory.get("1:a") is None, "the task ended without a reply: abandoned, runs again"
    memory.complete("2:b", b"12345")
    memory.complete("3:c", b"12345")
    memory.complete("4:d", b"1")
    assert memory.get("2:b") is None, "oldest evicted"
    assert memory.get("4:d") is not None and memory.get("4:d").reply == b"1"  # type: ignore[union-attr]
    running = memory.start("5:e", asyncio.current_task())  # type: ignore[arg-type]
    memory.complete("6:f", b"123456789")
    assert memory.get("5:e") is running, "a running request is never evicted"


async def test_expired_entries_go() -> None:
    memory = ReplyMemory(ttl_s=0.01)
    memory.complete("1:a", b"x")
    time.sleep(0.02)
    assert memory.get("1:a") is None


async def test_redelivery_of_an_answered_request_is_answered_from_memory() -> None:
    nc = FakeNc()
    r = reliability(nc)
    first = FakeMsg(seq=9)
    assert await r.answer_duplicate(first, "req-1", "_INBOX.x") is False  # new: runs
    assert await r.finish(first, "req-1", "_INBOX.x", {"v": 1, "id": "req-1", "ok": True}) is True
    assert first.acked == 1
    again = FakeMsg(seq=9, delivered=2)
    assert await r.answer_duplicate(again, "req-1", "_INBOX.x") is True
    assert again.acked == 1
    assert nc.published[0] == nc.published[1], "the same reply bytes, published again"
    assert r.memory.hits == 1 and r.redelivered == 1
    other = FakeMsg(seq=10)  # same id, another message: runs
    assert await r.answer_duplicate(other, "req-1", "_INBOX.x") is False


async def test_redelivery_while_running_waits_for_the_first() -> None:
    nc = FakeNc()
    r = reliability(nc)
    first, second = FakeMsg(seq=3), FakeMsg(seq=3, delivered=2)
    assert await r.answer_duplicate(first, "req-2", "_INBOX.y") is False
    waiter = asyncio.ensure_future(r.answer_duplicate(second, "req-2", "_INBOX.y"))
    await asyncio.sleep(0.12)
    assert not waiter.done() and second.progress >= 1, "waits, keeping its delivery alive"
    await r.finish(first, "req-2", "_INBOX.y", {"v": 1, "id": "req-2", "ok": True})
    assert await waiter is True
    assert second.acked == 1 and r.memory.joined == 1
    assert len(nc.published) == 2


async def test_unencodable_and_oversized_replies_become_error_replies() -> None:
    r = reliability(FakeNc())
    huge = msgpack.unpackb(r.encode_reply({"v": 1, "id": "a", "ok": True, "outputs": {"n": 10**30}}, 1 << 20))
    assert huge["error"]["type"] == "WorkerError" and huge["error"]["field"] == "outputs"
    big = msgpack.unpackb(r.encode_reply({"v": 1, "id": "a", "ok": True, "outputs": {"s": "x" * 9000}}, 8192))
    assert big["error"]["type"] == "PayloadTooLarge" and big["error"]["field"] == "outputs"


async def test_confirmed_reply_is_sent_again_until_confirmed() -> None:
    nc = FakeNc(fail_requests=2)
    r = reliability(nc)
    msg = FakeMsg(headers={"Dspex-Reply-Ack": "1", "Dspex-Deadline": str(int((time.time() + 10) * 1000))})
    assert await r.deliver(msg, "_INBOX.z", b"reply") is True
    assert len(nc.requests) == 3 and msg.progress == 2
    assert nc.published == []


async def test_confirmed_reply_gives_up_at_the_deadline() -> None:
    nc = FakeNc(fail_requests=1000)
    r = reliability(nc)
    msg = FakeMsg(headers={"Dspex-Reply-Ack": "1", "Dspex-Deadline": str(int((time.time() + 0.3) * 1000))})
    assert await r.deliver(msg, "_INBOX.z", b"reply") is True
    assert r.unconfirmed == 1


async def test_plain_reply_without_the_header() -> None:
    nc = FakeNc()
    r = reliability(nc)
    assert await r.deliver(FakeMsg(), "_INBOX.p", b"reply") is True
    assert nc.published == [("_INBOX.p", b"reply")] and nc.requests == []
