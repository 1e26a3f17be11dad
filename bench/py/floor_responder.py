"""Scenario 1, the floor: a nats-py core request-reply responder that answers every request with a reply of a
fixed size at once (no decoding, no DSPy). Prints `{"ready": true}` when subscribed; runs until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import nats
from nats.aio.msg import Msg

from common import emit
from dspex_worker.transport.connect import connect_options


async def serve(url: str, subject: str, reply_size: int) -> None:
    nc = await nats.connect(url, name="bench-floor-responder", **connect_options(os.environ.get("NATS_CREDS")))
    reply = b"r" * reply_size
    handled = 0

    async def on_request(msg: Msg) -> None:
        nonlocal handled
        handled += 1
        await nc.publish(msg.reply, reply)

    await nc.subscribe(subject, cb=on_request)
    await nc.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emit({"ready": True})
    await stop.wait()
    await nc.drain()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--subject", default="bench.floor")
    parser.add_argument("--reply-size", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(serve(args.nats_url, args.subject, args.reply_size))


if __name__ == "__main__":
    main()
