"""The DSPy surface: every module with its constructor options, typed results, and streaming.

`Executor.run` hands these ops here (docs/dspy-surface.md has the full option tables):

* `react` (dspy.ReAct; TypeScript tools, extra `trajectory`), `program_of_thought`, `rlm` (Deno sandbox),
* `multi_chain_comparison` (outputs gain `rationale`), `best_of_n`, `refine` (named rewards, rewards.py),
* `parallel` (dspy.Parallel over `batch`, extra `results`), `majority` (n completions + dspy.majority),
* `ensemble` (a stored dspy.Ensemble program, ensemble.py), `compile` (optimizers as jobs, optimize.py).

Any module op (and `predict` / `chain_of_thought`) may carry `stream: {subject, fields?, status?}` (streaming.py).
Options are checked before any LM call; a bad one is a ValidationError whose `field` names it (`module.n`).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from . import telemetry
from .errors import DspexError, ValidationError, WorkerError
from .rewards import resolve_reward
from .signatures import validate_inputs
from .streaming import check_stream, run_streamed
from .tools import build_tools

if TYPE_CHECKING:
    from .executor import Execution, Executor
    from .wire import Request

INNER_MODULES: dict[str, Any] = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}
SANDBOX_OPS = ("program_of_thought", "rlm")


class Unsupported(DspexError):
    """The module or optimizer cannot run here (no Deno sandbox; a provider without fine-tuning)."""

    type = "Unsupported"


@dataclass(frozen=True, slots=True)
class Opt:
    kind: str  # int | float | bool | str | enum | list | map
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_options(options: Any, spec: dict[str, Opt], prefix: str = "module") -> dict[str, Any]:
    """Checks an options map against `spec`: unknown keys, required keys, types and ranges; fills defaults."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValidationError(f"`{prefix}` must be a map of options", field=prefix)
    unknown = sorted(set(options) - set(spec))
    if unknown:
        allowed = ", ".join(sorted(spec)) or "none"
        raise ValidationError(
            f"unknown option(s) {', '.join(unknown)} in `{prefix}`; allowed: {allowed}", field=f"{prefix}.{unknown[0]}"
        )
    out: dict[str, Any] = {}
    for key, opt in spec.items():
        where = f"{prefix}.{key}"
        value = options.get(key)
        if value is None:
            if opt.required:
                raise ValidationError(f"`{where}` is required", field=where)
            out[key] = opt.default
            continue
        if opt.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"`{where}` must be an integer (got {_describe(value)})", field=where)
        elif opt.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"`{where}` must be a number (got {_describe(value)})", field=where)
            value = float(value)
        elif opt.kind == "bool":
            if not isinstance(value, bool):
                raise ValidationError(f"`{where}` must be a boolean (got {_describe(value)})", field=where)
        elif opt.kind == "str":
            if not isinstance(value, str) or not value:
                raise ValidationError(f"`{where}` must be a non-empty string (got {_describe(value)})", field=where)
        elif opt.kind == "enum":
            if value not in opt.choices:
                raise ValidationError(f"`{where}` must be one of {', '.join(opt.choices)} (got {value!r})", field=where)
        elif opt.kind == "list":
            if not isinstance(value, list):
                raise ValidationError(f"`{where}` must be a list (got {_describe(value)})", field=where)
        elif opt.kind == "map":
            if not isinstance(value, dict):
                raise ValidationError(f"`{where}` must be a map (got {_describe(value)})", field=where)
        if opt.kind in ("int", "float"):
            assert isinstance(value, int | float)
            if opt.min is not None and value < opt.min:
                raise ValidationError(f"`{where}` must be at least {opt.min:g} (got {value})", field=where)
            if opt.max is not None and value > opt.max:
                raise ValidationError(f"`{where}` must be at most {opt.max:g} (got {value})", field=where)
        out[key] = value
    return out


