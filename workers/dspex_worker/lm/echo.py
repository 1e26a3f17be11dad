"""`dspex/echo`: an in-process LM that answers instantly (or after a set latency), for benchmarks and smoke tests.

It is not a model. It reads the output fields and their types from the system prompt DSPy's ChatAdapter
wrote (``Your output fields are: 1. `name` (type): ...``) and answers every field with a deterministic value
of that type in the format the adapter parses (``[[ ## field ## ]]`` sections ending with
``[[ ## completed ## ]]``; a JSON object when JSONAdapter asks for one). String fields echo the first input
field's value. Everything DSPy does around the LM (adapter formatting, the LM layer, parsing, usage
tracking, callbacks) runs for real; only the provider's network round trip and the model are gone.

It is a test double: a worker serves it only when started with ``--allow-test-models`` (factory.py). Select it
with the model name ``dspex/echo`` (the LM config of a request, or ``DSPEX_LM=dspex/echo``); options
go in a query string: ``dspex/echo?latency_ms=100`` waits 100 ms per call (``time.sleep`` in the sync path
that `dspy.Evaluate` threads use, ``asyncio.sleep`` in the async path the worker uses).

DSPy 3.4.1 removed the 3.3 ``typed_lm`` forward contract (``dspy/clients/execution.py`` raises TypeError for
it) and deprecates ``BaseLM.forward``/``aforward`` overrides for removal in 3.5; its supported way to plug in
a custom LM is an *engine* with ``complete(Request) -> Response`` given to ``dspy.LM(engine=...,
async_engine=...)``. So `EchoLM` is a ``dspy.LM`` (hence a ``dspy.BaseLM``) running `EchoEngine`.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

ECHO_PROVIDER = "dspex"
ECHO_MODEL = "dspex/echo"

_OUTPUTS_HEADER = "Your output fields are:"
_FIELD_LINE = re.compile(r"^\d+\. `([^`]+)` \((.*)$")
_INPUT_SECTION = re.compile(r"\[\[ ## ([^\]]+?) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\n(?:Respond with|$)|\Z)", re.S)
_JSON_HINTS = ("Respond with a JSON object", "Outputs will be a JSON object")
_MAX_ECHO = 200


@dataclass(frozen=True, slots=True)
class EchoOptions:
    latency_s: float = 0.0


def parse_model(model: str) -> EchoOptions:
    """`dspex/echo[?latency_ms=N]` -> options; raises ValueError for anything else."""
    base, _, query = model.partition("?")
    if base != ECHO_MODEL:
        raise ValueError(f"unknown {ECHO_PROVIDER} model {base!r}; the only one is {ECHO_MODEL!r}")
    latency_ms = 0.0
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key != "latency_ms":
            raise ValueError(f"unknown {ECHO_MODEL} option {key!r}; allowed: latency_ms")
        latency_ms = float(value)
        if not latency_ms >= 0:
            raise ValueError(f"latency_ms must be a non-negative number (got {value!r})")
    return EchoOptions(latency_s=latency_ms / 1000)


def _split_type(rest: str) -> str:
    """The type annotation at the start of `rest` (`Literal['a (x)', 'b']): desc` -> `Literal['a (x)', 'b']`)."""
    depth = 0
    quote = ""
    for i, ch in enumerate(rest):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            if depth == 0:
                return rest[:i]
            depth -= 1
    return rest


def output_fields(system: str) -> list[tuple[str, str]]:
    """`(name, type annotation)` of each output field listed in a ChatAdapter/JSONAdapter system prompt."""
    start = system.find(_OUTPUTS_HEADER)
    if start < 0:
        return []
    fields: list[tuple[str, str]] = []
    for line in system[start + len(_OUTPUTS_HEADER) :].splitlines():
        if line.startswith("All interactions will be structured") or line.startswith("Outputs will be"):
            break
        m = _FIELD_LINE.match(line)
        if m:
            fields.append((m.group(1), _split_type(m.group(2)).strip()))
    return fields


def _unwrap_optional(annotation: str) -> str:
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        return annotation[len("Optional[") : -1].strip()
    for suffix in (" | None", "|None"):
        if annotation.endswith(suffix):
            return annotation[: -len(suffix)].strip()
    if annotation.startswith("Union[") and annotation.endswith(", NoneType]"):
        return annotation[len("Union[") : -len(", NoneType]")].strip()
    return annotation


def value_for(name: str, annotation: str, echo: str) -> Any:
    """A deterministic value of the annotated type (str fields echo the first input)."""
    kind = _unwrap_optional(annotation)
    if kind == "str":
        return f"{name}: {echo}"
    if kind == "int":
        return 1
    if kind == "float":
        return 0.5
    if kind == "bool":
        return True
    if kind.startswith("Literal[") and kind.endswith("]"):
        try:
            values = ast.literal_eval(f"({kind[len('Literal[') : -1]},)")
        except (ValueError, SyntaxError):
            return f"{name}: {echo}"
        return values[0] if values else ""
    if kind.startswith(("list[", "List[", "tuple[", "set[")) or kind in ("list", "List"):
        return []
    if kind.startswith(("dict[", "Dict[")) or kind in ("dict", "Dict"):
        return {}
    return f"{name}: {echo}"


def _chat_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return json.dumps(value)


class EchoEngine:
    """DSPy engine (`complete(Request) -> Response`) answering from the prompt alone, in microseconds."""

    def __init__(self, options: EchoOptions | None = None, model: str = ECHO_MODEL) -> None:
        self.options = options or EchoOptions()
        self.model = model
        self.calls = 0
        # system prompt -> output fields: a program sends the same system prompt on every call
        self._fields: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()

    def _fields_of(self, system: str) -> list[tuple[str, str]]:
        fields = self._fields.get(system)
        if fields is None:
            fields = output_fields(system)
            self._fields[system] = fields
            if len(self._fields) > 256:
                self._fields.popitem(last=False)
        return fields

    def answer(self, request: Any) -> Response:
        self.calls += 1
        system = request.system
        if system is None:
            system = ""
        elif not isinstance(system, str):
            system = "".join(getattr(p, "text", "") or "" for p in system)
        last = request.messages[-1].text if request.messages else ""
        last = last or ""
        fields = self._fields_of(system)
        m = _INPUT_SECTION.search(last)
        echo = (m.group(2) if m else last)[:_MAX_ECHO]
        values = {name: value_for(name, annotation, echo) for name, annotation in fields}
        if request.config.response_format is not None or any(h in last or h in system for h in _JSON_HINTS):
            text = json.dumps(values)
        elif fields:
            text = "".join(f"[[ ## {name} ## ]]\n{_chat_value(v)}\n\n" for name, v in values.items())
            text += "[[ ## completed ## ]]"
        else:
            text = f"echo: {echo}"
        prompt_chars = len(system) + sum(len(msg.text or "") for msg in request.messages)
        usage = Usage(input_tokens=prompt_chars // 4, output_tokens=len(text) // 4)
        return Response(
            id=f"echo-{self.calls}",
            model=self.model,
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=usage,
        )

    def complete(self, request: Any) -> Response:
        if self.options.latency_s:
            time.sleep(self.options.latency_s)
        return self.answer(request)

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


class AsyncEchoEngine:
    """The async counterpart DSPy's `acall` path awaits (the worker's path)."""

    def __init__(self, sync: EchoEngine) -> None:
        self.sync = sync

    async def complete(self, request: Any) -> Response:
        if self.sync.options.latency_s:
            await asyncio.sleep(self.sync.options.latency_s)
        return self.sync.answer(request)

    async def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


class EchoLM(dspy.LM):  # type: ignore[misc]  # dspy ships no type information
    """`dspy.LM("dspex/echo[?latency_ms=N]")` running `EchoEngine`: no network, no cache, no retries."""

    def __init__(self, model: str = ECHO_MODEL, **kwargs: Any) -> None:
        options = parse_model(model)
        engine = EchoEngine(options, model=model)
        kwargs.setdefault("cache", False)
        kwargs.setdefault("num_retries", 0)
        super().__init__(model, engine=engine, async_engine=AsyncEchoEngine(engine), **kwargs)
        self.echo_engine = engine


def is_echo_model(model: object) -> bool:
    return isinstance(model, str) and model.split("?", 1)[0].startswith(f"{ECHO_PROVIDER}/")
