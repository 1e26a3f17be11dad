"""Optimizers as jobs on the `optimizer` pool (docs/dspy-surface.md, "Optimizer jobs"; job.schema.json).

A request with `op: "compile"` carries `compile: {job?, optimizer, options, program: {id, version}, trainset,
valset?, metric?, prompt_lm?, teacher_lm?, reflection_lm?, evaluate?}`. The worker

1. checks everything it can before spending a token (spec.py: ValidationError naming `compile.<field>`); a job
   rejected there is recorded as `failed`;
2. finds the job's record in KV `dspex_jobs` — a client creates it `queued` before publishing, and one that did
   not (a client in another language) gets it created here — and answers from it when the job has ended
   already (a redelivered request of a finished job is not run again);
3. waits while another live worker holds the job's lease (a redelivery that overtook its owner), then claims it
   (jobs/run.py: `running`, owner, lease, `runs` + 1) and runs `optimizer.compile(...)` in a thread inside
   `dspy.context(lm=…, callbacks=[JobCallback])`, publishing progress on `dspex.jobs.progress.<job>`;
4. stops at the next LM, module or metric call once the job is cancelled (progress.py); the reply is `Cancelled`;
5. evaluates the program before and after (dspy.Evaluate on the valset, else the trainset) and stores the
   optimized program as the next version of the program in KV `dspex_programs`: `state.dspy_state` is
   `module.dump_state()` without per-predictor LM settings (a run uses the caller's LM), plus `score` and
   `lineage` (parent version, job, optimizer, options, metric, scores, dataset sizes, worker, run).

Restarts: the request stays unacked while the job runs (the worker's in-progress acks keep it from being
redelivered), so a worker that dies mid-job leaves it to JetStream, which redelivers it after the pool's AckWait;
the worker that gets it re-runs the job from the start once the dead owner's lease has lapsed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import dspy

from ...execution import Execution, Request, sum_usage
from ...jobs.run import JobRun, wait_while_owned
from ...jobs.store import FINAL_STATUSES, JobStore, new_record
from ...lm.errors import classify_exception
from ...observability.log import get_logger
from ...observability.telemetry import dspy_callbacks
from ...programs.ensemble import EnsembleProgram
from ...programs.modules import BASIC_MODULES, apply_state, build_module
from ...programs.store import ProgramStore
from ...protocol import DspexError, check_job_record, error_from_wire
from ...protocol.errors import Cancelled, DeadlineExceeded, ValidationError, WorkerError
from ...protocol.generated.types import JobRecord
from ...signatures import validate_inputs
from ..context import OpContext
from ..metrics import metric_call, resolve_metric
from .optimizers import build_optimizer, check_finetune, evaluate_program, lm_usage, strip_lm_state
from .progress import JobCallback, JobCancelled, JobMetric, Progress
from .spec import CompileSpec, optimize_spec, parse_compile

log = get_logger("optimize")


@dataclass(slots=True)
class Prepared:
    """Everything a job needs, made before it counts as started."""

    lm: Any  # a copy of the task LM: its history is this job's usage
    adapter: Any
    lms: dict[str, Any]  # prompt, teacher, reflection
    base: dict[str, Any]  # the stored program's definition
    signature: Any
    student: Any
    trainset: list[Any]
    valset: list[Any] | None
    metric: JobMetric | None
    members: list[dict[str, Any]]
    optimizer: Any


def to_examples(rows: list[dict[str, Any]], signature_json: dict[str, Any], where: str) -> list[Any]:
    """Example maps (inputs and labels) as dspy.Examples whose inputs are the signature's input fields."""
    names = [f["name"] for f in signature_json["inputs"]]
    examples = []
    for i, row in enumerate(rows):
        try:
            inputs = validate_inputs(signature_json, {k: row[k] for k in names if k in row})
        except ValidationError as exc:
            field = f"{where}[{i}].{exc.field}"
            raise ValidationError(f"{where}[{i}]: {exc.message}", field=field, details=exc.details) from None
        examples.append(dspy.Example(**{**row, **inputs}).with_inputs(*[n for n in names if n in inputs]))
    return examples


async def ensemble_members(programs: ProgramStore, base: dict[str, Any], refs: list[Any]) -> list[dict[str, Any]]:
    """The stored programs an Ensemble votes with: predict or chain_of_thought programs of the same signature."""
    members = []
    for i, ref in enumerate(refs):
        where = f"compile.options.programs[{i}]"
        definition, version = await programs.definition(ref["id"], ref["version"], field=where)
        if definition.get("module") not in BASIC_MODULES:
            raise ValidationError(
                f"{where}: ensemble members must be predict or chain_of_thought programs", field=where
            )
        if json.dumps(definition.get("signature"), sort_keys=True) != json.dumps(base["signature"], sort_keys=True):
            raise ValidationError(f"{where}: ensemble members must share the program's signature", field=where)
        state = definition.get("state") or {}
        members.append(
            {
                "id": definition.get("id"),
                "version": version,
                "module": definition.get("module"),
                "dspy_state": state.get("dspy_state"),
                "demos": state.get("demos"),
            }
        )
    return members


