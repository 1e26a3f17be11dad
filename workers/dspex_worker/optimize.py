"""Optimizers as jobs on the `optimizer` pool (docs/dspy-surface.md, "Optimizer jobs").

A request with `op: "compile"` carries `compile: {job, optimizer, options, program: {id, version}, trainset,
valset?, metric?, prompt_lm?, teacher_lm?, reflection_lm?, evaluate?}`. The worker

1. checks everything before spending a token (ValidationError naming `compile.<field>`),
2. records the job in the KV bucket `dspex_jobs` (key = job id: status, attempt, progress, result, error),
3. runs `optimizer.compile(...)` in a thread inside `dspy.context(lm=…, callbacks=[JobCallback])`, publishing
   progress events (msgpack) on `dspex.optimize.progress.<job>`: started, stage, trial (an evaluation's score
   and the best so far), heartbeat (every 2 s: LM calls, metric calls), done | failed | cancelled,
4. stops at the next LM call, module call or metric call once the job is cancelled (`dspex.optimize.cancel.<job>`
   or the KV key `<job>.cancel`, both written by the router): the callback raises `JobCancelled`, a
   BaseException, so no optimizer's `except Exception` swallows it; the reply is a `Cancelled` error,
5. evaluates the program before and after (dspy.Evaluate on the valset, else the trainset) and stores the
   optimized program as a new version of the program in KV `dspex_programs`: `state.dspy_state` is
   `module.dump_state()` (per-predictor LM settings removed, so a run uses the caller's LM), plus `score` and
   `lineage` (parent version, job, optimizer, options, metric, scores, dataset sizes, worker, attempt).

Restarts: the request stays unacked while the job runs (the worker's in-progress acks keep it from being
redelivered), so a worker that dies mid-job leaves it to JetStream, which redelivers it after the pool's AckWait
to a live worker; that worker **re-runs the job from the start** (attempt + 1 in the job record). A redelivered
job that already succeeded is answered from its record without running again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dspy
from dspy.utils.callback import BaseCallback
from nats.aio.client import Client

from . import telemetry
from .errors import DeadlineExceeded, DspexError, ValidationError
from .modules import Opt, Unsupported, check_options
from .programs import KV_PROGRAMS, apply_state
from .signatures import validate_inputs
from .wire import decode, encode

if TYPE_CHECKING:
    from .executor import Execution, Executor
    from .wire import Request

log = logging.getLogger("dspex.optimize")

KV_JOBS = "dspex_jobs"
JOBS_TTL_S = 7 * 24 * 3600
PROGRESS_PREFIX = "dspex.optimize.progress"
CANCEL_PREFIX = "dspex.optimize.cancel"
HEARTBEAT_S = 2.0
COMPILE_KEYS = {
    "job",
    "optimizer",
    "options",
    "program",
    "trainset",
    "valset",
    "metric",
    "prompt_lm",
    "teacher_lm",
    "reflection_lm",
    "evaluate",
}
COMPILABLE = ("predict", "chain_of_thought")


class Cancelled(DspexError):
    type = "Cancelled"


class JobCancelled(BaseException):  # noqa: N818 - a BaseException on purpose: optimizers catch Exception
    """Raised inside the optimizer's thread at its next LM/module/metric call once the job is cancelled."""


@dataclass(frozen=True, slots=True)
class OptimizerSpec:
    init: dict[str, Opt]
    compile: dict[str, Opt] = field(default_factory=dict)
    metric: bool = True  # needs a metric
    trainset: bool = True  # needs a trainset
    valset: bool = False  # compile() takes a valset


def _int(default: Any = None, lo: float = 0, hi: float | None = None) -> Opt:
    return Opt("int", default, min=lo, max=hi)


def _num(default: Any = None, lo: float | None = None, hi: float | None = None) -> Opt:
    return Opt("float", default, min=lo, max=hi)


BOOL = Opt("bool")
DEMO_OPTS = {"max_bootstrapped_demos": _int(), "max_labeled_demos": _int()}

