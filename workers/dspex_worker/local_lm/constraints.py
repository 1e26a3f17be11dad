"""Constrained decoding for DSPy prompts, so that a very small model still answers in a parseable shape.

DSPy's adapters describe the output fields in the system message. This module reads that description
back (names, order and the type notes DSPy writes) and turns it into a constraint for llama.cpp:

* ChatAdapter prompts get an LLGuidance (Lark-like) grammar that forces
  ``[[ ## f1 ## ]]\\n<value>\\n\\n[[ ## f2 ## ]]\\n<value> ... \\n\\n[[ ## completed ## ]]``, with each
  value shaped by its type: one of the literals for ``Literal``/``Enum``, ``True|False`` for ``bool``,
  a number for ``int``/``float``, inline JSON Schema for other typed fields, bounded free text for ``str``.
* JSONAdapter prompts (with ``response_format={"type": "json_object"}``, which DSPy sends when the
  provider is not known to support schemas, or with none) get a JSON Schema built from the same fields,
  enforced by LLGuidance; a request that already carries a schema or grammar is passed through unchanged.

Anything that is not recognisably a DSPy prompt is left unconstrained.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

FieldKind = Literal["text", "bool", "int", "float", "choice", "json"]

_NOTE_PREFIX = "# note: the value you produce "
_OUTPUTS_HEADER = "Your output fields are:\n"
_FIELD_LINE = re.compile(r"^\d+\. `(\w+)` \((.*?)\):", re.MULTILINE)
_CHAT_STRUCTURE = re.compile(r"^\[\[ ## (\w+) ## \]\]\n\{\1\}(.*)$", re.MULTILINE)
_JSON_OUTPUTS_MARKER = "Outputs will be a JSON object with the following fields."
COMPLETED_MARKER = "[[ ## completed ## ]]"
_TEXT_REGEX = r"[^\s\[{`#][^\n]*"  # Lark regex (Rust syntax) for one line of free text
_TEXT_PATTERN = r"^[^\s\[{`#][^\n]*$"  # the same rule as a JSON Schema pattern


@dataclass(frozen=True)
class OutputField:
    name: str
    kind: FieldKind = "text"
    choices: tuple[Any, ...] = ()
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class DSPyPrompt:
    adapter: Literal["chat", "json"]
    fields: tuple[OutputField, ...]


@dataclass
class ConstraintLimits:
    text_max_tokens: int = 96  # a free-text (str) field in the ChatAdapter grammar
    text_max_chars: int = 400  # a free-text (str) value in the JSON schema


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _literal_values(type_name: str) -> tuple[Any, ...] | None:
    """`Literal['a', 'b']` (DSPy's annotation name) -> ('a', 'b'); None when it is not a plain literal."""
    m = re.fullmatch(r"Literal\[(.*)\]", type_name.strip(), re.DOTALL)
    if not m:
        return None
    try:
        values = ast.literal_eval("(" + m.group(1) + ",)")
    except (ValueError, SyntaxError):
        return None
    if not isinstance(values, tuple) or not values:
        return None
    if not all(isinstance(v, str | int | float | bool) and v is not None for v in values):
        return None
    return values


def _field_from_note(name: str, type_name: str, note: str) -> OutputField:
    note = note.strip()
    if note.startswith(_NOTE_PREFIX):
        note = note[len(_NOTE_PREFIX) :]
    elif note.startswith("# note:"):
        note = ""
    if not note:
        return OutputField(name)
    if note == "must be True or False":
        return OutputField(name, "bool")
    if note == "must be a single int value":
        return OutputField(name, "int")
    if note == "must be a single float value":
        return OutputField(name, "float")
    for prefix in ("must exactly match (no extra characters) one of: ", "must be one of: "):
        if note.startswith(prefix):
            literal = _literal_values(type_name)
            if literal is not None:
                return OutputField(name, "choice", choices=literal)
            options = tuple(v for v in note[len(prefix) :].split("; ") if v)
            return OutputField(name, "choice", choices=options) if options else OutputField(name)
    prefix = "must adhere to the JSON schema: "
    if note.startswith(prefix):
        try:
            schema = json.loads(note[len(prefix) :])
        except json.JSONDecodeError:
            return OutputField(name)
        if isinstance(schema, dict):
            return OutputField(name, "json", schema=schema)
    return OutputField(name)


def parse_dspy_prompt(messages: list[dict[str, Any]]) -> DSPyPrompt | None:
    """Recognise a DSPy ChatAdapter/JSONAdapter prompt and read its output fields, in order."""
    system = next((_message_text(m) for m in messages if m.get("role") == "system"), "")
    start = system.find(_OUTPUTS_HEADER)
    if start < 0:
        return None
    listing_end = system.find("All interactions will be structured", start)
    listing = system[start + len(_OUTPUTS_HEADER) : listing_end if listing_end > 0 else None]
    declared = [(m.group(1), m.group(2)) for m in _FIELD_LINE.finditer(listing)]
    if not declared:
        return None
    types = dict(declared)

    notes: dict[str, str] = {}
    adapter: Literal["chat", "json"]
    marker = system.find(_JSON_OUTPUTS_MARKER)
    if marker >= 0:
        adapter = "json"
        brace = system.find("{", marker)
        try:
            structure, _ = json.JSONDecoder().raw_decode(system[brace:])
        except (json.JSONDecodeError, ValueError):
            structure = None
        if isinstance(structure, dict):
            for name, template in structure.items():
                if isinstance(template, str) and template.startswith("{" + name + "}"):
                    notes[name] = template[len(name) + 2 :]
    elif COMPLETED_MARKER in system:
        adapter = "chat"
        for m in _CHAT_STRUCTURE.finditer(system):
            notes[m.group(1)] = m.group(2)
    else:
        return None

    fields = tuple(_field_from_note(name, types[name], notes.get(name, "")) for name, _ in declared)
    return DSPyPrompt(adapter=adapter, fields=fields)


# ---------------------------------------------------------------- ChatAdapter: LLGuidance grammar


def _lark_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _accepts_plain_string(schema: dict[str, Any]) -> bool:
    types = schema.get("type")
    if types == "string" or (isinstance(types, list) and "string" in types):
        return True
    branches = schema.get("anyOf") or schema.get("oneOf") or []
    return any(isinstance(b, dict) and b.get("type") == "string" for b in branches)


def _chat_value_rule(rule: str, f: OutputField, limits: ConstraintLimits) -> str:
    if f.kind == "bool":
        return f'{rule}: "True" | "False"'
    if f.kind == "int":
        return f"{rule}: /-?[0-9]{{1,15}}/"
    if f.kind == "float":
        return f"{rule}: /-?[0-9]{{1,15}}(\\.[0-9]{{1,8}})?/"
    if f.kind == "choice" and f.choices:
        return f"{rule}: " + " | ".join(_lark_string(str(c)) for c in f.choices)
    if f.kind == "json" and f.schema is not None and not _accepts_plain_string(f.schema):
        return f"{rule}: %json " + json.dumps(f.schema, ensure_ascii=False)
    # `str | None` and other unions with `str` are parsed by ChatAdapter as raw text, not JSON.
    # Free text: one line, bounded. It may not start with "{" (an echo of DSPy's "{field}" placeholder),
    # "[" (a stray field header), "`" (a code fence), "#" (an echo of a markdown heading) or white space;
    # tiny models otherwise ramble.
    return f"{rule}[max_tokens={limits.text_max_tokens}]: /{_TEXT_REGEX}/"


def chat_grammar(prompt: DSPyPrompt, limits: ConstraintLimits | None = None) -> str:
    """LLGuidance grammar forcing the ChatAdapter layout for `prompt`'s output fields."""
    limits = limits or ConstraintLimits()
    parts: list[str] = []
    rules: list[str] = []
    for i, f in enumerate(prompt.fields):
        rule = f"value{i}"
        header = ("" if i == 0 else "\n\n") + f"[[ ## {f.name} ## ]]\n"
        parts.append(_lark_string(header))
        parts.append(rule)
        rules.append(_chat_value_rule(rule, f, limits))
    parts.append(_lark_string("\n\n" + COMPLETED_MARKER))
    return "\n".join(["%llguidance {}", "start: " + " ".join(parts), *rules]) + "\n"


# ---------------------------------------------------------------- JSONAdapter: JSON Schema


def _json_value_schema(f: OutputField, limits: ConstraintLimits) -> dict[str, Any]:
    if f.kind == "bool":
        return {"type": "boolean"}
    if f.kind == "int":
        return {"type": "integer"}
    if f.kind == "float":
        return {"type": "number"}
    if f.kind == "choice" and f.choices:
        return {"enum": list(f.choices)}
    if f.kind == "json" and f.schema is not None:
        return f.schema
    return {"type": "string", "minLength": 1, "maxLength": limits.text_max_chars, "pattern": _TEXT_PATTERN}


def json_schema(prompt: DSPyPrompt, limits: ConstraintLimits | None = None) -> dict[str, Any]:
    """JSON Schema of the object a JSONAdapter prompt asks for (fields in the signature's order)."""
    limits = limits or ConstraintLimits()
    properties: dict[str, Any] = {}
    defs: dict[str, dict[str, Any]] = {}
    for f in prompt.fields:
        value = dict(_json_value_schema(f, limits))
        # A field's own `$defs` (pydantic models) move to the root, where its "#/$defs/..." refs point.
        for key in ("$defs", "definitions"):
            nested = value.pop(key, None)
            if isinstance(nested, dict):
                defs.setdefault(key, {}).update(nested)
        properties[f.name] = value
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in prompt.fields],
        "additionalProperties": False,
    }
    schema.update(defs)
    return schema


