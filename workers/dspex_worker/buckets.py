"""KV buckets are provisioned by `dspex bus apply` (schemas/bus.json); the worker only opens them. A missing
bucket is a BusError naming it, never a bucket created here with a configuration of the worker's choosing."""

from __future__ import annotations

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from .protocol.errors import BusError
from .protocol.generated.bus import BUCKETS

MEMBERS = BUCKETS["members"]["name"]
PROGRAMS = BUCKETS["programs"]["name"]
JOBS = BUCKETS["jobs"]["name"]
LM_CACHE = BUCKETS["lmCache"]["name"]

APPLY_HINT = "`dspex bus apply` provisions the bus"


async def open_bucket(js: JetStreamContext, name: str) -> KeyValue:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:  # at run time: the bucket was deleted after the worker verified it
        missing = f"KV bucket {name}"
        raise BusError(f"{missing} does not exist; {APPLY_HINT}", details={"missing": [missing]}) from None
