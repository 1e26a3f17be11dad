"""The embedded local LM: prompt constraints (always) and one real-inference smoke test (when installed).

The smoke tests start `python -m dspex_worker.local_lm --port 0` as a subprocess and run real
`dspy.Predict` calls through `dspy.LM("openai/<model>", api_base=url)`. They skip when the local LM is not
installed (scripts/install-local-lm.sh).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at litellm import

import dspy
import pydantic
import pytest

from dspex_worker.local_lm import constraints, is_installed
from dspex_worker.local_lm.constraints import (
    DSPyPrompt,
    OutputField,
    chat_grammar,
    constrain_request,
    json_schema,
    parse_dspy_prompt,
)


class Review(dspy.Signature):
    """Read the review and extract information."""

    review: str = dspy.InputField()
    context: list[str] = dspy.InputField()
    summary: str = dspy.OutputField(desc="one sentence")
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    recommend: bool = dspy.OutputField()
    score: float = dspy.OutputField()
    stars: int = dspy.OutputField()
    keywords: list[str] = dspy.OutputField()


EXPECTED_FIELDS = (
    OutputField("summary"),
    OutputField("sentiment", "choice", choices=("positive", "negative", "neutral")),
    OutputField("recommend", "bool"),
    OutputField("score", "float"),
    OutputField("stars", "int"),
    OutputField("keywords", "json", schema={"type": "array", "items": {"type": "string"}}),
)


def _messages(adapter: dspy.Adapter) -> list[dict[str, Any]]:
    return adapter.format(Review, demos=[], inputs={"review": "Nice.", "context": ["a"]})


# ------------------------------------------------------------------ constraints (no model needed)


def test_parses_chat_adapter_prompt() -> None:
    prompt = parse_dspy_prompt(_messages(dspy.ChatAdapter()))
    assert prompt == DSPyPrompt("chat", EXPECTED_FIELDS)


def test_parses_json_adapter_prompt() -> None:
    prompt = parse_dspy_prompt(_messages(dspy.JSONAdapter()))
    assert prompt == DSPyPrompt("json", EXPECTED_FIELDS)


def test_chat_grammar_forces_field_layout() -> None:
    grammar = chat_grammar(DSPyPrompt("chat", EXPECTED_FIELDS))
    assert grammar.startswith("%llguidance {}\nstart: ")
    start = grammar.splitlines()[1]
    headers = [f'"[[ ## {f.name} ## ]]\\n"' for f in EXPECTED_FIELDS[:1]]
    headers += [f'"\\n\\n[[ ## {f.name} ## ]]\\n"' for f in EXPECTED_FIELDS[1:]]
    positions = [start.index(h) for h in headers]
    assert positions == sorted(positions)
    assert start.endswith('"\\n\\n[[ ## completed ## ]]"')
    assert 'value1: "positive" | "negative" | "neutral"' in grammar
    assert 'value2: "True" | "False"' in grammar
    assert 'value5: %json {"type": "array", "items": {"type": "string"}}' in grammar
    assert "value0[max_tokens=" in grammar


def test_json_schema_from_fields() -> None:
    schema = json_schema(DSPyPrompt("json", EXPECTED_FIELDS))
    assert list(schema["properties"]) == [f.name for f in EXPECTED_FIELDS]
    assert schema["required"] == [f.name for f in EXPECTED_FIELDS]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["sentiment"] == {"enum": ["positive", "negative", "neutral"]}
    assert schema["properties"]["stars"] == {"type": "integer"}
    assert schema["properties"]["summary"]["type"] == "string"


def test_literal_values_keep_their_types() -> None:
    class Pick(dspy.Signature):
        question: str = dspy.InputField()
        choice: Literal[1, 2, 3] = dspy.OutputField()

    prompt = parse_dspy_prompt(dspy.ChatAdapter().format(Pick, demos=[], inputs={"question": "q"}))
    assert prompt is not None
    assert prompt.fields == (OutputField("choice", "choice", choices=(1, 2, 3)),)


def test_constrain_request_rewrites_dspy_requests_only() -> None:
    chat = {"messages": _messages(dspy.ChatAdapter())}
    assert constrain_request(chat) == "chat-grammar"
    assert chat["grammar"].startswith("%llguidance")

    as_json = {"messages": _messages(dspy.JSONAdapter()), "response_format": {"type": "json_object"}}
    assert constrain_request(as_json) == "json-schema"
    assert "response_format" not in as_json
    assert as_json["grammar"].startswith("%llguidance {}\nstart: %json {")

    own_schema = {
        "messages": _messages(dspy.JSONAdapter()),
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    assert constrain_request(own_schema) == "client"
    assert "grammar" not in own_schema

    plain = {"messages": [{"role": "user", "content": "hello"}]}
    assert constrain_request(plain) == "none"
    assert plain == {"messages": [{"role": "user", "content": "hello"}]}


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_model_outputs_keep_refs_resolvable() -> None:
    class People(dspy.Signature):
        text: str = dspy.InputField()
        people: list[Person] = dspy.OutputField()
        note: str | None = dspy.OutputField()

    chat = parse_dspy_prompt(dspy.ChatAdapter().format(People, demos=[], inputs={"text": "t"}))
    assert chat is not None and [f.kind for f in chat.fields] == ["json", "json"]
    grammar = chat_grammar(chat)
    assert "value0: %json " in grammar and '"$defs"' in grammar
    # `str | None` is parsed by ChatAdapter as raw text, so it gets the free-text rule, not JSON.
    assert "value1[max_tokens=" in grammar

    as_json = parse_dspy_prompt(dspy.JSONAdapter().format(People, demos=[], inputs={"text": "t"}))
    assert as_json is not None
    schema = json_schema(as_json)
    assert "Person" in schema["$defs"]
    assert "$defs" not in schema["properties"]["people"]
    assert schema["properties"]["people"]["items"] == {"$ref": "#/$defs/Person"}


def test_unrecognised_notes_fall_back_to_text() -> None:
    assert constraints._field_from_note("x", "Foo", "        # note: something new") == OutputField("x")
    bad_json = "        # note: the value you produce must adhere to the JSON schema: {not json"
    assert constraints._field_from_note("x", "Foo", bad_json) == OutputField("x")


# ------------------------------------------------------------------ real inference (needs the model)


@dataclass
class Served:
    url: str
    model: str
    proc: subprocess.Popen[str]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    if not is_installed():
        pytest.skip("local LM not installed: run scripts/install-local-lm.sh")
    env = {**os.environ, "DSPEX_EXIT_WITH_PARENT": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex_worker.local_lm", "--port", "0", "--text-max-tokens", "48"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(10)
        pytest.fail(f"local LM server exited with {proc.returncode} before ready: {err[-2000:]}")
    ready = json.loads(line)
    assert ready["url"].startswith("http://127.0.0.1:") and ready["url"].endswith("/v1")
    try:
        yield Served(url=ready["url"], model=ready["model"], proc=proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def lm(served: Served) -> dspy.LM:
    return dspy.LM(
        f"openai/{served.model}",
        api_base=served.url,
        api_key="local",
        cache=False,
        num_retries=0,
        temperature=0.0,
        max_tokens=256,
    )


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def test_openai_endpoints(served: Served) -> None:
    models = _get(served.url + "/models")
    assert [m["id"] for m in models["data"]] == [served.model]
    body = json.dumps(
        {"model": served.model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    ).encode()
    request = urllib.request.Request(
        served.url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        reply = json.loads(resp.read())
    assert reply["object"] == "chat.completion"
    assert reply["model"] == served.model
    assert isinstance(reply["choices"][0]["message"]["content"], str)
    assert reply["choices"][0]["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_predict_question_answer_chat_adapter(lm: dspy.LM) -> None:
    adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
    with dspy.context(lm=lm, adapter=adapter):
        pred = dspy.Predict("question -> answer")(question="What is the capital of France?")
    assert isinstance(pred.answer, str) and pred.answer.strip()
    assert lm.history[-1]["response"].model == lm.model.split("/", 1)[1]


def test_predict_literal_chat_adapter(lm: dspy.LM) -> None:
    class Sentiment(dspy.Signature):
        """Classify the sentiment of the sentence."""

        sentence: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()

    with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        pred = dspy.Predict(Sentiment)(sentence="I love this wonderful product!")
    assert pred.sentiment in ("positive", "negative", "neutral")


def test_predict_typed_fields_json_adapter(lm: dspy.LM) -> None:
    class Triage(dspy.Signature):
        """Triage the support ticket."""

        ticket: str = dspy.InputField()
        team: Literal["billing", "technical"] = dspy.OutputField()
        urgent: bool = dspy.OutputField()
        priority: int = dspy.OutputField(desc="1 (low) to 3 (high)")

    started = time.monotonic()
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(Triage)(ticket="I was charged twice for my order, please refund me today.")
    assert pred.team in ("billing", "technical")
    assert isinstance(pred.urgent, bool)
    assert isinstance(pred.priority, int)
    assert time.monotonic() - started < 60


def test_sigterm_exits_cleanly(served: Served) -> None:
    # Runs last in this module (pytest keeps file order): stops the shared server.
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(30) == 0
