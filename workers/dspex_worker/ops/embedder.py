"""The embedding models of the `embed` op and the batcher that joins concurrent requests into one model call.

The embedded default is WordLlama (PyPI `wordllama`, pinned in requirements.lock): its l2_supercat weights
(256 dims, 16 MB safetensors) and tokenizer ship inside the wheel, so loading it reads two files of the installed
package and never touches the network — `WordLlama.load(disable_download=True)` is given the package directory
as its cache directory because the package looks for its bundled tokenizer under a misspelled directory name.

Batching: requests that arrive while a model call runs wait for it, and the next call embeds all of their texts
together (up to `max_batch` texts per call), so many small concurrent requests cost few model calls.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..observability.telemetry import state as telemetry

if TYPE_CHECKING:
    import numpy as np  # the model returns numpy arrays; only type names are needed here

WORDLLAMA_NAME = "wordllama/l2_supercat_256"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class EmbedLimits:
    """Per request: how many texts and total characters; per text: the model's token limit. A batch of the
    model: at most `max_batch` texts per call (DSPEX_EMBED_* variables)."""

    max_texts: int = field(default_factory=lambda: _env_int("DSPEX_EMBED_MAX_TEXTS", 512))
    max_chars: int = field(default_factory=lambda: _env_int("DSPEX_EMBED_MAX_CHARS", 512 * 1024))
    max_tokens: int = field(default_factory=lambda: _env_int("DSPEX_EMBED_MAX_TOKENS", 512))
    max_batch: int = field(default_factory=lambda: _env_int("DSPEX_EMBED_MAX_BATCH", 1024))


class TextModel(Protocol):
    name: str
    dim: int

    def token_ends(self, texts: list[str]) -> list[list[int]]:
        """Per text, the character offset where each token ends (for the limit and truncation)."""
        ...

    def embed(self, texts: list[str], normalize: bool) -> np.ndarray: ...


class WordLlamaModel:
    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        package = Path(wordllama.__file__).parent
        self._model: Any = WordLlama.load(cache_dir=package, disable_download=True)
        self.name = WORDLLAMA_NAME
        self.dim = int(self._model.embedding.shape[1])

    def token_ends(self, texts: list[str]) -> list[list[int]]:
        tokenizer = self._model.tokenizer
        encoded = tokenizer.encode_batch(texts, is_pretokenized=False, add_special_tokens=False)
        return [[end for (_, end), mask in zip(e.offsets, e.attention_mask, strict=True) if mask] for e in encoded]

    def embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        vectors: np.ndarray = self._model.embed(texts, norm=normalize, return_np=True)
        return vectors.astype("<f4", copy=False)


@dataclass
class _Pending:
    texts: list[str]
    normalize: bool
    future: asyncio.Future[np.ndarray]


class Batcher:
    """One model, its queue of pending requests, and at most one model call at a time (in a thread)."""

    def __init__(self, model: TextModel, max_batch: int) -> None:
        self.model = model
        self.max_batch = max_batch
        self._pending: list[_Pending] = []
        self._running: asyncio.Task[None] | None = None
        # statistics for `dspex status` and the tests: model calls and the texts they embedded
        self.calls = 0
        self.texts = 0

    async def embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(texts, normalize, future))
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._drain())
        return await future

    def _take(self) -> list[_Pending]:
        """The next batch: pending requests in order, one normalization setting, up to max_batch texts (a
        request larger than that goes alone)."""
        first = self._pending[0]
        batch: list[_Pending] = []
        size = 0
        for item in list(self._pending):
            if item.normalize != first.normalize or (batch and size + len(item.texts) > self.max_batch):
                continue
            batch.append(item)
            size += len(item.texts)
            self._pending.remove(item)
        return batch

    def _record(self, size: int, seconds: float) -> None:
        """Batch size and model-call latency (metrics on: DSPEX_OTEL_METRICS / OTLP, docs/observability.md)."""
        instruments = telemetry().instruments
        if instruments is None:
            return
        attributes = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": self.model.name}
        instruments.embed_batch.record(size, attributes)
        instruments.operation_duration.record(seconds, attributes)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take()
            texts = [t for item in batch for t in item.texts]
            started = time.perf_counter()
            try:
                vectors = await asyncio.to_thread(self.model.embed, texts, batch[0].normalize)
            except Exception as exc:  # the model failed: every request of the batch gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.calls += 1
            self.texts += len(texts)
            self._record(len(texts), time.perf_counter() - started)
            start = 0
            for item in batch:
                if not item.future.done():  # a request that was cancelled meanwhile is skipped
                    item.future.set_result(vectors[start : start + len(item.texts)])
                start += len(item.texts)


class Embedders:
    """The worker's embedding models, loaded on first use (a worker that never embeds pays nothing)."""

    def __init__(self, limits: EmbedLimits | None = None) -> None:
        self.limits = limits or EmbedLimits()
        self._wordllama: Batcher | None = None

    def wordllama(self) -> Batcher:
        if self._wordllama is None:
            self._wordllama = Batcher(WordLlamaModel(), self.limits.max_batch)
        return self._wordllama

    def stats(self) -> dict[str, int]:
        """Model calls and texts embedded so far (the worker's status: batching at work)."""
        batcher = self._wordllama
        return {"calls": batcher.calls if batcher else 0, "texts": batcher.texts if batcher else 0}
