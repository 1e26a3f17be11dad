"""The DSPy modules beyond Predict/ChainOfThought, one planner each (docs/dspy-surface.md has the option tables;
the options arrive checked, with the schema's defaults, modules.schema.json):

* `react` (dspy.ReAct with TypeScript tools, tools.py; extra `trajectory`), `program_of_thought`, `rlm` (Deno
  sandbox, sandbox.py),
* `multi_chain_comparison` (outputs gain `rationale`; extra `completions`), `best_of_n`, `refine` (named
  rewards, rewards.py; extra `rewards`), `majority` (n completions + dspy.majority; extra `votes`).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import dspy

from ..execution import to_wire_value
from ..programs.ensemble import normalize_vote
from ..programs.modules import build_module
from ..protocol.errors import ValidationError
from .plan import Plan, PlanInput
from .rewards import resolve_reward
from .sandbox import Sandboxes, need_deno, sandbox_failure
from .tools import build_tools


def trajectory_steps(trajectory: dict[str, Any]) -> list[dict[str, Any]]:
    """ReAct's flat trajectory (`thought_0`, `tool_name_0`, `tool_args_0`, `observation_0`, …) as a list of steps."""
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


async def plan_react(p: PlanInput) -> Plan:
    tools = build_tools(p.ctx.connection("module.tools"), p.options["tools"], p.request["id"])
    module = dspy.ReAct(p.signature, tools=tools, max_iters=p.options["max_iters"])
    return Plan(
        module,
        dict(p.inputs),
        is_async=True,
        leading=["reasoning"],
        extra=lambda pred: {"trajectory": trajectory_steps(pred.get("trajectory") or {})},
    )


async def plan_program_of_thought(p: PlanInput) -> Plan:
    need_deno("program_of_thought")
    sandboxes = Sandboxes()
    module = dspy.ProgramOfThought(
        p.signature, max_iters=p.options["max_iters"], interpreter_factory=sandboxes.interpreter
    )
    return Plan(
        module,
        dict(p.inputs),
        is_async=False,
        on_error=partial(sandbox_failure, "program_of_thought"),
        stop=sandboxes.close,
    )


async def plan_rlm(p: PlanInput) -> Plan:
    need_deno("rlm")
    sandboxes = Sandboxes()
    module = dspy.RLM(
        p.signature,
        max_iters=p.options["max_iters"],
        max_llm_calls=p.options["max_llm_calls"],
        interpreter_factory=sandboxes.interpreter,
    )
    # RLM's aforward runs the sandboxed code on the event loop (a program that loops would stop the whole worker):
    # its synchronous forward runs in a thread instead, stoppable at the deadline like ProgramOfThought's.
    return Plan(module, dict(p.inputs), is_async=False, on_error=partial(sandbox_failure, "rlm"), stop=sandboxes.close)


def _check_completions(raw: list[dict[str, Any]], m: int, names: list[str]) -> list[dict[str, Any]]:
    if len(raw) != m:
        where = "module.completions"
        raise ValidationError(f"{where}: must hold exactly m={m} completions", field=where)
    last = names[-1]
    for i, comp in enumerate(raw):
        where = f"module.completions[{i}]"
        if not isinstance(comp.get("reasoning", comp.get("rationale")), str):
            raise ValidationError(f"{where}.reasoning: a `reasoning` string is required", field=f"{where}.reasoning")
        if last not in comp:
            raise ValidationError(f"{where}.{last}: the output field is required", field=f"{where}.{last}")
    return [dict(comp) for comp in raw]


async def plan_multi_chain_comparison(p: PlanInput) -> Plan:
    m: int = p.options["m"]
    temperature: float = p.options["temperature"]
    names = list(p.signature.output_fields)
    usage: list[dict[str, Any]] = []
    if p.options.get("completions") is not None:
        completions = _check_completions(p.options["completions"], m, names)
    else:
        # M reasoning attempts with chain of thought, one rollout each (distinct cache keys, the given temperature).
        cot = build_module("chain_of_thought", p.signature, p.options.get("demos"))

        async def attempt(i: int) -> Any:
            with dspy.context(lm=p.lm.copy(rollout_id=i, temperature=temperature)):
                return await cot.acall(**p.inputs)

        predictions = await asyncio.gather(*(attempt(i) for i in range(m)))
        completions = [{k: to_wire_value(pred.get(k)) for k in ["reasoning", *names]} for pred in predictions]
        usage = [pred.get_lm_usage() or {} for pred in predictions]
    module = dspy.MultiChainComparison(p.signature, M=m, temperature=temperature)
    return Plan(
        module,
        {"completions": completions, **p.inputs},
        is_async=False,
        leading=["rationale"],
        extra=lambda _pred: {"completions": completions},
        usage=usage,
    )


async def _plan_best(p: PlanInput, refine: bool) -> Plan:
    opts = p.options
    reward = resolve_reward(opts["reward"], opts.get("reward_args"))
    inner = build_module(opts["module"], p.signature, opts.get("demos"))
    cls = dspy.Refine if refine else dspy.BestOfN
    module = cls(
        module=inner, N=opts["n"], reward_fn=reward, threshold=opts["threshold"], fail_count=opts.get("fail_count")
    )
    if refine:
        module.reward_fn_code = reward.source  # the named function, not the wrapper class
    return Plan(
        module,
        dict(p.inputs),
        is_async=False,
        leading=["reasoning"] if opts["module"] == "chain_of_thought" else [],
        extra=lambda _pred: {"rewards": list(reward.rewards), "reward": reward.name},
        raw_stream=True,  # the attempts run deep copies of the module
    )


async def plan_best_of_n(p: PlanInput) -> Plan:
    return await _plan_best(p, refine=False)


async def plan_refine(p: PlanInput) -> Plan:
    return await _plan_best(p, refine=True)


async def plan_majority(p: PlanInput) -> Plan:
    opts = p.options
    names = list(p.signature.output_fields)
    vote_field = opts.get("field") or names[-1]
    if vote_field not in names:
        raise ValidationError(
            f"module.field: must be an output field ({', '.join(names)}), got {vote_field!r}", field="module.field"
        )
    inner = build_module(opts["module"], p.signature, opts.get("demos"))
    votes: list[dict[str, Any]] = []

    def post(prediction: Any) -> Any:
        completions = prediction.completions
        counts: dict[Any, dict[str, Any]] = {}
        for i in range(len(completions)):
            value = completions[i][vote_field]
            entry = counts.setdefault(normalize_vote(value), {"value": to_wire_value(value), "count": 0})
            entry["count"] += 1
        votes.extend(sorted(counts.values(), key=lambda e: -int(e["count"])))
        winner = dspy.majority(prediction, normalize=normalize_vote, field=vote_field)
        winner.set_lm_usage(prediction.get_lm_usage() or {})
        return winner

    return Plan(
        inner,
        {**p.inputs, "config": {"n": opts["n"]}},
        is_async=True,
        leading=["reasoning"] if opts["module"] == "chain_of_thought" else [],
        extra=lambda _pred: {"votes": votes, "n": opts["n"], "field": vote_field},
        post=post,
    )
