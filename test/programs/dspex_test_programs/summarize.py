"""A single-predictor program: its fields come from the predictor's signature."""

from __future__ import annotations

from typing import Any

import dspy


class Summarize(dspy.Module):
    pool = "general"

    def __init__(self) -> None:
        super().__init__()
        self.summarize = dspy.ChainOfThought("text: str, max_words: int -> summary: str, keywords: list[str]")

    def forward(self, text: str, max_words: int) -> Any:
        return self.summarize(text=text, max_words=max_words)
