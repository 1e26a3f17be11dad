"""The op registry: every operation of the contract (request.schema.json `op`) and the function that runs it.

`run` checks the op's module options against the schema (modules.schema.json; defaults filled in) and hands
the request, with them, to the op's handler. Module ops are plans run by plan.run_planned; `parallel`,
`evaluate`, `compile` and `embed` have their own handlers; `program` runs a user's packaged module (program.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from ..execution import Execution, Request
from ..protocol import check_module_options
from ..protocol.errors import ValidationError
from ..protocol.generated.ops import OPERATIONS
from . import complete, embed, evaluate, parallel, predict, program, surface
from .compile import runner as compile_runner
from .context import OpContext
from .plan import Planner, run_planned

Handler = Callable[[OpContext, Request, dict[str, Any]], Awaitable[Execution]]


def planned(planner: Planner) -> Handler:
    return partial(run_planned, planner=planner)


OPS: Final[dict[str, Handler]] = {
    "predict": planned(predict.plan),
    "chain_of_thought": planned(predict.plan),
    "ensemble": planned(predict.plan),
    # a packaged program's planner, for evaluating one (the op families do not import each other)
    "evaluate": partial(evaluate.run, program_planner=program.plan),
    "react": planned(surface.plan_react),
    "program_of_thought": planned(surface.plan_program_of_thought),
    "rlm": planned(surface.plan_rlm),
    "multi_chain_comparison": planned(surface.plan_multi_chain_comparison),
    "best_of_n": planned(surface.plan_best_of_n),
    "refine": planned(surface.plan_refine),
    "majority": planned(surface.plan_majority),
    "parallel": parallel.run,
    "compile": compile_runner.run,
    "embed": embed.run,
    "program": planned(program.plan),
    "complete": complete.run,
}
assert set(OPS) == set(OPERATIONS), "every operation of the contract has a handler"

# Ops whose result is not one module's token stream: a batch, a vote over n completions, a job, vectors.
NO_STREAM: Final = frozenset({"parallel", "majority", "compile", "embed", "complete"})


async def run(ctx: OpContext, request: Request) -> Execution:
    op = request["op"]
    options = check_module_options(op, request.get("module"))
    if request.get("stream") is not None and op in NO_STREAM:
        raise ValidationError(f"stream: op {op!r} cannot stream", field="stream")
    return await OPS[op](ctx, request, options)
