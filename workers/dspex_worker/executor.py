"""Runs one decoded request through real DSPy and returns the outputs, usage and the answering LM."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import dspy
import pydantic

from . import telemetry
from .ensemble import EnsembleProgram
from .errors import ValidationError
from .lm import LMFactory
from .programs import ProgramStore
from .signatures import SignatureCache, validate_inputs
from .wire import SURFACE_OPERATIONS, Request

MODULES: dict[str, type[dspy.Module]] = {
    "predict": dspy.Predict,
    "chain_of_thought": dspy.ChainOfThought,
    "ensemble": EnsembleProgram,  # stored programs made by the Ensemble optimizer (ensemble.py)
}
MODULE_KEYS = {"demos"}


@dataclass(slots=True)
class Execution:
    outputs: dict[str, Any]
    lm: str
    usage: dict[str, int]
    # op "evaluate": metric name -> score (see metrics.py)
    scores: dict[str, Any] | None = None
    # DSPy surface ops: typed results beyond the prediction (trajectory, results, votes, job; modules.py)
    extra: dict[str, Any] | None = None


def to_wire_value(value: Any) -> Any:
    """Converts DSPy output values (pydantic models, tuples, sets) into plain msgpack-able data."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_wire_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_wire_value(v) for v in value]
    return value


def sum_usage(per_model: dict[str, dict[str, Any]] | None) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for usage in (per_model or {}).values():
        for key in total:
            total[key] += int(usage.get(key) or 0)
    return total


class Executor:
    def __init__(self, signatures: SignatureCache | None = None, lms: LMFactory | None = None) -> None:
        self.signatures = signatures or SignatureCache()
        self.lms = lms or LMFactory()
        # Module objects are reused across requests: ChainOfThought builds a new signature class on init.
        self._modules: OrderedDict[tuple[str, str], dspy.Module] = OrderedDict()
        self.programs = ProgramStore(self.signatures, MODULES)
        self.worker_id = ""  # set by the worker; recorded in optimizer jobs (optimize.py)

    def _module(self, op: str, sig_key: str, signature: type[dspy.Signature], options: dict[str, Any]) -> Any:
        unknown = sorted(set(options) - MODULE_KEYS)
        if unknown:
            raise ValidationError(f"unknown module option(s): {', '.join(unknown)}", field=f"module.{unknown[0]}")
        demos = options.get("demos")
        if demos is not None:
            if not isinstance(demos, list) or not all(isinstance(d, dict) for d in demos):
                raise ValidationError("`module.demos` must be a list of maps", field="module.demos")
            module = MODULES[op](signature)
            for predictor in module.predictors():
                predictor.demos = [dspy.Example(**d) for d in demos]
            return module
        key = (op, sig_key)
        module = self._modules.get(key)
        if module is None:
            module = MODULES[op](signature)
            self._modules[key] = module
            if len(self._modules) > 256:
                self._modules.popitem(last=False)
        return module

    async def run(self, request: Request) -> Execution:
        if request.op == "evaluate":
            from .metrics import run_evaluate  # metrics.py calls back into this executor

            return await run_evaluate(self, request)
        if request.op in SURFACE_OPERATIONS or request.stream is not None:
            from .modules import run_surface  # ReAct, Refine, …, compile jobs, streaming (docs/dspy-surface.md)

            return await run_surface(self, request)
        sig_key, signature = self.signatures.get_or_build(request.signature)
        inputs = validate_inputs(request.signature, request.inputs, key=sig_key)  # key: no second hash
        if request.program is not None:
            module = await self.programs.get(request.program)
        else:
            module = self._module(request.op, sig_key, signature, request.module)
        lm, adapter = self.lms.resolve(request.lm)
        with dspy.context(lm=lm, adapter=adapter, track_usage=True, callbacks=telemetry.dspy_callbacks()):
            prediction = await module.acall(**inputs)
        names = list(signature.output_fields)
        if request.op == "chain_of_thought" and "reasoning" in prediction:
            names = ["reasoning", *[n for n in names if n != "reasoning"]]
        outputs = {name: to_wire_value(prediction.get(name)) for name in names}
        return Execution(outputs=outputs, lm=str(lm.model), usage=sum_usage(prediction.get_lm_usage()))
