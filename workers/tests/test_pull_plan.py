"""How the pull loop splits free slots between the pool's consumer and its partition consumers."""

from __future__ import annotations

from typing import Any

from dspex_worker.transport.pull import Puller, Source


async def _noop(_msg: Any) -> None:
    return None


def puller(max_inflight: int) -> Puller:
    return Puller(nc=None, stream="DSPEX_REQ", handler=_noop, max_inflight=max_inflight)  # type: ignore[arg-type]


def sources(partitions: int) -> list[Source]:
    return [Source(consumer="general"), *(Source(consumer=f"general-p{i}", group="dspex") for i in range(partitions))]


def test_many_partitions_cannot_starve_the_pool_consumer() -> None:
    srcs = sources(16)
    plan = dict((s.consumer, n) for s, n in puller(16)._plan(srcs, free=16))
    assert plan["general"] == 16, "partition pulls do not take the pool consumer's slots"
    assert all(plan[f"general-p{i}"] == 1 for i in range(16))


def test_every_idle_partition_keeps_one_pull_even_with_no_free_slot() -> None:
    srcs = sources(4)
    plan = puller(16)._plan(srcs, free=0)
    assert sorted(s.consumer for s, _ in plan) == [f"general-p{i}" for i in range(4)]
    assert all(n == 1 for _, n in plan)


def test_a_partition_whose_pull_expired_gets_its_pull_back() -> None:
    srcs = sources(8)
    for s in srcs[2:]:
        s.outstanding = 1  # 7 partitions hold a pull; general-p0's expired; the pool consumer holds 8
    srcs[0].outstanding = 8
    assert puller(16)._plan([srcs[1]], free=0) == [(srcs[1], 1)]


def test_without_partitions_everything_goes_to_the_pool_consumer() -> None:
    srcs = sources(0)
    assert puller(16)._plan(srcs, free=16) == [(srcs[0], 16)]


def test_concurrency_one_gives_the_pool_consumer_its_slot() -> None:
    srcs = sources(4)
    plan = dict((s.consumer, n) for s, n in puller(1)._plan(srcs, free=1))
    assert plan["general"] == 1
