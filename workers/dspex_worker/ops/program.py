"""The `program` op: a user's packaged `dspy.Module` (programs/packages.py), named by `module.name`.

It runs like every module op (plan.run_planned: the request's LM and adapter in `dspy.context`, usage tracking,
the telemetry callbacks that give each predictor call its span, streaming), with three checks of its own:
- the program must be one this worker loaded at start (UnknownProgram lists the ones it has);
- the request's `signature` must be the one the worker advertises for it — a caller built against another
  version of the package gets a ValidationError naming `signature`, not a half-matching answer;
- the prediction must carry exactly the declared outputs (a missing or undeclared field is a ValidationError
  naming it).
An exception the program raises is a ProgramError with its type and message; the traceback goes only to the
worker's log, with the trace id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy

from ..lm.errors import classify_exception
from ..observability.log import get_logger
from ..programs.packages import Program, check_outputs, program_error
from ..protocol import DspexError
from ..protocol.errors import ValidationError, WorkerError
from .plan import Plan, PlanInput

log = get_logger("dspex.worker.program")


def _shape(fields: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(f["name"], f["type"]) for f in fields]


def check_signature(program: Program, signature: Mapping[str, Any]) -> None:
    """The request's signature against the advertised one (names and types, in order)."""
    for side in ("inputs", "outputs"):
        if _shape(signature.get(side, [])) != _shape(program.info[side]):
            advertised = ", ".join(f["name"] for f in program.info[side])
            raise ValidationError(
                f"signature.{side}: not program {program.name!r}'s advertised {side} ({advertised}); "
                "the caller was built against another version of it (dspex status shows what is served)",
                field=f"signature.{side}", details={"program": program.name, "version": program.info["version"]},
            )  # fmt: skip


def _declared_outputs(program: Program, prediction: Any) -> dspy.Prediction:
    """The prediction, checked: a dspy.Prediction (or a mapping) with every declared output and nothing else."""
    if isinstance(prediction, dspy.Prediction):
        values = dict(prediction.items())
    elif isinstance(prediction, dict):
        values = dict(prediction)
    else:
        raise ValidationError(
            f"outputs: program {program.name!r} returned {type(prediction).__name__}, not a dspy.Prediction",
            field="outputs",
        )
    for f in program.info["outputs"]:
        if f["name"] not in values:
            raise ValidationError(
                f"outputs.{f['name']}: program {program.name!r} returned no {f['name']!r}",
                field=f"outputs.{f['name']}",
            )
    checked = dspy.Prediction(**check_outputs(program, values))
    if isinstance(prediction, dspy.Prediction):
        checked.set_lm_usage(prediction.get_lm_usage())  # the usage DSPy tracked on the program's own result
    return checked


def _on_error(program: Program) -> Any:
    def typed(exc: Exception) -> DspexError | None:
        if isinstance(exc, DspexError):
            return None
        # the LM's failures inside the program keep their own types (an unparseable answer, a provider error and
        # whether it is worth retrying), as in a built-in module; everything else is the program's
        lm_error = classify_exception(exc)
        if not isinstance(lm_error, WorkerError):
            return lm_error
        log.warning("program raised", program=program.name, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return program_error(program, exc)

    return typed


async def plan(p: PlanInput) -> Plan:
    program = p.ctx.catalog.get(p.options["name"])
    check_signature(program, p.request["signature"])
    module = program.instance
    ref = p.request.get("program")
    if ref is not None:  # a stored version of it: its learned state (an optimizer job's result) loaded in a copy
        module = await p.ctx.programs.get(dict(ref))
        if type(module) is not program.cls:
            raise ValidationError(
                f"program: stored program {ref['id']!r} is not a version of {program.name!r}", field="program"
            )
    # dspy.Module defines no `aforward`: a program without its own runs `forward` in a worker thread
    is_async = callable(getattr(type(module), "aforward", None))
    return Plan(
        module=module,
        kwargs=p.inputs,
        is_async=is_async,
        post=lambda prediction: _declared_outputs(program, prediction),
        # which version ran: a caller that cached an older advertisement learns of the upgrade from the reply
        extra=lambda _prediction: {"program": {"name": program.name, "version": program.info["version"]}},
        on_error=_on_error(program),
    )
