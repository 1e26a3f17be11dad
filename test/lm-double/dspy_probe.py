"""Runs real DSPy against the LM test double and prints what came back as one JSON object.

Usage: python dspy_probe.py <double url, e.g. http://127.0.0.1:PORT/v1> [engine ...]

Only the LM provider is faked (by the test double, at the HTTP boundary); dspy.LM, its engines
(native lm15 and/or LiteLLM), the adapters and the parsing are the real ones. The probe drives the
double's failure modes and scripted answers through its HTTP control API (POST /__control).
Engines default to "auto" (DSPy's default) and "litellm".
"""

import json
import os
import sys
import time
import traceback
import urllib.request
from typing import Literal, Optional

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")  # no network fetch of model metadata

import dspy  # noqa: E402  (after the environment default above)
import pydantic  # noqa: E402

URL = sys.argv[1]
ENGINES = sys.argv[2:] or ["auto", "litellm"]
CONTROL = URL.rsplit("/v1", 1)[0] + "/__control"


def control(update=None):
    data = json.dumps(update).encode() if update is not None else None
    request = urllib.request.Request(
        CONTROL, data=data, method="POST" if data is not None else "GET", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def total_requests():
    return control()["totalRequests"]


def make_lm(engine, model="openai/test-model", **kwargs):
    kwargs.setdefault("num_retries", 0)
    return dspy.LM(model, api_base=URL, api_key="test", cache=False, engine=engine, **kwargs)


def jsonable(value):
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def describe(prediction):
    """Values and Python type names of a Prediction's fields."""
    items = dict(prediction.items())
    return {
        "values": {k: jsonable(v) for k, v in items.items()},
        "types": {k: type(v).__name__ for k, v in items.items()},
    }


def describe_error(error):
    return {
        "type": type(error).__name__,
        "module": type(error).__module__,
        "mro": [c.__name__ for c in type(error).__mro__],
        "message": str(error)[:500],
        "status": getattr(error, "status", None) or getattr(error, "status_code", None),
        "retry_after": getattr(error, "retry_after", None),
        "causes": causes(error),
    }


def causes(error):
    """Type names along the __cause__/__context__ chain, outermost first (excluding the error itself)."""
    chain, seen, current = [], {id(error)}, error.__cause__ or error.__context__
    while current is not None and id(current) not in seen and len(chain) < 6:
        seen.add(id(current))
        chain.append(f"{type(current).__module__}.{type(current).__name__}")
        current = current.__cause__ or current.__context__
    return chain


def last_request():
    """The double's most recent recorded request (GET /__control/requests)."""
    with urllib.request.urlopen(CONTROL + "/requests", timeout=10) as response:
        log = json.loads(response.read())
    return log[-1] if log else None


class MultiIO(dspy.Signature):
    """Answer the question using the context."""

    question: str = dspy.InputField()
    context: str = dspy.InputField(desc="background facts")
    answer: str = dspy.OutputField(desc="a short answer")
    keywords: list[str] = dspy.OutputField()
    confidence: float = dspy.OutputField(desc="between 0 and 1")


class Sentiment(dspy.Signature):
    """Classify the sentiment of the text."""

    text: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()


class Numbers(dspy.Signature):
    """Inspect the question."""

    question: str = dspy.InputField()
    word_count: int = dspy.OutputField()
    score: float = dspy.OutputField(desc="between 0 and 1")
    is_question: bool = dspy.OutputField()


class Person(pydantic.BaseModel):
    name: str
    age: int


class Structured(dspy.Signature):
    """Extract structured data."""

    text: str = dspy.InputField()
    person: Person = dspy.OutputField()
    counts: dict[str, int] = dspy.OutputField()
    note: str | None = dspy.OutputField()
    rating: Optional[int] = dspy.OutputField()  # noqa: UP045  (typing.Optional on purpose)


SENTIMENT_TEXTS = [
    "I love this product",
    "This is the worst day",
    "The sky is blue",
    "Meh, it is fine",
    "Absolutely fantastic service",
    "I want a refund",
    "Nothing to report",
    "Could be better",
]


def run_cases(engine):
    lm = make_lm(engine)
    dspy.configure(lm=lm, adapter=None)
    cases = {}

    def case(name, fn):
        started = time.monotonic()
        before = total_requests()
        try:
            result = {"ok": True, **fn()}
        except Exception as error:  # reported to the TS test, which asserts on it
            result = {"ok": False, "error": describe_error(error), "traceback": traceback.format_exc()[-2000:]}
        result["requests"] = total_requests() - before
        result["seconds"] = round(time.monotonic() - started, 3)
        cases[name] = result
        control({"reset": True})

    case(
        "predict_multi_io",
        lambda: describe(dspy.Predict(MultiIO)(question="What is 2+3?", context="Numbers are abstract objects.")),
    )
    case(
        "cot_multi_io",
        lambda: describe(
            dspy.ChainOfThought(MultiIO)(question="Which planet is largest?", context="Jupiter is a gas giant.")
        ),
    )
    case("cot_arithmetic", lambda: describe(dspy.ChainOfThought("question -> answer")(question="What is 12 * 7?")))
    case("int_answer", lambda: describe(dspy.Predict("question -> answer: int")(question="What is 6 times 7?")))

    def literal():
        predict = dspy.Predict(Sentiment)
        first = [predict(text=t).sentiment for t in SENTIMENT_TEXTS]
        again = [predict(text=t).sentiment for t in SENTIMENT_TEXTS]
        cot = dspy.ChainOfThought(Sentiment)(text=SENTIMENT_TEXTS[0])
        return {"first": first, "again": again, "types": [type(v).__name__ for v in first], "cot": describe(cot)}

    case("literal", literal)
    case(
        "list_str",
        lambda: describe(
            dspy.Predict("text -> tags: list[str]")(text="Quantum computing meets machine learning research")
        ),
    )
    case("numbers", lambda: describe(dspy.Predict(Numbers)(question="Is the sky blue?")))
    case("numbers_cot", lambda: describe(dspy.ChainOfThought(Numbers)(question="Is grass green?")))
    case("structured", lambda: describe(dspy.Predict(Structured)(text="Ada Lovelace was 36.")))

    def json_adapter():
        with dspy.context(adapter=dspy.JSONAdapter()):
            predict = describe(dspy.Predict(MultiIO)(question="What is 10 - 4?", context="Arithmetic."))
            cot = describe(dspy.ChainOfThought(Sentiment)(text="I love this product"))
            structured = describe(dspy.Predict(Structured)(text="Ada Lovelace was 36."))
        return {"predict": predict, "cot": cot, "structured": structured}

    case("json_adapter", json_adapter)

    def json_adapter_structured_outputs():
        # A model name that DSPy knows supports response schemas: JSONAdapter sends response_format json_schema.
        with dspy.context(lm=make_lm(engine, model="openai/gpt-4o-mini"), adapter=dspy.JSONAdapter()):
            result = describe(dspy.Predict(MultiIO)(question="What is 9 / 3?", context="Division."))
        sent = (last_request() or {}).get("body") or {}
        return {**result, "response_format": sent.get("response_format")}

    case("json_adapter_schema", json_adapter_structured_outputs)

    def few_shot():
        predict = dspy.Predict("question -> answer")
        predict.demos = [
            dspy.Example(question="What is 1+1?", answer="2").with_inputs("question"),
            dspy.Example(question="What is the capital of Spain?", answer="Madrid").with_inputs("question"),
        ]
        cot = dspy.ChainOfThought("question -> answer")
        cot.predict.demos = [
            dspy.Example(question="What is 3+3?", reasoning="3+3 is 6.", answer="6").with_inputs("question")
        ]
        first = describe(predict(question="What is 10-4?"))
        first_messages = last_request()["prompt"]["messageCount"]
        second = describe(cot(question="What is 8 / 2?"))
        second_messages = last_request()["prompt"]["messageCount"]
        return {"predict": first, "cot": second, "message_counts": [first_messages, second_messages]}

    case("few_shot", few_shot)

    def scripted():
        control(
            {
                "rules": [
                    {
                        "field": "question",
                        "match": {"regex": "capital of france", "flags": "i"},
                        "outputs": {"answer": "Paris"},
                    },
                    {"field": "question", "match": "What is 2+2?", "outputs": {"answer": "5"}},
                ]
            }
        )
        predict = dspy.Predict("question -> answer")
        return {
            "france": predict(question="What is the Capital of France?").answer,
            "wrong": predict(question="What is 2+2?").answer,
            "unscripted": predict(question="What is 2+3?").answer,
        }

    case("scripted", scripted)

    def streaming():
        program = dspy.streamify(
            dspy.Predict("question -> answer"),
            stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
            async_streaming=False,
        )
        chunks, final = [], None
        for item in program(question="What is the meaning of streaming in tests?"):
            if isinstance(item, dspy.streaming.StreamResponse):
                chunks.append(item.chunk)
            elif isinstance(item, dspy.Prediction):
                final = item
        sent = last_request() or {}
        return {
            "chunks": chunks,
            "final": describe(final) if final is not None else None,
            "sent_stream": sent.get("stream"),
        }

    case("streaming", streaming)

    def failure(mode, count=1, retry_after=None, **lm_kwargs):
        def run():
            setting = {"mode": mode, "count": count}
            if retry_after is not None:
                setting["retryAfterSeconds"] = retry_after
            control({"failure": setting})
            with dspy.context(lm=make_lm(engine, **lm_kwargs)):
                return describe(dspy.Predict("question -> answer")(question="What is 2+3?"))

        return run

    case("http500", failure("http500"))
    case("http429", failure("http429", retry_after=7))
    case("malformed_once", failure("malformed", count=1))  # ChatAdapter falls back to JSONAdapter: recovers
    case("malformed", failure("malformed", count=None))
    case("retry_429", failure("http429", count=2, retry_after=0, num_retries=2))
    case("hang_timeout", failure("hang", timeout=1))

    def after_failures():
        return describe(dspy.Predict("question -> answer")(question="What is 2+3?"))

    case("after_failures", after_failures)
    return cases


def main():
    results = {"dspy_version": dspy.__version__, "engines": {}}
    for engine in ENGINES:
        results["engines"][engine] = run_cases(engine)
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
