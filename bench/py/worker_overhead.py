"""What the worker itself adds per request, without the network: `Worker._handle` driven in-process with
JetStream-shaped messages and a NATS client stand-in whose publish/request return at once.

  * stub ops: a request costs only the worker's own code (decode, dedup, progress timer, deadline,
    telemetry hook, reply encoding, confirmed reply, ack) — DSPex's per-request overhead in Python;
    `pull_loop_c16` also goes through the pull loop (credit, pull requests, task per message);
  * echo: the real op registry on `dspex/echo` (signature cache, validation, dspy.Predict.acall);
  * ops alone: `registry.run` on the same request, to subtract.

Each number is CPU time (process_time: all threads, not time spent waiting for a core) per request, the best
of several repeats, so a busy machine disturbs it less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from common import emit


class FakeClient:
    """The parts of nats-py's Client the worker's request path uses; everything returns at once."""

    max_payload = 1024 * 1024
    is_connected = True

    def __init__(self) -> None:
        self.published = 0

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
        self.published += 1

    async def request(self, subject: str, payload: bytes = b"", timeout: float = 1.0, headers: Any = None) -> Any:
        self.published += 1
        return None

    def new_inbox(self) -> str:
        return "_INBOX.bench"

    async def subscribe(self, subject: str, cb: Any = None) -> Any:
        class Sub:
            async def unsubscribe(self) -> None:
                return None

        return Sub()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import msgpack
    from nats.aio.msg import Msg

    from dspex_worker.config import WorkerConfig
    from dspex_worker.execution import Execution, Request
    from dspex_worker.ops import registry
    from dspex_worker.ops.context import OpContext
    from dspex_worker.transport.dead_letter import DeadLetters
    from dspex_worker.transport.envelope import decode_request
    from dspex_worker.transport.replies import Replies
    from dspex_worker.worker import Worker

    sig = json.loads(args.wire)
    inputs = json.loads(args.inputs)
    client = FakeClient()

    async def stub_ops(ops: OpContext, request: Request) -> Execution:
        return Execution(
            outputs={"sentiment": "positive", "confidence": 0.5},
            lm="stub",
            usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        )

    seq = 0

    def message() -> Msg:
        nonlocal seq
        seq += 1
        rid = f"req-{seq}"
        body = msgpack.packb(
            {
                "v": 1,
                "id": rid,
                "op": "predict",
                "signature": sig,
                "inputs": inputs,
                "timeout_ms": 60_000,
                "lm": {"model": "dspex/echo"},
            },
            use_bin_type=True,
        )
        now_ns = time.time_ns()
        headers = {
            "Dspex-Reply-To": f"_INBOX.bench.{rid}",
            "Nats-Msg-Id": rid,
            "Dspex-Version": "1",
            "Dspex-Deadline": str(now_ns // 1_000_000 + 60_000),
            "Dspex-Reply-Ack": "1",
        }
        reply = f"$JS.ACK.DSPEX_REQ.general.1.{seq}.{seq}.{now_ns}.0"
        return Msg(_client=client, subject="dspex.req.general.any", reply=reply, data=body, headers=headers)  # type: ignore[arg-type]

    config = WorkerConfig(worker_id="bench-overhead", allow_test_models=True)

    def worker_with(run_op: Any) -> Worker:
        w = Worker(config, run_op=run_op)
        w.nc = client  # type: ignore[assignment]
        w.replies = Replies(client, DeadLetters(client, config.worker_id))  # type: ignore[arg-type]
        return w

    async def per_request_us(handle: Any, n: int, concurrency: int) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            msgs = [message() for _ in range(n)]
            started = time.process_time()
            if concurrency == 1:
                for m in msgs:
                    await handle(m)
            else:
                it = iter(msgs)

                async def user(it: Any = it) -> None:
                    for m in it:
                        await handle(m)

                await asyncio.gather(*(user() for _ in range(concurrency)))
            best = min(best, (time.process_time() - started) / n * 1e6)
        return round(best, 1)

    async def through_pull_loop(n: int, max_inflight: int) -> float:
        """Messages handed to the worker's pull loop (`Puller`) as fast as its pull credit allows."""
        from dspex_worker.transport.pull import Puller

        w = worker_with(stub_ops)
        puller = Puller(client, "DSPEX_REQ", w._handle, max_inflight)  # type: ignore[arg-type]
        await puller.add("general")
        puller.start()
        source = puller._sources["general"]
        best = float("inf")
        for _ in range(args.repeats):
            msgs = [message() for _ in range(n)]
            started = time.process_time()
            for m in msgs:
                while source.outstanding <= 0:
                    await asyncio.sleep(0)  # the server would deliver against the next pull
                await puller._on_message(source, m)
            while puller.inflight:
                await asyncio.sleep(0)
            best = min(best, (time.process_time() - started) / n * 1e6)
        await puller.stop(1.0)
        return round(best, 1)

    out: dict[str, Any] = {}
    out["pull_loop_c16_us"] = await through_pull_loop(args.n, 16)
    stub = worker_with(stub_ops)
    await per_request_us(stub._handle, 200, 1)  # warm-up
    out["stub_c1_us"] = await per_request_us(stub._handle, args.n, 1)
    out["stub_c16_us"] = await per_request_us(stub._handle, args.n, 16)
    echo = worker_with(registry.run)
    await per_request_us(echo._handle, 100, 1)
    out["echo_c1_us"] = await per_request_us(echo._handle, args.n // 4, 1)

    async def executor_only(m: Msg) -> None:
        await registry.run(echo.ops, decode_request(m.data))

    out["executor_only_c1_us"] = await per_request_us(executor_only, args.n // 4, 1)
    out["worker_overhead_us"] = round(out["echo_c1_us"] - out["executor_only_c1_us"], 1)
    out["publishes_per_request"] = round(client.published / max(1, seq), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wire", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
