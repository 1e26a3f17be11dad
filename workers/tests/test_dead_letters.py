"""Dead-letter copies made by the worker keep no inputs by default (issue 15, item 4): the body becomes the
redacted summary of schemas/dlq.schema.json, marked `Dspex-Dlq-Body: redacted`; DSPEX_DLQ_KEEP_INPUTS=1 keeps the
body. Real nats-server, a worker in-process, requests published as any client does."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats_bus import connect, provision, running_worker

from dspex_worker.config import parse_config
from dspex_worker.protocol import check_dlq_redacted_body, decode, encode
from dspex_worker.protocol.generated import bus
from dspex_worker.transport.redaction import msgpack_type, redacted_body

VECTORS = Path(__file__).resolve().parents[2] / "schemas" / "vectors"
DLQ = bus.STREAMS["deadLetters"]
SECRET = "my card number is 4111 1111 1111 1111"


def test_the_summary_of_the_golden_request_is_the_golden_summary() -> None:
    """The DLQ service (TypeScript) must produce this same summary of these same bytes."""
    data = (VECTORS / "request-cot-full.msgpack").read_bytes()
    expected = json.loads((VECTORS / "dlq-redacted-cot-full.json").read_text())
    summary = redacted_body(data, bus.request_subject("general", "any"))
    assert summary == expected and list(summary) == list(expected), "same fields, same order"
    assert encode(summary) == (VECTORS / "dlq-redacted-cot-full.msgpack").read_bytes()
    check_dlq_redacted_body(summary)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "nil"),
        (True, "bool"),
        (5, "int"),
        (-1, "int"),
        (2**40, "int"),
        (0.5, "float"),
        ("s", "str"),
        ("x" * 300, "str"),
        (b"b", "bin"),
        ([1], "array"),
        ({"k": 1}, "map"),
        (msgpack.ExtType(1, b"x"), "ext"),
    ],
)
def test_msgpack_type_families(value: Any, name: str) -> None:
    assert msgpack_type(msgpack.packb(value, use_bin_type=True)[0]) == name


def test_what_does_not_decode_keeps_its_size_and_pool_only() -> None:
    subject = bus.request_subject("gpu", "p3")
    assert redacted_body(b"\xc1\x00\xff", subject) == {"redacted": True, "bytes": 3, "pool": "gpu"}
    assert redacted_body(encode([1, 2]), "elsewhere") == {"redacted": True, "bytes": 3}
    no_inputs = redacted_body(encode({"id": 7, "op": "predict", "inputs": "x"}), subject)
    assert no_inputs == {"redacted": True, "bytes": no_inputs["bytes"], "op": "predict", "pool": "gpu"}


def test_the_flag_and_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSPEX_DLQ_KEEP_INPUTS", raising=False)
    assert parse_config([]).dlq_keep_inputs is False
    assert parse_config(["--dlq-keep-inputs"]).dlq_keep_inputs is True
    monkeypatch.setenv("DSPEX_DLQ_KEEP_INPUTS", "1")
    assert parse_config([]).dlq_keep_inputs is True


async def dead_letter_of(nc: Client, body: bytes) -> Any:
    """Publishes a request the worker cannot read (it replies, then terminates it) and returns its dead-letter
    copy, as it arrives on the dead-letter subject (the stream stores the same message)."""
    copies = await nc.subscribe(bus.dead_letter_subject("general"), max_msgs=1)
    request_id = str(uuid.uuid4())
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    headers = {
        bus.HEADER_REPLY_TO: inbox,
        bus.HEADER_MSG_ID: request_id,
        bus.HEADER_DEADLINE: str(int((time.time() + 30) * 1000)),
    }
    ack = await nc.jetstream().publish(bus.request_subject("general", "any"), body, headers=headers)
    reply = decode((await sub.next_msg(timeout=30)).data)
    assert reply["ok"] is False and reply["error"]["type"] == "VersionError", reply
    copy = await copies.next_msg(timeout=30)
    assert (copy.headers or {})[bus.HEADER_DLQ_SEQ] == str(ack.seq)
    stored = await nc.jetstream().get_last_msg(DLQ["name"], bus.dead_letter_subject("general"))
    assert stored.data == copy.data, "the stream keeps what was published"
    return copy


def version_2_request() -> bytes:
    return encode(
        {
            "v": 2,
            "id": str(uuid.uuid4()),
            "op": "predict",
            "signature": {"inputs": [], "outputs": []},
            "inputs": {"question": SECRET, "n": 3},
        }
    )


@pytest.mark.parametrize("keep_inputs", [False, True])
async def test_a_terminated_request_is_dead_lettered_redacted_unless_configured(
    nats_url: str, keep_inputs: bool
) -> None:
    nc = await connect(nats_url)
    await provision(nc, pools=("general",))
    await nc.jetstream().add_stream(StreamConfig(name=DLQ["name"], subjects=DLQ["subjects"]))
    body = version_2_request()
    async with running_worker(nats_url, "general", dlq_keep_inputs=keep_inputs):
        copy = await dead_letter_of(nc, body)
    headers = copy.headers or {}
    assert headers[bus.HEADER_DLQ_KIND] == "terminated"
    if keep_inputs:
        assert copy.data == body and bus.HEADER_DLQ_BODY not in headers
    else:
        assert headers[bus.HEADER_DLQ_BODY] == "redacted"
        assert SECRET.encode() not in copy.data
        summary = check_dlq_redacted_body(decode(copy.data))
        assert summary["bytes"] == len(body) and summary["op"] == "predict" and summary["pool"] == "general"
        assert summary["fields"] == {
            "question": {"type": "str", "bytes": len(encode(SECRET))},
            "n": {"type": "int", "bytes": 1},
        }
    await nc.close()
