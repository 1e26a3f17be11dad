"""op `parallel`: the module over `batch` (a list of input maps) with `dspy.Parallel`; one result per item, in
order, a failed item as its typed error (extra `results`). `outputs` is `{}`."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy

from ..execution import Execution, Request, sum_usage, to_wire_value
from ..lm.errors import classify_exception
from ..observability.telemetry import dspy_callbacks
from ..programs.modules import build_module
from ..protocol.errors import ValidationError, WorkerError
from ..signatures import validate_inputs
from .context import OpContext


def _items(request: Request, sig_key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(request.get("batch") or []):
        try:
            items.append(validate_inputs(request["signature"], raw, key=sig_key))
        except ValidationError as exc:
            where = f"batch[{i}].{exc.field}"
            raise ValidationError(f"batch[{i}]: {exc.message}", field=where, details=exc.details) from None
    if not items:
        raise ValidationError("batch: op 'parallel' needs a non-empty list of input maps", field="batch")
    return items


async def run(ctx: OpContext, request: Request, options: dict[str, Any]) -> Execution:
    sig_key, signature = ctx.signatures.get_or_build(request["signature"])
    items = _items(request, sig_key)
    lm, adapter = ctx.lms.resolve(request.get("lm"))
    module = build_module(options["module"], signature, options.get("demos"))
    parallel = dspy.Parallel(
        num_threads=options["num_threads"],
        max_errors=options.get("max_errors") or len(items) + 1,  # default: every item may fail
        return_failed_examples=True,
        disable_progress_bar=True,
    )
    with dspy.context(lm=lm, adapter=adapter, track_usage=True, callbacks=dspy_callbacks()):
        predictions, failed, exceptions = await asyncio.to_thread(parallel, [(module, item) for item in items])
    errors = {id(example): exc for example, exc in zip(failed, exceptions, strict=False)}
    names = (["reasoning"] if options["module"] == "chain_of_thought" else []) + list(signature.output_fields)
    results: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    for item, prediction in zip(items, predictions, strict=True):
        if prediction is None:
            failure = errors.get(id(item))
            error = classify_exception(failure) if failure is not None else WorkerError("the item was not run")
            results.append({"ok": False, "error": error.to_wire()})
            continue
        usage.append(prediction.get_lm_usage() or {})
        results.append({"ok": True, "outputs": {n: to_wire_value(prediction.get(n)) for n in names}})
    return Execution(outputs={}, lm=str(lm.model), usage=sum_usage(*usage), extra={"results": results})
