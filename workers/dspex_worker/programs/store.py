"""Stored programs: definitions and learned state in the KV bucket `dspex_programs`, built once per version.

A definition is `{id, module, signature, state?: {dspy_state | demos}, score?, lineage?, …}`; the KV revision is
the version, so a cached program is never stale: a new version is a new cache key. A worker that never saw a
program (its session's worker died) rebuilds it from KV with the same state. Optimizer jobs read definitions
here and store their result as the next version.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ..buckets import PROGRAMS, open_bucket
from ..protocol.errors import NotFound, ValidationError
from ..signatures import SignatureCache
from .ensemble import EnsembleProgram
from .modules import BASIC_MODULES, apply_state

# The modules a stored program can be (`definition.module`); ensembles are made by the Ensemble optimizer.
PROGRAM_MODULES: dict[str, type[Any]] = {**BASIC_MODULES, "ensemble": EnsembleProgram}


class ProgramStore:
    def __init__(
        self,
        signatures: SignatureCache,
        max_size: int = 256,
        packaged: Callable[[str], Any] | None = None,
    ) -> None:
        self._signatures = signatures
        # users' packaged programs by name (the worker's catalog, programs/packages.py): a stored program with
        # `module: "program"` is a version — learned state — of one of them
        self._packaged = packaged
        self._built: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._max_size = max_size
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self.loads = 0

    def connect(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            if self._js is None:
                raise ValidationError("program: stored programs need the worker's NATS connection", field="program")
            self._kv = await open_bucket(self._js, PROGRAMS)
        return self._kv

    async def definition(
        self, pid: str, version: int | None = None, *, field: str = "program"
    ) -> tuple[dict[str, Any], int]:
        """A program's definition and its version (the latest when `version` is None); NotFound naming `field`."""
        kv = await self._bucket()
        try:
            entry = await (kv.get(pid, revision=version) if version is not None else kv.get(pid))
        except KeyNotFoundError:
            at = f" at version {version}" if version is not None else ""
            raise NotFound(f"{field}: no program {pid!r}{at}", field=field) from None
        definition = json.loads(entry.value or b"null")
        if not isinstance(definition, dict):
            raise NotFound(f"{field}: program {pid!r} has no definition", field=field)
        return definition, int(entry.revision or 0)

    async def put(self, pid: str, definition: dict[str, Any]) -> int:
        """Stores a new version of a program; returns the version."""
        kv = await self._bucket()
        return int(await kv.put(pid, json.dumps(definition).encode()))

    def build(self, definition: dict[str, Any], *, field: str = "program") -> Any:
        """A module from a definition, its learned state loaded."""
        if definition.get("module") == "program":
            return self._build_packaged(definition, field)
        module_type = PROGRAM_MODULES.get(str(definition.get("module", "")))
        if module_type is None:
            raise ValidationError(
                f"{field}: the program names unknown module {definition.get('module')!r}", field=field
            )
        _, signature = self._signatures.get_or_build(definition["signature"])
        module = module_type(signature)
        apply_state(module, definition.get("state"))
        return module

    def _build_packaged(self, definition: dict[str, Any], field: str) -> Any:
        """A copy of the packaged program the definition names, with the stored state loaded. State that names
        predictors the program no longer has (or lacks ones it has) is a ValidationError naming them: the program
        changed since this version was optimized."""
        name = str(definition.get("package") or "")
        if self._packaged is None or not name:
            raise ValidationError(f"{field}: a packaged program's version needs its `package` name", field=field)
        program = self._packaged(name)
        module = copy.deepcopy(program.instance)
        state = (definition.get("state") or {}).get("dspy_state")
        if state:
            have = {n for n, _ in module.named_predictors()}
            stored = set(state) if isinstance(state, dict) else set()
            if stored != have:
                gone, new = sorted(stored - have), sorted(have - stored)
                raise ValidationError(
                    f"{field}: this version of {name!r} was optimized for predictors the program no longer matches"
                    + (f"; gone: {', '.join(gone)}" if gone else "")
                    + (f"; not in the stored state: {', '.join(new)}" if new else ""),
                    field=field,
                    details={"program": name, "gone": gone, "new": new},
                )
            module.load_state(state)
        return module

    async def get(self, program: dict[str, Any]) -> Any:
        """The built module of `{id, version}`, from the cache or rebuilt from KV."""
        key = (str(program["id"]), int(program["version"]))
        module = self._built.get(key)
        if module is not None:
            self._built.move_to_end(key)
            return module
        definition, _ = await self.definition(*key)
        module = self.build(definition)
        self.loads += 1
        self._built[key] = module
        if len(self._built) > self._max_size:
            self._built.popitem(last=False)
        return module
