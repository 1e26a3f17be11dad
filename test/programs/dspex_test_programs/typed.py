"""A program whose fields come from `forward`'s annotations (a TypedDict return) and whose constructor takes an
option the deployment sets (DSPEX_PROGRAM_OPTIONS)."""

from __future__ import annotations

from typing import TypedDict

import dspy


class Answer(TypedDict):
    answer: str
    words: int


class Annotated(dspy.Module):
    def __init__(self, prefix: str = "A:") -> None:
        super().__init__()
        self.prefix = prefix
        self.draft = dspy.Predict("question -> answer")
        self.shorten = dspy.Predict("text, max_words: int -> answer")

    def forward(self, question: str, max_words: int) -> Answer:
        draft = self.draft(question=question).answer
        answer = self.shorten(text=draft, max_words=max_words).answer
        return {"answer": f"{self.prefix} {answer}", "words": len(str(answer).split())}
