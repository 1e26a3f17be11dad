"""Ticket triage: ChainOfThought fills a pydantic `Triage` (category, priority, summary, tags) — DSPy's adapters
ask the LM for it as JSON and parse it into the model — and the program adds its own rule (`escalate`).
The fleet advertises `triage` as an object type, so TypeScript callers get it typed and validated."""

from __future__ import annotations

from typing import Any, Literal

import dspy
from pydantic import BaseModel, Field


class Triage(BaseModel):
    category: Literal["billing", "bug", "account", "other"] = Field(
        description="what the ticket is about"
    )
    priority: int = Field(ge=1, le=4, description="1 low … 4 urgent")
    summary: str = Field(description="one sentence")
    tags: list[str] = Field(default_factory=list)


class Classify(dspy.Signature):
    """Triage a customer support ticket."""

    ticket: str = dspy.InputField()
    triage: Triage = dspy.OutputField()


class TicketTriageSignature(Classify):
    escalate: bool = dspy.OutputField(desc="true when the priority is 3 or more")


class TicketTriage(dspy.Module):
    signature = TicketTriageSignature

    def __init__(self) -> None:
        super().__init__()
        self.classify = dspy.ChainOfThought(Classify)

    def forward(self, ticket: str) -> Any:
        triage: Triage = self.classify(ticket=ticket).triage
        return dspy.Prediction(triage=triage, escalate=triage.priority >= 3)
