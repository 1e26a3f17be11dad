"""Stored programs: definitions and learned state from the KV bucket `dspex_programs`, built once per version.

The KV revision is the version, so a cached program is never stale: a new version is a new cache key.
A worker that never saw a program (its session's worker died) rebuilds it from KV with the same state.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import dspy
from nats.aio.client import Client

from .errors import ValidationError
from .signatures import SignatureCache

KV_PROGRAMS = "dspex_programs"


def apply_state(module: Any, state: dict[str, Any] | None) -> None:
    """Loads DSPy `dump_state` JSON, or plain few-shot demos, into a freshly built module."""
    if not state:
        return
    if state.get("dspy_state"):
        module.load_state(state["dspy_state"])
    elif state.get("demos"):
        demos = [dspy.Example(**d) for d in state["demos"]]
        for predictor in module.predictors():
            predictor.demos = list(demos)


class ProgramStore:
    def __init__(self, signatures: SignatureCache, modules: dict[str, type[Any]], max_size: int = 256) -> None:
        self._signatures = signatures
        self._modules = modules
        self._built: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._max_size = max_size
        self._kv: Any = None
        self.nc: Client | None = None
        self.loads = 0

    async def _bucket(self) -> Any:
        if self._kv is None:
            if self.nc is None:
                raise ValidationError("stored programs need a NATS connection", field="program")
            self._kv = await self.nc.jetstream().key_value(KV_PROGRAMS)
        return self._kv

    async def get(self, program: dict[str, Any]) -> Any:
        """The built module of `{id, version}`, from the cache or rebuilt from KV."""
        pid, version = program.get("id"), program.get("version")
        if not isinstance(pid, str) or not isinstance(version, int):
            raise ValidationError("`program` must be {id: string, version: integer}", field="program")
        key = (pid, version)
        module = self._built.get(key)
        if module is not None:
            self._built.move_to_end(key)
            return module
        kv = await self._bucket()
        try:
            entry = await kv.get(pid, revision=version)
        except Exception as exc:
            raise ValidationError(f"no program {pid!r} at version {version}: {exc}", field="program") from exc
        definition = json.loads(entry.value)
        module_type = self._modules.get(definition.get("module", ""))
        if module_type is None:
            raise ValidationError(f"program {pid!r} names unknown module {definition.get('module')!r}", field="program")
        _, signature = self._signatures.get_or_build(definition["signature"])
        module = module_type(signature)
        apply_state(module, definition.get("state"))
        self.loads += 1
        self._built[key] = module
        if len(self._built) > self._max_size:
            self._built.popitem(last=False)
        return module
