"""Retrieval inside DSPy programs running on a worker (docs/retrieval.md, "Retrieval inside DSPy programs").

A collection of a vector store is served on the bus by the process that holds the store (`dspex retrieval
serve`, `serveRetrieval` in @dspex/retrieval; schemas/retrieval.schema.json). A program on a worker searches it
through the worker's own NATS connection — no store credentials on workers, and a worker may only `search`
(its role cannot publish upsert/delete):

    from dspex_worker.retrieval import Retrieve

    class RAG(dspy.Module):
        def __init__(self) -> None:
            self.retrieve = Retrieve("docs", k=3)
            self.answer = dspy.ChainOfThought("context: list[str], question: str -> answer: str")

        def forward(self, question: str) -> dspy.Prediction:
            context = self.retrieve(question).passages
            return self.answer(context=context, question=question)

`search_tool(collection)` gives a `dspy.ReAct` agent the collection as a tool. `dspy.Retrieve(k)` works too:
each request runs with `dspy.settings.rm` set to the collection named by
DSPEX_RETRIEVAL_COLLECTION (default `docs`). Both work from `forward` (which the worker runs in a thread) and
`aforward` (`await self.retrieve.acall(query)`, on the event loop).

The worker binds its connection for the length of each request (program_bus.py): outside a request there is no
bus to search, which is an error saying so. A reply `{ok: false, error}` raises the typed error it carries
(ValidationError naming `filter.<f>`, StoreUnavailable, CircuitOpenError, …); nobody serving the collection, or no
answer in time, is StoreUnavailable (retryable) naming `collection`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dspy
import nats.errors
from dspy.dsp.utils import dotdict
from opentelemetry import propagate, trace

from .program_bus import blocking, current
from .protocol import decode, encode, error_from_wire
from .protocol.errors import StoreUnavailable, ValidationError
from .protocol.generated.bus import retrieval_subject

DEFAULT_COLLECTION = "docs"
DEFAULT_TIMEOUT_MS = 10_000
MAX_K = 1000


_tracer = trace.get_tracer("dspex_worker.retrieval")


def default_collection(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("DSPEX_RETRIEVAL_COLLECTION") or DEFAULT_COLLECTION


def _timeout_s() -> float:
    raw = os.environ.get("DSPEX_RETRIEVAL_TIMEOUT_MS", "")
    return (int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_TIMEOUT_MS) / 1000


def _check(collection: str, query: str, k: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("query: the search query holds no text", field="query")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValidationError(f"k: must be an integer in 1..{MAX_K}", field="k")
    if not collection:
        raise ValidationError("collection: name the collection to search", field="collection")


async def asearch(
    collection: str, query: str, k: int = 3, filter: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The k passages of `collection` nearest to `query`, best first: `{id, text, score, metadata?}`."""
    _check(collection, query, k)
    bus = current("dspex_worker.retrieval")
    subject = retrieval_subject(collection, "search")
    body: dict[str, Any] = {"v": 1, "query": query, "k": k}
    if filter:
        body["filter"] = dict(filter)
    with _tracer.start_as_current_span(
        f"search {collection}",
        kind=trace.SpanKind.CLIENT,
        attributes={"db.operation": "search", "db.collection.name": collection, "messaging.destination.name": subject},
    ) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        timeout = _timeout_s()
        try:
            msg = await bus.nc.request(subject, encode(body), timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise StoreUnavailable(
                f"collection: nobody serves {collection!r} on the bus (no responder on {subject})", field="collection"
            ) from None
        except nats.errors.TimeoutError:
            raise StoreUnavailable(
                f"collection: the retrieval service of {collection!r} did not answer within {timeout:g} s",
                field="collection",
            ) from None
        reply = decode(msg.data)
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise StoreUnavailable(f"collection: {subject} answered something that is not a reply", field="collection")
        if not reply["ok"]:
            error = error_from_wire(reply.get("error") or {})
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            raise error
        hits: list[dict[str, Any]] = list(reply["result"]["hits"])
        span.set_attribute("db.response.returned_rows", len(hits))
        return hits


def search(collection: str, query: str, k: int = 3, filter: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """`asearch` from synchronous code: a program's `forward`, which the worker runs in a thread."""
    hits: list[dict[str, Any]] = blocking("dspex_worker.retrieval", asearch(collection, query, k, filter))
    return hits


def _prediction(hits: list[dict[str, Any]]) -> dspy.Prediction:
    return dspy.Prediction(
        passages=[h["text"] for h in hits],
        ids=[h["id"] for h in hits],
        scores=[h["score"] for h in hits],
        metadata=[h.get("metadata") or {} for h in hits],
    )


class Retrieve(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    """A retriever module over a collection served on the bus: `passages` (texts), `ids`, `scores`, `metadata`."""

    def __init__(self, collection: str | None = None, k: int = 3, filter: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.collection = collection or default_collection()
        self.k = k
        self.filter = dict(filter) if filter else None

    def forward(self, query: str, k: int | None = None, filter: Mapping[str, Any] | None = None) -> dspy.Prediction:
        return _prediction(search(self.collection, query, k or self.k, filter or self.filter))

    async def aforward(
        self, query: str, k: int | None = None, filter: Mapping[str, Any] | None = None
    ) -> dspy.Prediction:
        return _prediction(await asearch(self.collection, query, k or self.k, filter or self.filter))


def search_tool(collection: str | None = None, k: int = 3, name: str = "search") -> dspy.Tool:
    """A collection as a tool for `dspy.ReAct` in a program: the agent passes a query and observes
    `[{id, text, score}]`. Async, so ReAct's `acall` awaits it on the loop and its sync path runs it too."""
    target = collection or default_collection()

    async def search_collection(query: str) -> list[dict[str, Any]]:
        hits = await asearch(target, query, k)
        return [{"id": h["id"], "text": h["text"], "score": round(float(h["score"]), 4)} for h in hits]

    return dspy.Tool(
        search_collection,
        name=name,
        desc=f"Searches the {target} collection; returns the {k} passages nearest to the query.",
    )


class BusRM:
    """`dspy.settings.rm` for `dspy.Retrieve`: passages as DSPy expects them (`long_text`), from one collection."""

    def __init__(self, collection: str | None = None) -> None:
        self.collection = collection or default_collection()

    def __call__(self, query: str, k: int = 3, **kwargs: Any) -> list[dotdict]:
        hits = search(self.collection, query, k, kwargs.get("filter"))
        return [dotdict(long_text=h["text"], id=h["id"], score=h["score"]) for h in hits]


__all__ = ["BusRM", "Retrieve", "asearch", "default_collection", "search", "search_tool"]