OPTIMIZERS: dict[str, OptimizerSpec] = {
    "LabeledFewShot": OptimizerSpec(init={"k": _int()}, compile={"sample": BOOL}, metric=False),
    "BootstrapFewShot": OptimizerSpec(
        init={**DEMO_OPTS, "metric_threshold": _num(), "max_rounds": _int(lo=1), "max_errors": _int(lo=1)}
    ),
    "BootstrapFewShotWithRandomSearch": OptimizerSpec(
        init={
            **DEMO_OPTS,
            "max_rounds": _int(lo=1),
            "num_candidate_programs": _int(lo=1),
            "num_threads": _int(lo=1, hi=64),
            "max_errors": _int(lo=1),
            "stop_at_score": _num(),
            "metric_threshold": _num(),
        },
        compile={"labeled_sample": BOOL},
        valset=True,
    ),
    "MIPROv2": OptimizerSpec(
        init={
            **DEMO_OPTS,
            "auto": Opt("enum", choices=("light", "medium", "heavy", "off")),
            "num_candidates": _int(lo=1),
            "num_threads": _int(lo=1, hi=64),
            "max_errors": _int(lo=1),
            "seed": _int(),
            "init_temperature": _num(lo=0, hi=2),
            "metric_threshold": _num(),
        },
        compile={
            "num_trials": _int(lo=1),
            "minibatch": BOOL,
            "minibatch_size": _int(lo=1),
            "minibatch_full_eval_steps": _int(lo=1),
            "program_aware_proposer": BOOL,
            "data_aware_proposer": BOOL,
            "view_data_batch_size": _int(lo=1),
            "tip_aware_proposer": BOOL,
            "fewshot_aware_proposer": BOOL,
        },
        valset=True,
    ),
    "COPRO": OptimizerSpec(
        init={"breadth": _int(lo=2), "depth": _int(lo=1), "init_temperature": _num(lo=0, hi=2)},
        compile={"num_threads": _int(lo=1, hi=64)},
    ),
    "GEPA": OptimizerSpec(
        init={
            "auto": Opt("enum", choices=("light", "medium", "heavy")),
            "max_full_evals": _int(lo=1),
            "max_metric_calls": _int(lo=1),
            "reflection_minibatch_size": _int(lo=1),
            "candidate_selection_strategy": Opt("enum", choices=("pareto", "current_best")),
            "skip_perfect_score": BOOL,
            "use_merge": BOOL,
            "max_merge_invocations": _int(),
            "num_threads": _int(lo=1, hi=64),
            "failure_score": _num(),
            "perfect_score": _num(),
            "seed": _int(),
            "add_format_failure_as_feedback": BOOL,
        },
        valset=True,
    ),
    "SIMBA": OptimizerSpec(
        init={
            "bsize": _int(lo=1),
            "num_candidates": _int(lo=1),
            "max_steps": _int(lo=1),
            "max_demos": _int(),
            "num_threads": _int(lo=1, hi=64),
            "temperature_for_sampling": _num(lo=0, hi=2),
            "temperature_for_candidates": _num(lo=0, hi=2),
            "demo_input_field_maxlen": _int(lo=1),
        },
        compile={"seed": _int()},
    ),
    "Ensemble": OptimizerSpec(
        init={"size": _int(lo=1)}, compile={"programs": Opt("list", required=True)}, metric=False, trainset=False
    ),
    "BootstrapFinetune": OptimizerSpec(init={"multitask": BOOL, "train_kwargs": Opt("map")}, metric=False),
}


@dataclass(slots=True)
class CompileSpec:
    job: str
    optimizer: str
    init: dict[str, Any]
    compile: dict[str, Any]
    program: dict[str, Any]
    trainset: list[dict[str, Any]]
    valset: list[dict[str, Any]] | None
    metric: dict[str, Any] | None
    prompt_lm: dict[str, Any] | None
    teacher_lm: dict[str, Any] | None
    reflection_lm: dict[str, Any] | None
    evaluate: bool
    options: dict[str, Any]


