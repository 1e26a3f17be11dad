"""A multi-step program with a class-level signature: two predictors, post-processing in forward."""

from __future__ import annotations

from typing import Any

import dspy


class QASignature(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    confidence: float = dspy.OutputField()


class QA(dspy.Module):
    signature = QASignature

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.refine = dspy.Predict("question, draft -> answer, confidence: float")

    def forward(self, question: str) -> Any:
        draft = self.draft(question=question).draft
        out = self.refine(question=question, draft=draft)
        return dspy.Prediction(answer=out.answer.strip(), confidence=out.confidence)