def _demos(raw: Any, where: str = "module.demos") -> list[Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        raise ValidationError(f"`{where}` must be a list of maps", field=where)
    return [dspy.Example(**d) for d in raw]


def inner_module(kind: str, signature: Any, demos: Any = None) -> Any:
    module = INNER_MODULES[kind](signature)
    examples = _demos(demos)
    if examples:
        for predictor in module.predictors():
            predictor.demos = list(examples)
    return module


INNER = Opt("enum", "predict", choices=tuple(INNER_MODULES))
DEMOS = Opt("list")

OPTIONS: dict[str, dict[str, Opt]] = {
    "react": {"tools": Opt("list", required=True), "max_iters": Opt("int", 5, min=1, max=50)},
    "program_of_thought": {"max_iters": Opt("int", 3, min=1, max=10)},
    "rlm": {"max_iters": Opt("int", 10, min=1, max=50), "max_llm_calls": Opt("int", 20, min=1, max=200)},
    "multi_chain_comparison": {
        "m": Opt("int", 3, min=2, max=10),
        "temperature": Opt("float", 0.7, min=0, max=2),
        "completions": Opt("list"),
        "demos": DEMOS,
    },
    "best_of_n": {
        "module": INNER,
        "n": Opt("int", 3, min=1, max=20),
        "reward": Opt("str", required=True),
        "reward_args": Opt("map"),
        "threshold": Opt("float", 1.0),
        "fail_count": Opt("int", None, min=1, max=20),
        "demos": DEMOS,
    },
    "parallel": {
        "module": INNER,
        "num_threads": Opt("int", 4, min=1, max=32),
        "max_errors": Opt("int", None, min=1),
        "demos": DEMOS,
    },
    "majority": {"module": INNER, "n": Opt("int", 5, min=1, max=20), "field": Opt("str"), "demos": DEMOS},
    "ensemble": {},
}
OPTIONS["refine"] = OPTIONS["best_of_n"]


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
    usage: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Context:
    executor: Executor
    request: Request
    signature: Any
    sig_key: str
    inputs: dict[str, Any]
    lm: Any


def trajectory_steps(trajectory: dict[str, Any]) -> list[dict[str, Any]]:
    """ReAct's flat trajectory (`thought_0`, `tool_name_0`, `tool_args_0`, `observation_0`, …) as a list of steps."""
    from .executor import to_wire_value

    steps: list[dict[str, Any]] = []
    i = 0
    while f"tool_name_{i}" in trajectory or f"thought_{i}" in trajectory:
        steps.append(
            {
                "thought": to_wire_value(trajectory.get(f"thought_{i}")),
                "tool_name": to_wire_value(trajectory.get(f"tool_name_{i}")),
                "tool_args": to_wire_value(trajectory.get(f"tool_args_{i}") or {}),
                "observation": to_wire_value(trajectory.get(f"observation_{i}")),
            }
        )
        i += 1
    return steps


async def plan_module(c: Context) -> Plan:
    """predict / chain_of_thought (streamed) and stored programs, ensembles included."""
    op = c.request.op
    if c.request.program is not None:
        module = await c.executor.programs.get(c.request.program)
    elif op == "ensemble":
        raise ValidationError("op 'ensemble' runs a stored ensemble program: give `program`", field="program")
    else:
        module = c.executor._module(op, c.sig_key, c.signature, c.request.module)
    leading = ["reasoning"] if op == "chain_of_thought" else []
    return Plan(module, dict(c.inputs), is_async=True, leading=leading, raw_stream=op == "ensemble")


async def plan_react(c: Context) -> Plan:
    opts = check_options(c.request.module, OPTIONS["react"])
    tools = build_tools(c.executor.programs.nc, opts["tools"], c.request.id)
    module = dspy.ReAct(c.signature, tools=tools, max_iters=opts["max_iters"])
    return Plan(
        module,
        dict(c.inputs),
        is_async=True,
        leading=["reasoning"],
        extra=lambda p: {"trajectory": trajectory_steps(p.get("trajectory") or {})},
    )


def find_deno() -> str | None:
    """The Deno binary DSPy's sandbox would use: the `deno` Python package's, else `deno` on PATH."""
    try:
        from deno import find_deno_bin  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return str(find_deno_bin())
    except Exception:
        return shutil.which("deno")


SANDBOX_DIR = Path(__file__).parent / "sandbox"


def sandbox_interpreter() -> Any:
    """DSPy's `PythonInterpreter` (Deno + Pyodide) with deno.land's `std/io` served from this package.

    DSPy's runner.js imports `https://deno.land/std@0.186.0/io/mod.ts` (for `readLines`) when the sandbox starts;
    an import map points it at `sandbox/std_io.ts`, so the sandbox needs no access to deno.land (Deno downloads
    Pyodide from the npm registry on first use and caches it). The default Deno command is a list DSPy builds in
    `PythonInterpreter.__init__`; the map goes right after `run` and the directory joins `--allow-read`."""
    from dspy.primitives.python_interpreter import PythonInterpreter

    interpreter = PythonInterpreter()
    command = getattr(interpreter, "deno_command", None)
    if isinstance(command, list) and "run" in command:
        command.insert(command.index("run") + 1, f"--import-map={SANDBOX_DIR / 'import_map.json'}")
        for i, arg in enumerate(command):
            if isinstance(arg, str) and arg.startswith("--allow-read="):
                command[i] = f"{arg},{SANDBOX_DIR}"
    return interpreter


def _need_deno(op: str) -> None:
    if find_deno() is None:
        raise Unsupported(
            f"op {op!r} runs generated code in DSPy's Deno 2.x + Pyodide sandbox, and this worker has no Deno: "
            "install the PyPI package `deno` (dspy[deno]) in the worker's environment or put deno 2.x on PATH",
            details={"op": op, "needs": "deno>=2,<3"},
        )


async def plan_program_of_thought(c: Context) -> Plan:
    opts = check_options(c.request.module, OPTIONS["program_of_thought"])
    _need_deno("program_of_thought")
    module = dspy.ProgramOfThought(c.signature, max_iters=opts["max_iters"], interpreter_factory=sandbox_interpreter)
    return Plan(module, dict(c.inputs), is_async=False)


async def plan_rlm(c: Context) -> Plan:
    opts = check_options(c.request.module, OPTIONS["rlm"])
    _need_deno("rlm")
    module = dspy.RLM(
        c.signature,
        max_iters=opts["max_iters"],
        max_llm_calls=opts["max_llm_calls"],
        interpreter_factory=sandbox_interpreter,
    )
    return Plan(module, dict(c.inputs), is_async=True)


def _check_completions(raw: list[Any], m: int, names: list[str]) -> list[dict[str, Any]]:
    if len(raw) != m:
        raise ValidationError(f"`module.completions` must hold exactly m={m} completions", field="module.completions")
    last = names[-1]
    for i, comp in enumerate(raw):
        where = f"module.completions[{i}]"
        if not isinstance(comp, dict):
            raise ValidationError(f"`{where}` must be a map", field=where)
        if not isinstance(comp.get("reasoning", comp.get("rationale")), str):
            raise ValidationError(f"`{where}` needs a `reasoning` string", field=f"{where}.reasoning")
        if last not in comp:
            raise ValidationError(f"`{where}` needs the output field `{last}`", field=f"{where}.{last}")
    return [dict(comp) for comp in raw]


async def plan_multi_chain_comparison(c: Context) -> Plan:
    from .executor import to_wire_value

    opts = check_options(c.request.module, OPTIONS["multi_chain_comparison"])
    m: int = opts["m"]
    names = list(c.signature.output_fields)
    usage: list[dict[str, Any]] = []
    if opts["completions"] is not None:
        completions = _check_completions(opts["completions"], m, names)
    else:
        # M reasoning attempts with chain of thought, one rollout each (distinct cache keys, the given temperature).
        cot = inner_module("chain_of_thought", c.signature, opts["demos"])

        async def attempt(i: int) -> Any:
            with dspy.context(lm=c.lm.copy(rollout_id=i, temperature=opts["temperature"])):
                return await cot.acall(**c.inputs)

        predictions = await asyncio.gather(*(attempt(i) for i in range(m)))
        completions = []
        for p in predictions:
            completions.append({k: to_wire_value(p.get(k)) for k in ["reasoning", *names]})
            usage.append(p.get_lm_usage() or {})
    module = dspy.MultiChainComparison(c.signature, M=m, temperature=opts["temperature"])
    return Plan(
        module,
        {"completions": completions, **c.inputs},
        is_async=False,
        leading=["rationale"],
        extra=lambda p: {"completions": completions},
        usage=usage,
    )


async def _plan_best(c: Context, refine: bool) -> Plan:
    op = "refine" if refine else "best_of_n"
    opts = check_options(c.request.module, OPTIONS[op])
    reward = resolve_reward(opts["reward"], opts["reward_args"])
    inner = inner_module(opts["module"], c.signature, opts["demos"])
    cls = dspy.Refine if refine else dspy.BestOfN
    module = cls(
        module=inner, N=opts["n"], reward_fn=reward, threshold=opts["threshold"], fail_count=opts["fail_count"]
    )
    if refine:
        module.reward_fn_code = reward.source  # the named function, not the wrapper class
    return Plan(
        module,
        dict(c.inputs),
        is_async=False,
        leading=["reasoning"] if opts["module"] == "chain_of_thought" else [],
        extra=lambda p: {"rewards": list(reward.rewards), "reward": reward.name},
        raw_stream=True,
    )


async def plan_best_of_n(c: Context) -> Plan:
    return await _plan_best(c, refine=False)


async def plan_refine(c: Context) -> Plan:
    return await _plan_best(c, refine=True)


def _vote_value(value: Any) -> Any:
    from .executor import to_wire_value

    return to_wire_value(value)


async def plan_majority(c: Context) -> Plan:
    from .ensemble import normalize_vote

    opts = check_options(c.request.module, OPTIONS["majority"])
    names = list(c.signature.output_fields)
    vote_field = opts["field"] or names[-1]
    if vote_field not in names:
        raise ValidationError(
            f"`module.field` must be an output field ({', '.join(names)}), got {vote_field!r}", field="module.field"
        )
    inner = inner_module(opts["module"], c.signature, opts["demos"])
    votes: list[dict[str, Any]] = []

    def post(prediction: Any) -> Any:
        completions = prediction.completions
        counts: dict[Any, dict[str, Any]] = {}
        for i in range(len(completions)):
            value = completions[i][vote_field]
            key = normalize_vote(value)
            entry = counts.setdefault(key, {"value": _vote_value(value), "count": 0})
            entry["count"] += 1
        votes.extend(sorted(counts.values(), key=lambda e: -int(e["count"])))
        winner = dspy.majority(prediction, normalize=normalize_vote, field=vote_field)
        winner.set_lm_usage(prediction.get_lm_usage() or {})
        return winner

    return Plan(
        inner,
        {**c.inputs, "config": {"n": opts["n"]}},
        is_async=True,
        leading=["reasoning"] if opts["module"] == "chain_of_thought" else [],
        extra=lambda p: {"votes": votes, "n": opts["n"], "field": vote_field},
        post=post,
    )


PLANNERS: dict[str, Callable[[Context], Awaitable[Plan]]] = {
    "predict": plan_module,
    "chain_of_thought": plan_module,
    "ensemble": plan_module,
    "react": plan_react,
    "program_of_thought": plan_program_of_thought,
    "rlm": plan_rlm,
    "multi_chain_comparison": plan_multi_chain_comparison,
    "best_of_n": plan_best_of_n,
    "refine": plan_refine,
    "majority": plan_majority,
}
NO_STREAM = ("parallel", "majority", "compile")


def _sandbox_failure(op: str, exc: BaseException) -> Unsupported | None:
    """DSPy's interpreter failing to start (Deno missing, or its imports not downloadable) as a typed error."""
    text = f"{type(exc).__name__}: {exc}"
    if "Deno" in text or "deno" in text or "Pyodide" in text or "CodeInterpreter" in text:
        first = " ".join(str(exc).split())[:400]
        return Unsupported(
            f"op {op!r} could not start DSPy's Deno + Pyodide sandbox on this worker: {first}",
            details={"op": op, "exception": type(exc).__name__},
        )
    return None


def _sum_usage(parts: list[dict[str, Any]]) -> dict[str, int]:
    from .executor import sum_usage

    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for part in parts:
        for key, value in sum_usage(part).items():
            total[key] += value
    return total


async def run_surface(executor: Executor, request: Request) -> Execution:
    """Runs one DSPy-surface request (see the table at the top of this module)."""
    from .executor import Execution, to_wire_value

    if request.op == "compile":
        from .optimize import run_compile

        return await run_compile(executor, request)
    stream = check_stream(request.stream) if request.stream is not None else None
    if stream is not None and request.op in NO_STREAM:
        raise ValidationError(f"op {request.op!r} cannot stream", field="stream")
    sig_key, signature = executor.signatures.get_or_build(request.signature)
    lm, adapter = executor.lms.resolve(request.lm)
    with dspy.context(lm=lm, adapter=adapter, track_usage=True, callbacks=telemetry.dspy_callbacks()):
        if request.op == "parallel":
            return await run_parallel(executor, request, signature, sig_key, lm)
        inputs = validate_inputs(request.signature, request.inputs, key=sig_key)
        planner = PLANNERS.get(request.op)
        if planner is None:  # pragma: no cover - wire.py only lets known ops through
            raise ValidationError(f"op {request.op!r} is not a module op", field="op")
        c = Context(executor, request, signature, sig_key, inputs, lm)
        plan = await planner(c)
        try:
            if stream is not None:
                names = list(signature.output_fields)
                prediction = await run_streamed(
                    executor.programs.nc,
                    stream,
                    plan.module,
                    plan.kwargs,
                    request_id=request.id,
                    default_fields=[*plan.leading, *names],
                    is_async=plan.is_async,
                    raw=plan.raw_stream,
                )
            elif plan.is_async:
                prediction = await plan.module.acall(**plan.kwargs)
            else:
                prediction = await asyncio.to_thread(plan.module, **plan.kwargs)
        except DspexError:
            raise
        except Exception as exc:
            if request.op in SANDBOX_OPS and (typed := _sandbox_failure(request.op, exc)) is not None:
                raise typed from exc
            raise
        if prediction is None:
            raise WorkerError(f"{request.op}: every attempt failed; no prediction", details={"op": request.op})
        if plan.post is not None:
            prediction = plan.post(prediction)
    names = [n for n in plan.leading if n in prediction] + [n for n in signature.output_fields if n not in plan.leading]
    outputs = {name: to_wire_value(prediction.get(name)) for name in names}
    usage = _sum_usage([*plan.usage, prediction.get_lm_usage() or {}])
    extra = plan.extra(prediction) if plan.extra is not None else None
    return Execution(outputs=outputs, lm=str(lm.model), usage=usage, extra=extra)


async def run_parallel(executor: Executor, request: Request, signature: Any, sig_key: str, lm: Any) -> Execution:
    """op `parallel`: the module over `batch` (a list of input maps) with `dspy.Parallel`; one result per item."""
    from .executor import Execution, to_wire_value
    from .lm import classify_exception

    opts = check_options(request.module, OPTIONS["parallel"])
    batch = request.batch
    if not isinstance(batch, list) or not batch:
        raise ValidationError("op 'parallel' needs `batch`: a non-empty list of input maps", field="batch")
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(batch):
        if not isinstance(raw, dict):
            raise ValidationError(f"`batch[{i}]` must be a map of inputs", field=f"batch[{i}]")
        try:
            items.append(validate_inputs(request.signature, raw, key=sig_key))
        except ValidationError as exc:
            raise ValidationError(
                f"batch[{i}]: {exc.message}", field=f"batch[{i}].{exc.field}", details=exc.details
            ) from None
    module = inner_module(opts["module"], signature, opts["demos"])
    parallel = dspy.Parallel(
        num_threads=opts["num_threads"],
        max_errors=opts["max_errors"] or len(items) + 1,
        return_failed_examples=True,
        disable_progress_bar=True,
    )
    predictions, failed, exceptions = await asyncio.to_thread(parallel, [(module, item) for item in items])
    errors = {id(example): exc for example, exc in zip(failed, exceptions, strict=False)}
    names = (["reasoning"] if opts["module"] == "chain_of_thought" else []) + list(signature.output_fields)
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
    return Execution(outputs={}, lm=str(lm.model), usage=_sum_usage(usage), extra={"results": results})
