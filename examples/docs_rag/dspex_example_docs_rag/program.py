"""Two-hop RAG: retrieve for the question, write a follow-up query from what was found, retrieve again, answer
from both hops' passages. The collection is searched on the bus (dspex_worker.retrieval), so the worker needs no
store credentials."""

from __future__ import annotations

from typing import Any

import dspy
from dspex_worker.retrieval import Retrieve


class DocsRAGSignature(dspy.Signature):
    """Answer a question about DSPex from its documentation."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    context: list[str] = dspy.OutputField(
        desc="the passages the answer was written from"
    )
    passage_ids: list[str] = dspy.OutputField()
    queries: list[str] = dspy.OutputField(desc="the search queries of both hops")


class DocsRAG(dspy.Module):
    signature = DocsRAGSignature

    def __init__(self, collection: str = "docs", k: int = 3) -> None:
        super().__init__()
        self.retrieve = Retrieve(collection, k=k)
        self.follow_up = dspy.Predict(
            "question: str, context: list[str] -> search_query: str"
        )
        self.answer = dspy.ChainOfThought(
            "context: list[str], question: str -> answer: str"
        )

    def forward(self, question: str) -> Any:
        first = self.retrieve(question)
        query = self.follow_up(question=question, context=first.passages).search_query
        second = self.retrieve(query)
        # both hops' passages, first hop first, each passage once
        ids: list[str] = []
        passages: list[str] = []
        for pid, text in [
            *zip(first.ids, first.passages),
            *zip(second.ids, second.passages),
        ]:
            if pid not in ids:
                ids.append(pid)
                passages.append(text)
        out = self.answer(context=passages, question=question)
        return dspy.Prediction(
            answer=out.answer,
            context=passages,
            passage_ids=ids,
            queries=[question, query],
        )
