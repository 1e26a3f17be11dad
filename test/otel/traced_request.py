"""Publishes one request with plain nats-py and its own W3C trace context, prints the reply as JSON.

What any NATS client does to continue its trace in DSPex: put `traceparent` (and optionally `tracestate`) in the
message headers next to the DSPex ones. No DSPex or OpenTelemetry code is imported.
The LM is the workers' default profile; the request names its model only.
usage: traced_request.py <nats_url> <traceparent> [<tracestate>]
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


async def main(nats_url: str, traceparent: str, tracestate: str | None) -> None:
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
            "inputs": [{"name": "question", "type": {"kind": "str"}}],
            "outputs": [{"name": "answer", "type": {"kind": "int"}}],
        },
        "inputs": {"question": "What is 20+22?"},
        "lm": {"model": "openai/test-model"},
    }
    headers = {
        "Dspex-Reply-To": inbox,
        "Nats-Msg-Id": request_id,
        "Dspex-Deadline": str(int((time.time() + 30) * 1000)),
        "traceparent": traceparent,
    }
    if tracestate:
        headers["tracestate"] = tracestate
    await js.publish("dspex.req.general.any", msgpack.packb(body, use_bin_type=True), headers=headers)
    msg = await sub.next_msg(timeout=30)
    print(json.dumps({"request_id": request_id, "reply": msgpack.unpackb(msg.data, raw=False)}))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
