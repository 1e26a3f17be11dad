"""`predict`, `chain_of_thought` and stored programs (`program: {id, version}` with either op, and `ensemble`):
the module from the request's signature (cached per signature, or fresh with the request's `demos`), or the
stored program rebuilt from KV at that version."""

from __future__ import annotations

from .plan import Plan, PlanInput


async def plan(p: PlanInput) -> Plan:
    op = p.request["op"]
    program = p.request.get("program")
    if program is not None:
        module = await p.ctx.programs.get(dict(program))
    else:
        module = p.ctx.modules.get(op, p.sig_key, p.signature, p.options.get("demos"))
    leading = ["reasoning"] if op == "chain_of_thought" else []
    # an ensemble's members are separate predictors a field listener cannot tell apart: stream its raw text
    return Plan(module, dict(p.inputs), is_async=True, leading=leading, raw_stream=op == "ensemble")