async def _prepare(ctx: OpContext, request: Request, spec: CompileSpec, progress: Progress) -> Prepared:
    task_lm, adapter = ctx.lms.resolve(request.get("lm"))
    lm = task_lm.copy()
    base, _ = await ctx.programs.definition(spec.program["id"], spec.program["version"], field="compile.program")
    packaged = base.get("module") == "program"
    if base.get("module") not in BASIC_MODULES and not packaged and spec.optimizer != "Ensemble":
        raise ValidationError(
            f"compile.program: only {' and '.join(BASIC_MODULES)} programs and packaged programs can be compiled "
            f"(this one is {base.get('module')!r})",
            field="compile.program",
        )
    signature_json = base["signature"]
    _, signature = ctx.signatures.get_or_build(signature_json)
    trainset = to_examples(spec.trainset, signature_json, "compile.trainset")
    valset = to_examples(spec.valset, signature_json, "compile.valset") if spec.valset else None
    metric = None
    if spec.metric is not None:
        name, args = metric_call(spec.metric)
        metric = JobMetric(name, resolve_metric(name, field="compile.metric"), args, progress)
    lms: dict[str, Any] = {
        "prompt": ctx.lms.get(spec.prompt_lm).copy() if spec.prompt_lm else None,
        "teacher": ctx.lms.get(spec.teacher_lm).copy() if spec.teacher_lm else None,
        "reflection": ctx.lms.get(spec.reflection_lm).copy() if spec.reflection_lm else lm,
    }
    members = []
    if spec.optimizer == "Ensemble":
        members = await ensemble_members(ctx.programs, base, spec.compile.pop("programs"))
    if spec.optimizer == "BootstrapFinetune":
        check_finetune(lm, dict(request.get("lm") or {}))
    student = None
    if base.get("module") in BASIC_MODULES:
        student = build_module(base["module"], signature)
        apply_state(student, base.get("state"))
    elif packaged:  # a user's program (its latest stored state, if any): the optimizer tunes its predictors
        student = ctx.programs.build(base, field="compile.program")
    with dspy.context(lm=lm, adapter=adapter):  # MIPROv2 reads its task model from the settings when it is built
        optimizer = None if spec.optimizer == "Ensemble" else build_optimizer(spec, metric, lms)
    return Prepared(lm, adapter, lms, base, signature, student, trainset, valset, metric, members, optimizer)


def _compile(spec: CompileSpec, p: Prepared, progress: Progress) -> tuple[Any, float | None, float | None]:
    """The job itself, in a worker thread: baseline score, compile, final score."""
    devset = p.valset or p.trainset
    threads = int(spec.init.get("num_threads") or spec.compile.get("num_threads") or 1)
    can_score = spec.evaluate and p.metric is not None and bool(devset)
    callbacks = [*dspy_callbacks(), JobCallback(progress)]
    with dspy.context(lm=p.lm, adapter=p.adapter, callbacks=callbacks):
        baseline = None
        if can_score and p.student is not None:
            progress.set_stage("baseline")
            baseline = evaluate_program(p.student, devset, p.metric, threads)
            progress.set_baseline(baseline)
        progress.set_stage("compiling")
        if spec.optimizer == "Ensemble":
            program: Any = EnsembleProgram(p.signature)
            program.set_members(p.members, spec.init.get("size"))
        elif spec.optimizer == "COPRO":
            eval_kwargs = {"num_threads": spec.compile.get("num_threads", 1), "display_progress": False}
            program = p.optimizer.compile(p.student, trainset=p.trainset, eval_kwargs=eval_kwargs)
        else:
            extra = {"valset": p.valset} if (spec.takes_valset and p.valset) else {}
            program = p.optimizer.compile(p.student, trainset=p.trainset, **extra, **spec.compile)
        score = None
        if can_score:
            progress.set_stage("final")
            score = evaluate_program(program, devset, p.metric, threads)
        progress.check()
        return program, baseline, score


def _answer(record: JobRecord, lm: str) -> Execution:
    """The reply for a job that has ended: its result, or its error."""
    status = record["status"]
    if status == "succeeded":
        return Execution(outputs={}, lm=lm, usage=sum_usage(), extra={"job": dict(record)})
    if status == "cancelled":
        raise Cancelled(f"job {record['id']} was cancelled", details={"job": record["id"]})
    error = record.get("error")
    raise error_from_wire(dict(error)) if error else WorkerError(f"job {record['id']} failed")


