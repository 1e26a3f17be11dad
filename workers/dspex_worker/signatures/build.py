"""Signature classes from the wire format, built once per distinct signature.

A signature arrives as data (schemas/signature.schema.json): ``{instructions?, inputs: [Field], outputs: [Field]}``
with ``Field = {name, type, desc?, prefix?, constraints?}`` and ``type`` a type expression such as
``{"kind": "list", "items": {"kind": "str"}}``. `build_signature` turns it into a real ``dspy.Signature`` class
through the dict form of ``make_signature`` with real Python types (``list[str]``, ``typing.Literal[...]``,
``typing.Optional[...]``) -- never string evaluation or DSPy's stack-frame type resolution.

`SignatureCache` is keyed by the canonical JSON of the signature: the signature is checked (check.py) only on a
miss, and the input checks of inputs.py are compiled at the same time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import dspy
import pydantic
from dspy.signatures.signature import make_signature
from dspy.utils.constants import IS_TYPE_UNDEFINED

from ..protocol.errors import ValidationError
from .check import check_signature, signature_key, type_from_expr
from .inputs import prime


def build_signature(sig: Mapping[str, Any]) -> type[dspy.Signature]:
    """A ``dspy.Signature`` class from a wire signature (the same fields, order, types and instructions as
    ``dspy.Signature(text, instructions)`` for the string the signature was parsed from).

    Constraints become pydantic ``Field`` kwargs of ``dspy.InputField``/``dspy.OutputField`` (DSPy also renders
    them as a "Constraints:" line in the prompt). Inputs typed ``str`` are marked as DSPy marks untyped fields, so
    DSPy does not warn when a list is passed to them (it formats lists as numbered lists)."""
    return _build(check_signature(sig))


def _build(checked: Mapping[str, Any]) -> type[dspy.Signature]:
    fields: dict[str, tuple[Any, Any]] = {}
    prefixes: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        for f in checked[side]:
            kwargs: dict[str, Any] = {}
            if "desc" in f:
                kwargs["desc"] = f["desc"]
            kwargs.update(f.get("constraints") or {})
            if side == "inputs":
                kwargs[IS_TYPE_UNDEFINED] = f["type"]["kind"] == "str"
                field_info = dspy.InputField(**kwargs)
            else:
                field_info = dspy.OutputField(**kwargs)
            fields[f["name"]] = (type_from_expr(f["type"]), field_info)
            if "prefix" in f:
                prefixes[f["name"]] = f["prefix"]
    try:
        cls: type[dspy.Signature] = make_signature(fields, checked.get("instructions"))
    except (TypeError, ValueError, pydantic.PydanticUserError) as exc:  # pragma: no cover - checked above
        raise ValidationError(f"signature: DSPy rejected it: {exc}", field="signature") from exc
    # `prefix` is deprecated as an InputField/OutputField argument (it warns); set it where DSPy keeps it.
    for name, prefix in prefixes.items():
        extra = cls.model_fields[name].json_schema_extra
        if isinstance(extra, dict):
            extra["prefix"] = prefix
    return cls


class SignatureCache:
    """A bounded, thread-safe LRU of built signature classes keyed by `signature_key`."""

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, type[dspy.Signature]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get_or_build(self, sig: Mapping[str, Any]) -> tuple[str, type[dspy.Signature]]:
        """Returns ``(key, signature class)``, building and caching the class on a miss."""
        key = signature_key(sig)
        with self._lock:
            cls = self._items.get(key)
            if cls is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return key, cls
            self.misses += 1
        checked = check_signature(sig)  # once per distinct signature: a hit skips every check
        cls = _build(checked)
        prime(key, checked)
        with self._lock:
            self._items[key] = cls
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return key, cls

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = 0
            self.misses = 0
