"""A support agent: dspy.ReAct whose `lookup_order` tool is a TypeScript function served over NATS by the
application that owns the order database (`client.tools.serve`); the program returns the answer and the tools
it used."""

from __future__ import annotations

from typing import Any

import dspy
from dspex_worker.program_bus import remote_tool

LOOKUP_ORDER = remote_tool(
    "lookup_order",
    "Looks up an order by its id; returns its status, items and dates.",
    {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "the order id, e.g. A-1001"}
        },
        "required": ["order_id"],
    },
    timeout_ms=10_000,
)


class SupportQuestion(dspy.Signature):
    """Answer a customer's question about their order, looking it up first."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class OrderAgentSignature(SupportQuestion):
    tools_used: list[str] = dspy.OutputField(
        desc="the tools the agent called, in order"
    )


class OrderAgent(dspy.Module):
    signature = OrderAgentSignature

    def __init__(self, max_iters: int = 4) -> None:
        super().__init__()
        self.agent = dspy.ReAct(
            SupportQuestion, tools=[LOOKUP_ORDER], max_iters=max_iters
        )

    async def aforward(self, question: str) -> Any:
        out = await self.agent.acall(question=question)
        trajectory: dict[str, Any] = out.trajectory
        steps = sorted(
            (k for k in trajectory if k.startswith("tool_name_")),
            key=lambda k: int(k.rsplit("_", 1)[1]),
        )
        used = [str(trajectory[k]) for k in steps]
        return dspy.Prediction(
            answer=out.answer, tools_used=[t for t in used if t != "finish"]
        )
