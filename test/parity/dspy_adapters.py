"""What real DSPy (the pinned 3.4.1 in .venv) makes of the corpus of test/parity/adapters-parity.test.ts.

Reads one JSON document on stdin, writes one JSON document on stdout:

- ``format``: ``adapter.format(signature, demos, inputs)`` -> the messages, or the exception (type, message).
  The signature is what the worker builds from the wire form (``build_signature``), extended as
  ``dspy.ChainOfThought`` extends it for module ``chain_of_thought``; with ``validate`` the inputs first go
  through the worker's ``validate_inputs``, as on the real Python path.
- ``parse``: ``adapter.parse(signature, completion)`` -> the outputs, or the exception with DSPy's message, the
  adapter name, the LM response it reports, the parsed keys, and the embedded (pydantic) error.
- ``calls``: a real ``dspy.Predict``/``dspy.ChainOfThought`` call with ``acall`` (the worker's path) inside
  ``dspy.context(lm=dspy.LM(model, api_base=...), adapter=...)``, against a local OpenAI-compatible HTTP endpoint
  that answers from the case's script and records every request body: the requests (messages and
  ``response_format`` as sent on the wire), then the prediction or the exception. This is where ChatAdapter's
  fallback to JSONAdapter (a second LM call) shows.
- ``capabilities``: per model name, ``"response_format" in lm.supported_params`` and
  ``lm.supports_response_schema`` (DSPy's model catalog decides what JSONAdapter asks for).

Values: ``{"$float": "<repr>"}`` is a Python float (``3.0``, ``nan``, ``inf``) both ways.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# DSPy fetches LiteLLM's model map on first use unless told to use its bundled snapshot: keep the oracle
# offline and deterministic.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "true"

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workers"))

import dspy  # noqa: E402
from dspex_worker.signatures import build_signature, validate_inputs  # noqa: E402
from dspy.utils.exceptions import AdapterParseError  # noqa: E402

logging.getLogger("dspy").setLevel(logging.CRITICAL)
warnings.simplefilter("ignore")


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return float(value["$float"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {key_text(k): encode(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return {"$repr": repr(value)}


def key_text(key: Any) -> str:
    """A dict key as the TypeScript side holds it: JSON's spelling of bools, JS's of numbers (2.0 is "2")."""
    if isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, float) and key.is_integer() and abs(key) < 1e21:
        return str(int(key))
    return str(key)


def adapter_of(name: str) -> dspy.ChatAdapter:
    return dspy.JSONAdapter() if name == "json" else dspy.ChatAdapter()


def signature_of(item: dict[str, Any]) -> Any:
    sig = build_signature(item["signature"])
    if item.get("module") == "chain_of_thought":
        sig = dspy.ChainOfThought(sig).predict.signature
    return sig


def error_of(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error_type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, AdapterParseError):
        inner = exc.__cause__ or exc.__context__
        out.update(
            adapter_name=exc.adapter_name,
            lm_response=exc.lm_response,
            parsed_keys=None if exc.parsed_result is None else list(exc.parsed_result.keys()),
            inner_type=None if inner is None else type(inner).__name__,
            inner_message=None if inner is None else str(inner),
        )
    return out


def run_format(item: dict[str, Any]) -> dict[str, Any]:
    try:
        inputs = decode(item["inputs"])
        if item.get("validate"):
            inputs = validate_inputs(item["signature"], inputs)
        messages = adapter_of(item["adapter"]).format(signature_of(item), decode(item["demos"]), inputs)
        return {"ok": True, "messages": messages}
    except Exception as exc:  # noqa: BLE001 - any failure is a result to compare
        return error_of(exc)


def run_parse(item: dict[str, Any]) -> dict[str, Any]:
    try:
        outputs = adapter_of(item["adapter"]).parse(signature_of(item), item["completion"])
        return {"ok": True, "outputs": encode(outputs)}
    except Exception as exc:  # noqa: BLE001
        return error_of(exc)


class Endpoint:
    """A local OpenAI-compatible chat-completions endpoint answering from a script, recording the requests."""

    def __init__(self) -> None:
        self.script: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.bodies.append(body)
                if not endpoint.script:
                    self.reply(
                        500, {"error": {"message": "the test script has no more answers", "type": "server_error"}}
                    )
                    return
                text = endpoint.script.pop(0)
                self.reply(
                    200,
                    {
                        "id": f"chatcmpl-{len(endpoint.bodies)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}/v1"


async def run_calls(items: list[dict[str, Any]], endpoint: Endpoint) -> list[dict[str, Any]]:
    lms: dict[str, dspy.LM] = {}
    out = []
    for item in items:
        model = item["model"]
        if model not in lms:
            lms[model] = dspy.LM(model, api_base=endpoint.base, api_key="unused", cache=False, num_retries=0)
        endpoint.script = list(item["completions"])
        endpoint.bodies = []
        try:
            sig = build_signature(item["signature"])
            module = dspy.ChainOfThought(sig) if item.get("module") == "chain_of_thought" else dspy.Predict(sig)
            predictor = module.predict if isinstance(module, dspy.ChainOfThought) else module
            predictor.demos = [dspy.Example(**d) for d in decode(item["demos"])]
            inputs = validate_inputs(item["signature"], decode(item["inputs"]))
            with dspy.context(lm=lms[model], adapter=adapter_of(item["adapter"])):
                prediction = await module.acall(**inputs)
            result: dict[str, Any] = {"ok": True, "outputs": encode(prediction.toDict())}
        except Exception as exc:  # noqa: BLE001
            result = error_of(exc)
        result["requests"] = [
            {"messages": b.get("messages"), "response_format": b.get("response_format")} for b in endpoint.bodies
        ]
        result["unused_answers"] = len(endpoint.script)
        out.append(result)
    return out


def main() -> None:
    request = json.load(sys.stdin)
    out: dict[str, Any] = {
        "format": [run_format(item) for item in request.get("format", [])],
        "parse": [run_parse(item) for item in request.get("parse", [])],
        "capabilities": {},
        "calls": [],
    }
    for model in request.get("capabilities", []):
        lm = dspy.LM(model, api_base="http://127.0.0.1:9/v1", api_key="unused")
        out["capabilities"][model] = {
            "responseFormat": "response_format" in lm.supported_params,
            "responseSchema": bool(lm.supports_response_schema),
        }
    if request.get("calls"):
        endpoint = Endpoint()
        try:
            out["calls"] = asyncio.run(run_calls(request["calls"], endpoint))
        finally:
            endpoint.server.shutdown()
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
