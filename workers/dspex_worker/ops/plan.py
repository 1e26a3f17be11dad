"""How a module op runs. Each op family has a planner that builds a `Plan` — the DSPy module, its call
arguments, whether it has `aforward`, the outputs it adds — and `run_planned` runs every plan the same way:
inside `dspy.context(lm, adapter, usage tracking, callbacks)`, streamed when the request asks for it
(streaming.py), and turns the prediction into outputs (extra ones like `reasoning` first), usage and extras.

Modules without `aforward` in DSPy (BestOfN, Refine, MultiChainComparison, ProgramOfThought) and RLM (whose
`aforward` runs the sandboxed code on the event loop) run in a worker thread (`asyncio.to_thread` carries
`dspy.context`); the others run on the event loop with `acall`. A plan's `stop` (the sandboxes of ProgramOfThought
and RLM) runs when the request ends however it ends; at the deadline the request waits, briefly, for its thread to
end after `stop` before it answers, so the thread is free again when the caller hears DeadlineExceeded.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import dspy

from ..execution import Execution, Request, sum_usage, to_wire_value
from ..observability.telemetry import dspy_callbacks
from ..program_bus import bound
from ..protocol import DspexError
from ..protocol.errors import WorkerError
from ..retrieval import BusRM
from ..signatures import validate_inputs
from .context import OpContext
from .streaming import run_streamed


@dataclass(slots=True)
class Plan:
    module: Any
    kwargs: dict[str, Any]
    is_async: bool
    # output names produced besides the signature's, listed first (reasoning, rationale)
    leading: list[str] = field(default_factory=list)
    extra: Callable[[Any], dict[str, Any] | None] | None = None
    post: Callable[[Any], Any] | None = None
    # stream raw LM text: the predictors that run are not the module's own (deep copies, ensemble members)
    raw_stream: bool = False
    # usage of LM calls made while planning (per-model maps, as `prediction.get_lm_usage()`)
    usage: list[dict[str, Any]] = field(default_factory=list)
    # a typed error for an exception the module raised, when the op knows better than WorkerError
    on_error: Callable[[Exception], DspexError | None] | None = None
    # ends what the module started outside this process (sandboxes) when the request ends, at its deadline too
    stop: Callable[[], object] | None = None


# How long a request stopped at its deadline waits for its thread to end after `stop` (a killed sandbox ends the
# thread's read at once).
THREAD_GRACE_S = 5.0


def _has_audio(signature: Mapping[str, Any]) -> bool:
    """DSPy sends audio through its LiteLLM engine, whose first use imports thousands of modules (seconds of CPU):
    such a request runs in a thread, so the worker's event loop keeps answering (heartbeats, other requests)."""
    return any(f["type"]["kind"] == "audio" for f in signature.get("inputs", []))


async def _in_thread(plan: Plan) -> Any:
    """Runs a synchronous module in a worker thread. Cancelled (the deadline), it stops what the plan started and
    waits for the thread to end before it lets the cancellation through."""
    task = asyncio.ensure_future(asyncio.to_thread(plan.module, **plan.kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if plan.stop is not None:
            plan.stop()
            await asyncio.wait({task}, timeout=THREAD_GRACE_S)
        # the thread's own end (an error from the killed sandbox) has no one to hear it
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise


@functools.cache
def _process_rm() -> BusRM:
    """`dspy.Retrieve`'s retriever: one per process (its collection, DSPEX_RETRIEVAL_COLLECTION, is the process's)."""
    return BusRM()


@dataclass(slots=True)
class PlanInput:
    ctx: OpContext
    request: Request
    options: dict[str, Any]  # the op's module options, checked and with the schema's defaults
    signature: Any
    sig_key: str
    inputs: dict[str, Any]
    lm: Any


Planner = Callable[[PlanInput], Awaitable[Plan]]


async def run_planned(ctx: OpContext, request: Request, options: dict[str, Any], planner: Planner) -> Execution:
    sig_key, signature = ctx.signatures.get_or_build(request["signature"])
    inputs = validate_inputs(request["signature"], request["inputs"], key=sig_key)  # key: no second hash
    lm, adapter = ctx.lms.resolve(request.get("lm"))
    stream = request.get("stream")
    # programs reach collections and tools on the bus through this worker's connection (program_bus.py)
    bus = bound(ctx.nc, request["id"]) if ctx.nc is not None else nullcontext()
    with bus, dspy.context(lm=lm, adapter=adapter, rm=_process_rm(), track_usage=True, callbacks=dspy_callbacks()):
        plan = await planner(PlanInput(ctx, request, options, signature, sig_key, inputs, lm))
        try:
            if stream is not None:
                prediction = await run_streamed(
                    ctx.connection("stream"),
                    stream,
                    plan.module,
                    plan.kwargs,
                    request_id=request["id"],
                    default_fields=[*plan.leading, *signature.output_fields],
                    is_async=plan.is_async,
                    raw=plan.raw_stream,
                )
            elif plan.is_async and not _has_audio(request["signature"]):
                prediction = await plan.module.acall(**plan.kwargs)
            else:
                prediction = await _in_thread(plan)
        except DspexError:
            raise
        except Exception as exc:
            if plan.on_error is not None and (typed := plan.on_error(exc)) is not None:
                raise typed from exc
            raise
        finally:
            if plan.stop is not None:
                plan.stop()
        if prediction is None:
            op = request["op"]
            raise WorkerError(f"{op}: every attempt failed; no prediction", details={"op": op})
        if plan.post is not None:
            prediction = plan.post(prediction)
    names = [n for n in plan.leading if n in prediction] + [n for n in signature.output_fields if n not in plan.leading]
    return Execution(
        outputs={name: to_wire_value(prediction.get(name)) for name in names},
        lm=str(lm.model),
        usage=sum_usage(*plan.usage, prediction.get_lm_usage()),
        extra=plan.extra(prediction) if plan.extra is not None else None,
    )