def json_grammar(prompt: DSPyPrompt, limits: ConstraintLimits | None = None) -> str:
    """The JSON Schema of `json_schema` as an LLGuidance grammar."""
    return "%llguidance {}\nstart: %json " + json.dumps(json_schema(prompt, limits), ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- request rewriting


def _has_schema(response_format: Any) -> bool:
    if not isinstance(response_format, dict):
        return False
    if response_format.get("type") == "json_schema":
        inner = response_format.get("json_schema")
        return isinstance(inner, dict) and isinstance(inner.get("schema"), dict)
    return isinstance(response_format.get("schema"), dict)


def constrain_request(body: dict[str, Any], limits: ConstraintLimits | None = None) -> str:
    """Add a grammar or schema to an OpenAI chat request in place; returns which constraint was applied.

    Returns one of: "client" (the request brought its own grammar/schema), "chat-grammar",
    "json-schema", "json-object" (generic JSON only), "none".
    """
    if body.get("grammar") or body.get("json_schema") or _has_schema(body.get("response_format")):
        return "client"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "none"
    response_format = body.get("response_format")
    wants_json = isinstance(response_format, dict) and response_format.get("type") == "json_object"
    if body.get("tools"):
        return "json-object" if wants_json else "none"
    prompt = parse_dspy_prompt(messages)
    if prompt is None:
        return "json-object" if wants_json else "none"
    if wants_json or prompt.adapter == "json":
        # As an LLGuidance grammar rather than llama.cpp's `json_schema` field: llama.cpp's own schema
        # converter drops `pattern`s it cannot anchor, LLGuidance enforces them with the length bounds.
        body.pop("response_format", None)
        body["grammar"] = json_grammar(prompt, limits)
        return "json-schema"
    body["grammar"] = chat_grammar(prompt, limits)
    return "chat-grammar"
