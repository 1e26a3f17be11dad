"""Stored ensembles: the program the `ensemble` optimizer stores (docs/dspy-surface.md).

`dspy.Ensemble(reduce_fn=dspy.majority, size=…).compile(programs)` returns a program whose shape depends on its
member programs, so it cannot be rebuilt from `module.dump_state()` JSON alone. `EnsembleProgram(signature)` is
that program in a form the program store (store.py) can rebuild: its state names each member's module and
`dump_state`, and `load_state` rebuilds the members and hands them to `dspy.Ensemble`. `aforward` runs the members
concurrently (DSPy's ensembled program is synchronous only) and reduces their predictions the same way.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import dspy
from dspy.evaluate import normalize_text

from ..protocol.errors import ValidationError
from .modules import BASIC_MODULES, apply_state


def normalize_vote(value: Any) -> str | None:
    """`dspy.majority`'s default normalization, for any output type (not only strings)."""
    text = normalize_text(value if isinstance(value, str) else str(value))
    return text or None


def build_member(signature: Any, member: dict[str, Any]) -> Any:
    module_type = BASIC_MODULES.get(str(member.get("module", "predict")))
    if module_type is None:
        raise ValidationError(
            f"program: ensemble member module must be one of {', '.join(BASIC_MODULES)} (got {member.get('module')!r})",
            field="program",
        )
    module = module_type(signature)
    apply_state(module, member)  # a member holds `dspy_state` or `demos`
    return module


class EnsembleProgram(dspy.Module):  # type: ignore[misc]
    """Majority vote over member programs of one signature."""

    def __init__(self, signature: Any) -> None:
        super().__init__()
        self.signature = signature
        self.members: list[Any] = []
        self.member_info: list[dict[str, Any]] = []
        self.size: int | None = None
        self.field: str | None = None
        self._ensembled: Any = None

    def set_members(self, members: list[dict[str, Any]], size: int | None = None, field: str | None = None) -> None:
        self.member_info = [dict(m) for m in members]
        self.members = [build_member(self.signature, m) for m in members]
        self.size = size
        self.field = field or list(self.signature.output_fields)[-1]
        self._ensembled = dspy.Ensemble(reduce_fn=self.reduce, size=size).compile(self.members)

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        return {"ensemble": {"members": self.member_info, "size": self.size, "field": self.field, "reduce": "majority"}}

    def load_state(self, state: dict[str, Any]) -> EnsembleProgram:
        spec = state.get("ensemble")
        if not isinstance(spec, dict) or not isinstance(spec.get("members"), list) or not spec["members"]:
            raise ValidationError("program: an ensemble program's state needs `ensemble.members`", field="program")
        self.set_members(spec["members"], spec.get("size"), spec.get("field"))
        return self

    def reduce(self, predictions: list[Any]) -> Any:
        return dspy.majority(predictions, normalize=normalize_vote, field=self.field)

    def forward(self, **kwargs: Any) -> Any:
        if self._ensembled is None:
            raise ValidationError("program: the ensemble has no members", field="program")
        return self._ensembled(**kwargs)

    async def aforward(self, **kwargs: Any) -> Any:
        if not self.members:
            raise ValidationError("program: the ensemble has no members", field="program")
        members = random.sample(self.members, self.size) if self.size else self.members
        predictions = await asyncio.gather(*(m.acall(**kwargs) for m in members))
        return self.reduce(list(predictions))
