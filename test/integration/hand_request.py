"""Publishes one request built by hand from schemas/README.md with plain nats-py, prints the reply as JSON.

This is what a client in any language does: no DSPex code is imported.
The LM is the workers' default profile (its operator's choice); the request names its model only.
usage: hand_request.py <nats_url>
"""

import asyncio
import json
import os
import sys
import time
import uuid

import msgpack
import nats
from dspex_worker.transport.connect import connect_options


async def main(nats_url: str) -> None:
    # the client role's credentials (NATS_CREDS): its inbox prefix is the one workers may reply to
    nc = await nats.connect(nats_url, **connect_options(os.environ.get("NATS_CREDS")))
    js = nc.jetstream()
    request_id = str(uuid.uuid4())
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    body = {
        "v": 1,
        "id": request_id,
        "op": "predict",
        "signature": {
            "instructions": "Answer the arithmetic question.",
            "inputs": [{"name": "question", "type": {"kind": "str"}}],
            "outputs": [
                {"name": "answer", "type": {"kind": "int"}},
                {"name": "tags", "type": {"kind": "list", "items": {"kind": "str"}}},
            ],
        },
        "inputs": {"question": "What is 20+22?"},
        "lm": {"model": "openai/test-model"},
    }
    headers = {
        "Dspex-Reply-To": inbox,
        "Nats-Msg-Id": request_id,
        "Dspex-Deadline": str(int((time.time() + 30) * 1000)),
    }
    ack = await js.publish("dspex.req.general.any", msgpack.packb(body, use_bin_type=True), headers=headers)
    msg = await sub.next_msg(timeout=30)
    reply = msgpack.unpackb(msg.data, raw=False)
    print(json.dumps({"request_id": request_id, "stream": ack.stream, "reply": reply}))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