def _lm_map(value: Any, where: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ValidationError(f"`{where}` must be an LM map {{model, api_base?, …}}", field=where)
    return value


def parse_compile(raw: Any, request_id: str) -> CompileSpec:
    """Checks the `compile` map (shape, optimizer name, options); datasets and metric are checked later."""
    if not isinstance(raw, dict):
        raise ValidationError("op 'compile' needs a `compile` map", field="compile")
    unknown = sorted(set(raw) - COMPILE_KEYS)
    if unknown:
        raise ValidationError(f"unknown compile option(s): {', '.join(unknown)}", field=f"compile.{unknown[0]}")
    job = raw.get("job", request_id)
    if not isinstance(job, str) or not job or not all(c.isalnum() or c in "-_" for c in job):
        raise ValidationError("`compile.job` must be an id of letters, digits, '-' and '_'", field="compile.job")
    name = raw.get("optimizer")
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValidationError(
            f"`compile.optimizer` must be one of {', '.join(OPTIMIZERS)} (got {name!r})",
            field="compile.optimizer",
            details={"supported": list(OPTIMIZERS)},
        )
    spec = OPTIMIZERS[name]
    options = raw.get("options") or {}
    checked = check_options(options, {**spec.init, **spec.compile}, prefix="compile.options")
    init = {k: checked[k] for k in spec.init if k in options}
    comp = {k: checked[k] for k in spec.compile if k in options}
    program = raw.get("program")
    if (
        not isinstance(program, dict)
        or not isinstance(program.get("id"), str)
        or not isinstance(program.get("version"), int)
    ):
        raise ValidationError("`compile.program` must be {id, version} of a stored program", field="compile.program")
    trainset = raw.get("trainset") or []
    if not isinstance(trainset, list):
        raise ValidationError("`compile.trainset` must be a list of example maps", field="compile.trainset")
    if spec.trainset and not trainset:
        raise ValidationError(f"{name} needs a non-empty `compile.trainset`", field="compile.trainset")
    valset = raw.get("valset")
    if valset is not None and not isinstance(valset, list):
        raise ValidationError("`compile.valset` must be a list of example maps", field="compile.valset")
    metric = raw.get("metric")
    if isinstance(metric, str):
        metric = {"name": metric}
    if metric is not None and (not isinstance(metric, dict) or not isinstance(metric.get("name"), str)):
        raise ValidationError("`compile.metric` must be a metric name or {name, args}", field="compile.metric")
    if spec.metric and metric is None:
        raise ValidationError(f"{name} needs `compile.metric`", field="compile.metric")
    evaluate = raw.get("evaluate", True)
    if not isinstance(evaluate, bool):
        raise ValidationError("`compile.evaluate` must be a boolean", field="compile.evaluate")
    _check_optimizer_rules(name, init, comp, len(trainset))
    return CompileSpec(
        job=job,
        optimizer=name,
        init=init,
        compile=comp,
        program=program,
        trainset=trainset,
        valset=valset,
        metric=metric,
        prompt_lm=_lm_map(raw.get("prompt_lm"), "compile.prompt_lm"),
        teacher_lm=_lm_map(raw.get("teacher_lm"), "compile.teacher_lm"),
        reflection_lm=_lm_map(raw.get("reflection_lm"), "compile.reflection_lm"),
        evaluate=evaluate,
        options=dict(options),
    )


def _check_optimizer_rules(name: str, init: dict[str, Any], comp: dict[str, Any], n_train: int) -> None:
    """Combinations DSPy would reject only after starting."""
    if name == "MIPROv2":
        auto = init.get("auto")
        if auto is None:
            auto = "off" if ("num_candidates" in init or "num_trials" in comp) else "light"
        if auto == "off":
            for key, where in (("num_candidates", init), ("num_trials", comp)):
                if key not in where:
                    raise ValidationError(
                        f"MIPROv2 without `auto` needs `{key}`", field=f"compile.options.{key}", details={"auto": "off"}
                    )
        elif "num_candidates" in init or "num_trials" in comp:
            raise ValidationError(
                f"MIPROv2 with auto={auto!r} chooses num_candidates and num_trials itself; set auto: 'off'",
                field="compile.options.auto",
            )
        init["auto"] = None if auto == "off" else auto
    if name == "GEPA":
        budgets = [k for k in ("auto", "max_full_evals", "max_metric_calls") if k in init]
        if len(budgets) != 1:
            raise ValidationError(
                "GEPA needs exactly one budget: `auto`, `max_full_evals` or `max_metric_calls`",
                field="compile.options.max_metric_calls",
            )
    if name == "SIMBA":
        bsize = init.get("bsize", 32)
        if bsize > n_train:
            raise ValidationError(
                f"SIMBA's `bsize` ({bsize}) must not exceed the trainset size ({n_train})",
                field="compile.options.bsize",
            )


def to_examples(rows: list[Any], signature_json: dict[str, Any], where: str) -> list[Any]:
    """Example maps (inputs and labels) as dspy.Examples whose inputs are the signature's input fields."""
    names = [f["name"] for f in signature_json["inputs"]]
    examples = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationError(f"`{where}[{i}]` must be a map of fields", field=f"{where}[{i}]")
        try:
            inputs = validate_inputs(signature_json, {k: row[k] for k in names if k in row})
        except ValidationError as exc:
            raise ValidationError(
                f"{where}[{i}]: {exc.message}", field=f"{where}[{i}].{exc.field}", details=exc.details
            ) from None
        examples.append(dspy.Example(**{**row, **inputs}).with_inputs(*[n for n in names if n in inputs]))
    return examples


def resolve_job_metric(metric: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A named metric from metrics.py's registry (`answer_exact_match`, `answer_passage_match`, allow-listed paths)."""
    from .metrics import resolve_metric

    args = metric.get("args") or {}
    if not isinstance(args, dict):
        raise ValidationError("`compile.metric.args` must be a map", field="compile.metric.args")
    try:
        return resolve_metric(metric["name"]), dict(args)
    except ValidationError as exc:
        raise ValidationError(exc.message, field="compile.metric", details=exc.details) from None


def numeric(value: Any) -> float | None:
    if not isinstance(value, bool | int | float) and hasattr(value, "score"):
        value = value.score
    if isinstance(value, bool | int | float):
        return float(value)
    return None


class JobRun:
    """Progress, cancellation and the job record of one running compile (shared with the optimizer's thread)."""

    def __init__(self, nc: Client, jobs: Any, job: str, record: dict[str, Any], loop: asyncio.AbstractEventLoop):
        self.nc = nc
        self.jobs = jobs
        self.job = job
        self.record = record
        self.loop = loop
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.seq = 0
        self.stage = "starting"
        self.trials = 0
        self.lm_calls = 0
        self.metric_calls = 0
        self.metric_sum = 0.0
        self.best_score: float | None = None
        self.last_score: float | None = None
        self.started = time.time()

    # -- called from any thread -------------------------------------------------------------------------------
    def check(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled(self.job)

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return {
                "stage": self.stage,
                "trials": self.trials,
                "lm_calls": self.lm_calls,
                "metric_calls": self.metric_calls,
                "metric_mean": round(self.metric_sum / self.metric_calls, 4) if self.metric_calls else None,
                "best_score": self.best_score,
                "last_score": self.last_score,
                "elapsed_ms": round((time.time() - self.started) * 1000),
            }

    def emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, **fields}
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def set_stage(self, stage: str) -> None:
        with self.lock:
            self.stage = stage
        self.emit("stage")

    def lm_called(self) -> None:
        self.check()
        with self.lock:
            self.lm_calls += 1

    def metric_called(self, score: float | None) -> None:
        with self.lock:
            self.metric_calls += 1
            if score is not None:
                self.metric_sum += score

    def trial(self, score: float) -> None:
        with self.lock:
            self.trials += 1
            self.last_score = score
            if self.stage == "compiling" and (self.best_score is None or score > self.best_score):
                self.best_score = score
        self.emit("trial", score=score)

    # -- event loop side ----------------------------------------------------------------------------------------
    async def publish(self, event: dict[str, Any]) -> None:
        body = {
            "v": 1,
            "job": self.job,
            "seq": self.seq,
            "ts": int(time.time() * 1000),
            "attempt": self.record.get("attempts", 1),
            **self.counters(),
            **event,
        }
        self.seq += 1
        with contextlib.suppress(Exception):
            await self.nc.publish(f"{PROGRESS_PREFIX}.{self.job}", encode(body))

    async def save(self, **fields: Any) -> None:
        self.record.update(fields)
        self.record["progress"] = self.counters()
        self.record["updated_at"] = int(time.time() * 1000)
        with contextlib.suppress(Exception):
            await self.jobs.put(self.job, json.dumps(self.record).encode())

    async def run_publisher(self) -> None:
        last_save = 0.0
        while True:
            try:
                event = await asyncio.wait_for(self.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                event = {"type": "heartbeat"}
                if await cancel_requested(self.jobs, self.job):
                    self.cancel.set()
            if event is None:
                return
            await self.publish(event)
            if event["type"] in ("trial", "stage") or time.time() - last_save > 1.0:
                last_save = time.time()
                await self.save()


class JobCallback(BaseCallback):  # type: ignore[misc]
    """Counts LM calls and evaluation trials, and ends the run at its next call once the job is cancelled."""

    def __init__(self, run: JobRun) -> None:
        self.run = run

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.lm_called()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.check()

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.check()

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        score = getattr(outputs, "score", None)
        if isinstance(score, int | float):
            self.run.trial(float(score))


class JobMetric:
    """The named metric as every optimizer calls it, GEPA's five-argument form included; counts its calls."""

    def __init__(self, name: str, fn: Any, args: dict[str, Any], run: JobRun) -> None:
        self.name = name
        self.fn = fn
        self.args = args
        self.run = run

    def __call__(self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        self.run.check()
        value = self.fn(gold, pred, trace, **self.args)
        score = numeric(value)
        self.run.metric_called(score)
        return float(value) if isinstance(value, bool) else value


async def open_bucket(nc: Client, bucket: str, **config: Any) -> Any:
    js = nc.jetstream()
    try:
        return await js.key_value(bucket)
    except Exception:
        with contextlib.suppress(Exception):
            return await js.create_key_value(bucket=bucket, **config)
        return await js.key_value(bucket)  # created meanwhile by someone else


async def read_json(kv: Any, key: str, revision: int | None = None) -> dict[str, Any] | None:
    try:
        entry = await (kv.get(key, revision=revision) if revision is not None else kv.get(key))
    except Exception:
        return None
    if entry is None or not entry.value:
        return None
    try:
        value = json.loads(entry.value)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def cancel_requested(jobs: Any, job: str) -> bool:
    try:
        entry = await jobs.get(f"{job}.cancel")
    except Exception:
        return False
    return bool(entry is not None and entry.value)


def strip_lm_state(state: Any) -> Any:
    """`dump_state` JSON without per-predictor LM settings (endpoints, models), so runs use the caller's LM."""
    if isinstance(state, dict):
        return {k: (None if k == "lm" else strip_lm_state(v)) for k, v in state.items()}
    if isinstance(state, list):
        return [strip_lm_state(v) for v in state]
    return state


def lm_usage(*lms: Any) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for lm in lms:
        for entry in getattr(lm, "history", None) or []:
            usage = entry.get("usage") if isinstance(entry, dict) else None
            for key in total:
                total[key] += int((usage or {}).get(key) or 0)
    return total


def build_optimizer(spec: CompileSpec, metric: Any, lms: dict[str, Any]) -> Any:
    kwargs = dict(spec.init)
    name = spec.optimizer
    if name == "LabeledFewShot":
        return dspy.LabeledFewShot(**kwargs)
    if name == "Ensemble":
        return dspy.Ensemble(reduce_fn=dspy.majority, **kwargs)
    if lms.get("teacher") is not None and name in (
        "BootstrapFewShot",
        "BootstrapFewShotWithRandomSearch",
        "MIPROv2",
        "SIMBA",
    ):
        kwargs["teacher_settings"] = {"lm": lms["teacher"]}
    if name == "BootstrapFewShot":
        return dspy.BootstrapFewShot(metric=metric, **kwargs)
    if name == "BootstrapFewShotWithRandomSearch":
        return dspy.BootstrapFewShotWithRandomSearch(metric=metric, **kwargs)
    if name == "MIPROv2":
        return dspy.MIPROv2(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    if name == "COPRO":
        return dspy.COPRO(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    if name == "GEPA":
        return dspy.GEPA(metric=metric, reflection_lm=lms["reflection"], **kwargs)
    if name == "SIMBA":
        return dspy.SIMBA(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    raise Unsupported(f"optimizer {name} is not supported here")  # pragma: no cover


def check_finetune(lm: Any, config: dict[str, Any] | None) -> None:
    """BootstrapFinetune trains through the provider's fine-tuning API; an OpenAI-compatible endpoint at a custom
    `api_base` (the LM double, vLLM, …) has none that DSPy can drive."""
    provider = getattr(lm, "provider", None)
    api_base = (config or {}).get("api_base") or getattr(lm, "kwargs", {}).get("api_base")
    if api_base or provider is None or not getattr(provider, "finetunable", False):
        raise Unsupported(
            f"BootstrapFinetune needs an LM provider with a fine-tuning API that DSPy drives; the job's LM "
            f"{getattr(lm, 'model', '?')!r}{' at ' + str(api_base) if api_base else ''} does not offer one",
            details={"optimizer": "BootstrapFinetune", "model": str(getattr(lm, "model", ""))},
        )


def evaluate_program(program: Any, devset: list[Any], metric: Any, num_threads: int) -> float:
    evaluator = dspy.Evaluate(
        devset=devset, metric=metric, num_threads=num_threads, display_progress=False, display_table=False
    )
    return float(evaluator(program).score)


async def load_definition(nc: Client, program: dict[str, Any], field: str) -> dict[str, Any]:
    kv = await open_bucket(nc, KV_PROGRAMS, history=5)
    definition = await read_json(kv, program["id"], program.get("version"))
    if definition is None:
        where = f" at version {program['version']}" if program.get("version") is not None else ""
        raise ValidationError(f"no program {program['id']!r}{where}", field=field)
    return definition


def _member(definition: dict[str, Any], version: int) -> dict[str, Any]:
    state = definition.get("state") or {}
    return {
        "id": definition.get("id"),
        "version": version,
        "module": definition.get("module"),
        "dspy_state": state.get("dspy_state"),
        "demos": state.get("demos"),
    }


async def ensemble_members(nc: Client, base: dict[str, Any], raw: list[Any]) -> list[dict[str, Any]]:
    kv = await open_bucket(nc, KV_PROGRAMS, history=5)
    members = []
    for i, ref in enumerate(raw):
        where = f"compile.options.programs[{i}]"
        if isinstance(ref, str):
            ref = {"id": ref}
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise ValidationError(f"`{where}` must be a program id or {{id, version?}}", field=where)
        version = ref.get("version")
        try:
            entry = await (kv.get(ref["id"], revision=version) if version is not None else kv.get(ref["id"]))
            definition = json.loads(entry.value)
        except Exception:
            raise ValidationError(f"no program {ref['id']!r}", field=where) from None
        if definition.get("module") not in COMPILABLE:
            raise ValidationError("ensemble members must be predict or chain_of_thought programs", field=where)
        if json.dumps(definition.get("signature"), sort_keys=True) != json.dumps(base["signature"], sort_keys=True):
            raise ValidationError("ensemble members must share the program's signature", field=where)
        members.append(_member(definition, int(entry.revision)))
    return members


async def run_compile(executor: Executor, request: Request) -> Execution:
    """Runs one compile job; a job that fails before it starts is recorded (and announced) as failed too."""
    try:
        return await _run_compile(executor, request)
    except _Recorded as done:
        raise done.error from None
    except Exception as exc:
        await _record_early_failure(executor.programs.nc, request, exc)
        raise


class _Recorded(Exception):  # noqa: N818 - internal: the error is already in the job record
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _record_early_failure(nc: Client | None, request: Request, exc: Exception) -> None:
    from .lm import classify_exception

    raw = request.compile if isinstance(request.compile, dict) else {}
    job = raw.get("job", request.id)
    if nc is None or not isinstance(job, str) or not job or not all(c.isalnum() or c in "-_" for c in job):
        return
    error = classify_exception(exc).to_wire()
    with contextlib.suppress(Exception):
        jobs = await open_bucket(nc, KV_JOBS, history=5, ttl=JOBS_TTL_S)
        record = await read_json(jobs, job) or {"id": job}
        now = int(time.time() * 1000)
        record.update(status="failed", error=error, finished_at=now, updated_at=now)
        await jobs.put(job, json.dumps(record).encode())
        event = {"v": 1, "job": job, "seq": 0, "ts": now, "type": "failed", "error": error, "attempt": 0}
        await nc.publish(f"{PROGRESS_PREFIX}.{job}", encode(event))


async def _run_compile(executor: Executor, request: Request) -> Execution:
    from .ensemble import EnsembleProgram
    from .executor import Execution

    spec = parse_compile(request.compile, request.id)
    nc = executor.programs.nc
    if nc is None:
        raise ValidationError("compile jobs need the worker's NATS connection", field="compile")
    task_lm, adapter = executor.lms.resolve(request.lm)
    lm = task_lm.copy()  # a copy: its history is this job's usage
    jobs = await open_bucket(nc, KV_JOBS, history=5, ttl=JOBS_TTL_S)
    record = await read_json(jobs, spec.job) or {}
    if record.get("status") == "succeeded" and isinstance(record.get("result"), dict):
        # A redelivery of a job that finished: answer from the record, do not run it again.
        return Execution(outputs={}, lm=str(lm.model), usage=lm_usage(), extra={"job": record})
    now = int(time.time() * 1000)
    record = {
        **record,
        "id": spec.job,
        "optimizer": spec.optimizer,
        "program": spec.program,
        "created_at": record.get("created_at", now),
    }
    run = JobRun(nc, jobs, spec.job, record, asyncio.get_running_loop())
    if await cancel_requested(jobs, spec.job):
        await run.save(status="cancelled", finished_at=now)
        await run.publish({"type": "cancelled"})
        raise _Recorded(Cancelled(f"job {spec.job} was cancelled before it started", details={"job": spec.job}))

    # Everything is checked before the job counts as started.
    base = await load_definition(nc, spec.program, "compile.program")
    if base.get("module") not in COMPILABLE and spec.optimizer != "Ensemble":
        raise ValidationError(
            f"only {' and '.join(COMPILABLE)} programs can be compiled (program is {base.get('module')!r})",
            field="compile.program",
        )
    signature_json = base["signature"]
    _, signature = executor.signatures.get_or_build(signature_json)
    trainset = to_examples(spec.trainset, signature_json, "compile.trainset")
    valset = to_examples(spec.valset, signature_json, "compile.valset") if spec.valset else None
    metric: JobMetric | None = None
    if spec.metric is not None:
        fn, args = resolve_job_metric(spec.metric)
        metric = JobMetric(spec.metric["name"], fn, args, run)
    lms: dict[str, Any] = {
        "prompt": executor.lms.get(spec.prompt_lm).copy() if spec.prompt_lm else None,
        "teacher": executor.lms.get(spec.teacher_lm).copy() if spec.teacher_lm else None,
        "reflection": executor.lms.get(spec.reflection_lm).copy() if spec.reflection_lm else lm,
    }
    members: list[dict[str, Any]] = []
    if spec.optimizer == "Ensemble":
        members = await ensemble_members(nc, base, spec.compile.pop("programs"))
    if spec.optimizer == "BootstrapFinetune":
        check_finetune(lm, request.lm)
    with dspy.context(lm=lm, adapter=adapter):  # MIPROv2 reads its task model from the settings when it is built
        optimizer: Any = None if spec.optimizer == "Ensemble" else build_optimizer(spec, metric, lms)
    module_type: Any = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}.get(base["module"])
    student = module_type(signature) if module_type is not None else None
    if student is not None:
        apply_state(student, base.get("state"))
    devset = valset or trainset
    threads = int(spec.init.get("num_threads") or spec.compile.get("num_threads") or 1)

    attempts = int(record.get("attempts", 0)) + 1
    await run.save(
        status="running",
        attempts=attempts,
        worker=executor.worker_id,
        started_at=now,
        error=None,
    )
    await run.publish({"type": "started", "optimizer": spec.optimizer, "program": spec.program})
    publisher = asyncio.create_task(run.run_publisher())

    async def on_cancel(msg: Any) -> None:
        run.cancel.set()

    sub = await nc.subscribe(f"{CANCEL_PREFIX}.{spec.job}", cb=on_cancel)
    if await cancel_requested(jobs, spec.job):  # cancelled while we were subscribing
        run.cancel.set()
    callbacks = [*telemetry.dspy_callbacks(), JobCallback(run)]

    def work() -> tuple[Any, float | None, float | None]:
        with dspy.context(lm=lm, adapter=adapter, callbacks=callbacks):
            baseline = None
            can_score = spec.evaluate and metric is not None and bool(devset)
            if can_score and student is not None:
                run.set_stage("baseline")
                baseline = evaluate_program(student, devset, metric, threads)
            run.set_stage("compiling")
            if spec.optimizer == "Ensemble":
                program: Any = EnsembleProgram(signature)
                program.set_members(members, spec.init.get("size"))
            elif spec.optimizer in ("LabeledFewShot", "Ensemble"):
                program = optimizer.compile(student, trainset=trainset, **spec.compile)
            elif spec.optimizer == "COPRO":
                eval_kwargs = {"num_threads": spec.compile.get("num_threads", 1), "display_progress": False}
                program = optimizer.compile(student, trainset=trainset, eval_kwargs=eval_kwargs)
            elif spec.optimizer == "BootstrapFinetune":  # pragma: no cover - no provider here to test it with
                program = optimizer.compile(student, trainset=trainset)
            else:
                extra = {"valset": valset} if (OPTIMIZERS[spec.optimizer].valset and valset) else {}
                program = optimizer.compile(student, trainset=trainset, **extra, **spec.compile)
            score = None
            if can_score:
                run.set_stage("final")
                score = evaluate_program(program, devset, metric, threads)
            run.check()
            return program, baseline, score

    try:
        try:
            program, baseline, score = await asyncio.to_thread(work)
        except asyncio.CancelledError:
            run.cancel.set()  # the deadline passed: stop the thread at its next call
            raise
    except JobCancelled:
        await run.save(status="cancelled", finished_at=int(time.time() * 1000))
        await _stop(sub, run, publisher, {"type": "cancelled"})
        raise _Recorded(
            Cancelled(f"job {spec.job} was cancelled", details={"job": spec.job, "attempt": attempts})
        ) from None
    except BaseException as exc:
        from .lm import classify_exception

        if isinstance(exc, Exception):
            error: DspexError = classify_exception(exc)
        else:  # the worker's deadline for the request cancelled this task
            error = DeadlineExceeded("the job's deadline passed while it was running")
        await run.save(status="failed", error=error.to_wire(), finished_at=int(time.time() * 1000))
        await _stop(sub, run, publisher, {"type": "failed", "error": error.to_wire()})
        if isinstance(exc, Exception):
            raise _Recorded(exc) from exc
        raise

    run.set_stage("storing")
    state = json.loads(json.dumps(strip_lm_state(program.dump_state()), default=str))
    definition = {
        **base,
        "module": "ensemble" if spec.optimizer == "Ensemble" else base["module"],
        "state": {"dspy_state": state},
        "created_at": int(time.time() * 1000),
        "score": score,
        "lineage": {
            "parent": {"id": spec.program["id"], "version": spec.program["version"]},
            "job": spec.job,
            "optimizer": spec.optimizer,
            "options": spec.options,
            "metric": spec.metric,
            "score": score,
            "baseline_score": baseline,
            "scored_on": ("valset" if valset else "trainset") if score is not None else None,
            "trainset_size": len(trainset),
            "valset_size": len(valset) if valset else 0,
            "worker": executor.worker_id,
            "attempt": attempts,
        },
    }
    kv = await open_bucket(nc, KV_PROGRAMS, history=5)
    version = int(await kv.put(spec.program["id"], json.dumps(definition).encode()))
    result = {
        "program": {"id": spec.program["id"], "version": version},
        "parent_version": spec.program["version"],
        "score": score,
        "baseline_score": baseline,
    }
    await run.save(status="succeeded", result=result, finished_at=int(time.time() * 1000))
    await _stop(sub, run, publisher, {"type": "done", **result})
    usage = lm_usage(lm, *[v for v in lms.values() if v is not None and v is not lm])
    log.info("job %s done: %s v%d score=%s", spec.job, spec.optimizer, version, score)
    return Execution(outputs={}, lm=str(lm.model), usage=usage, extra={"job": run.record})


async def _stop(sub: Any, run: JobRun, publisher: asyncio.Task[None], last: dict[str, Any]) -> None:
    """Publishes the queued events, then `last` (done, failed or cancelled), and stops the publisher."""
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    run.queue.put_nowait(last)
    run.queue.put_nowait(None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(publisher, 5)


def decode_event(data: bytes) -> Any:  # pragma: no cover - used by tests and tools
    return decode(data)