async def _reject(ctx: OpContext, store: JobStore, job: Any, raw: dict[str, Any], error: DspexError) -> None:
    """Records a job rejected before it started as failed, when its id and spec can make a record at all; the
    caller replies with the error either way."""
    record = new_record(str(job), "optimize", optimize_spec(raw))
    try:
        check_job_record(record)
    except ValidationError:
        return  # e.g. the job id itself is what is wrong: there is nothing to record
    try:
        stored = await store.get_or_create(record)
        if stored.value["status"] not in FINAL_STATUSES:
            wire = error.to_wire()
            run = JobRun(ctx.connection("compile"), store, stored, worker=ctx.worker_id)
            await run.finish("failed", {"type": "failed", "error": wire}, error=wire)
    except Exception as exc:
        log.warning("rejected job not recorded", job=str(job), error=f"{type(exc).__name__}: {exc}")


def _lm_name(ctx: OpContext, request: Request) -> str:
    try:
        return str(ctx.lms.get(request.get("lm")).model)
    except DspexError:
        return ""


async def run(ctx: OpContext, request: Request, options: dict[str, Any]) -> Execution:
    raw: dict[str, Any] = dict(request["compile"])
    nc = ctx.connection("compile")
    store = ctx.jobs
    assert store is not None  # connect() made it with the connection
    try:
        spec = parse_compile(raw, request["id"])
    except ValidationError as exc:
        await _reject(ctx, store, raw.get("job", request["id"]), raw, exc)
        raise
    stored = await store.get_or_create(new_record(spec.job, "optimize", spec.record_spec))
    progress: Progress | None = None
    prepared: Prepared | None = None
    while True:
        stored = await wait_while_owned(store, stored, ctx.worker_id)
        if stored.value["status"] in FINAL_STATUSES:
            # A job that has ended (a redelivery, or a client sending it again) is answered, not run again.
            return _answer(stored.value, _lm_name(ctx, request))
        job = JobRun(nc, store, stored, worker=ctx.worker_id)
        if stored.value.get("cancel_requested"):
            await job.finish("cancelled", {"type": "cancelled"})
            raise Cancelled(f"job {spec.job} was cancelled before it started", details={"job": spec.job})
        if progress is None:
            progress = Progress(job)
        progress.bind(job)
        if prepared is None:
            try:
                prepared = await _prepare(ctx, request, spec, progress)
            except Exception as exc:
                error = classify_exception(exc)
                await job.finish("failed", {"type": "failed", "error": error.to_wire()}, error=error.to_wire())
                raise error from exc
        if await job.start():
            return await _run(ctx, spec, job, progress, prepared)
        stored = await store.get(spec.job) or stored  # the record moved while this run prepared: look again


async def _run(ctx: OpContext, spec: CompileSpec, job: JobRun, progress: Progress, p: Prepared) -> Execution:
    try:
        try:
            program, baseline, score = await asyncio.to_thread(_compile, spec, p, progress)
        except asyncio.CancelledError:
            job.cancelled.set()  # the request's deadline passed: stop the thread at its next call
            raise
    except JobCancelled:
        await job.finish("cancelled", {"type": "cancelled"})
        raise Cancelled(f"job {spec.job} was cancelled", details={"job": spec.job, "run": job.record["runs"]}) from None
    except BaseException as exc:
        if isinstance(exc, Exception):
            error = classify_exception(exc)
        else:  # the request's deadline cancelled this task
            error = DeadlineExceeded("the job's deadline passed while it was running")
        await job.finish("failed", {"type": "failed", "error": error.to_wire()}, error=error.to_wire())
        if isinstance(exc, Exception):
            raise error from exc
        raise

    progress.set_stage("storing")
    runs = job.record["runs"]
    definition = {
        **p.base,
        "module": "ensemble" if spec.optimizer == "Ensemble" else p.base["module"],
        "state": {"dspy_state": json.loads(json.dumps(strip_lm_state(program.dump_state()), default=str))},
        "created_at": int(time.time() * 1000),
        "score": score,
        "lineage": {
            "parent": dict(spec.program),
            "job": spec.job,
            "optimizer": spec.optimizer,
            "options": spec.options,
            "metric": spec.metric,
            "score": score,
            "baseline_score": baseline,
            "scored_on": ("valset" if p.valset else "trainset") if score is not None else None,
            "trainset_size": len(p.trainset),
            "valset_size": len(p.valset) if p.valset else 0,
            "worker": ctx.worker_id,
            "run": runs,
        },
    }
    version = await ctx.programs.put(spec.program["id"], definition)
    result = {
        "program": {"id": spec.program["id"], "version": version},
        "parent_version": spec.program["version"],
        "score": score,
        "baseline_score": baseline,
    }
    await job.finish("succeeded", {"type": "done", **result}, result=result)
    usage = lm_usage(p.lm, *[v for v in p.lms.values() if v is not None and v is not p.lm])
    log.info("job done", job=spec.job, optimizer=spec.optimizer, version=version, score=score, run=runs)
    return Execution(outputs={}, lm=str(p.lm.model), usage=usage, extra={"job": dict(job.record)})
