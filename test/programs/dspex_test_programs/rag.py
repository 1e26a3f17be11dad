"""RAG programs that search a collection served on the bus (dspex_worker.retrieval), three ways: the `Retrieve`
module from `forward` (run in a worker thread), from `aforward` (on the event loop), and DSPy's own
`dspy.Retrieve` through the `rm` every request gets."""

from __future__ import annotations

import json
from typing import Any

import dspy

from dspex_worker.retrieval import Retrieve, search_tool


class RAGSignature(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    context: list[str] = dspy.OutputField()
    passage_ids: list[str] = dspy.OutputField()


class RAG(dspy.Module):
    signature = RAGSignature

    def __init__(self) -> None:
        super().__init__()
        self.retrieve = Retrieve("docs", k=3)
        self.answer = dspy.ChainOfThought("context: list[str], question: str -> answer: str")

    def forward(self, question: str) -> Any:
        found = self.retrieve(question)
        out = self.answer(context=found.passages, question=question)
        return dspy.Prediction(answer=out.answer, context=found.passages, passage_ids=found.ids)


class AsyncRAG(RAG):
    async def aforward(self, question: str) -> Any:
        found = await self.retrieve.acall(question, k=2, filter={"source": "b.md"})
        out = await self.answer.acall(context=found.passages, question=question)
        return dspy.Prediction(answer=out.answer, context=found.passages, passage_ids=found.ids)


class DspyRetrieveRAG(RAG):
    def __init__(self) -> None:
        super().__init__()
        self.search = dspy.Retrieve(k=2)

    def forward(self, question: str) -> Any:
        passages = self.search(question).passages
        out = self.answer(context=passages, question=question)
        return dspy.Prediction(answer=out.answer, context=passages, passage_ids=[])


class AgentSignature(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class SearchAgentSignature(AgentSignature):
    first_observation: str = dspy.OutputField()


class SearchAgent(dspy.Module):
    """ReAct with the collection as its tool (dspex_worker.retrieval.search_tool); answers what it saw first."""

    signature = SearchAgentSignature

    def __init__(self) -> None:
        super().__init__()
        self.agent = dspy.ReAct(AgentSignature, tools=[search_tool("docs", k=2, name="search_docs")], max_iters=3)

    async def aforward(self, question: str) -> Any:
        out = await self.agent.acall(question=question)
        return dspy.Prediction(answer=out.answer, first_observation=json.dumps(out.trajectory.get("observation_0")))
