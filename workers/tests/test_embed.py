"""The `embed` op in-process with the real WordLlama model: vectors on the wire, limits, batching across requests."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from dspex_worker.ops import registry
from dspex_worker.ops.context import OpContext
from dspex_worker.ops.embed import EMBEDDERS, apply_token_limit
from dspex_worker.ops.embedder import Batcher, WordLlamaModel
from dspex_worker.protocol import check_request
from dspex_worker.protocol.errors import PayloadTooLarge, ValidationError

SIGNATURE = {
    "inputs": [{"name": "texts", "type": {"kind": "list", "items": {"kind": "str"}}}],
    "outputs": [{"name": "vectors", "type": {"kind": "any"}}],
}


def request(texts: Any, **module: Any) -> Any:
    body = {"v": 1, "id": "e1", "op": "embed", "signature": SIGNATURE, "inputs": {"texts": texts}}
    if module:
        body["module"] = module
    return check_request(body)


def run(texts: Any, **module: Any) -> dict[str, Any]:
    return asyncio.run(registry.run(OpContext(), request(texts, **module))).outputs


def test_vectors_are_float32_little_endian_rows() -> None:
    texts = ["The fleet runs on NATS JetStream.", "Workers pull requests from the gpu pool."]
    out = run(texts)
    assert out["count"] == 2 and out["dim"] == 256 and out["model"] == "wordllama/l2_supercat_256"
    vectors = np.frombuffer(out["vectors"], dtype="<f4").reshape(out["count"], out["dim"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    direct = EMBEDDERS.wordllama().model.embed(texts[1:], True)
    assert np.allclose(vectors[1], direct[0], atol=1e-6)  # row order is the texts' order


def test_similar_texts_are_closer() -> None:
    out = run(["how do I start the fleet", "dspex up starts nats-server and the workers", "pgvector HNSW index"])
    v = np.frombuffer(out["vectors"], dtype="<f4").reshape(3, -1)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


@pytest.mark.parametrize(
    ("texts", "field", "error"),
    [
        ([], "inputs.texts", ValidationError),
        (["ok", "  "], "inputs.texts[1]", ValidationError),
        (["ok"] * 513, "inputs.texts", PayloadTooLarge),
        (["word " * 600], "inputs.texts[0]", ValidationError),
    ],
)
def test_bad_texts_are_typed_errors_naming_the_field(texts: list[str], field: str, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        run(texts)
    assert caught.value.field == field  # type: ignore[attr-defined]


def test_unknown_option_names_it() -> None:
    with pytest.raises(ValidationError) as caught:
        run(["a"], dims=12)
    assert caught.value.field == "module.dims"


def test_truncate_cuts_at_the_token_limit() -> None:
    long = "alpha beta gamma " * 400
    out = run([long, "short"], truncate=True)
    assert out["truncated"] == [0] and out["count"] == 2
    texts, cut = apply_token_limit(["a b c d"], [[1, 3, 5, 7]], 2, True)
    assert texts == ["a b"] and cut == [0]


class CountingModel:
    """The real model, with the batch sizes it was called with recorded."""

    def __init__(self) -> None:
        self.inner = WordLlamaModel()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.sizes: list[int] = []

    def token_ends(self, texts: list[str]) -> list[list[int]]:
        return self.inner.token_ends(texts)

    def embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        self.sizes.append(len(texts))
        return self.inner.embed(texts, normalize)


def test_concurrent_requests_share_model_calls() -> None:
    model = CountingModel()
    batcher = Batcher(model, max_batch=64)

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.embed([f"text {i}", f"other {i}"], True) for i in range(40)))

    results = asyncio.run(main())
    assert sum(model.sizes) == 80 and max(model.sizes) <= 64
    assert len(model.sizes) < 40  # joined: fewer model calls than requests
    expected = model.inner.embed(["text 7", "other 7"], True)
    assert np.allclose(results[7], expected, atol=1e-6)


def test_spans_and_metrics_of_an_embedding() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dspex_worker.observability import telemetry

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.configure(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]), worker_id="w", pool="gpu"
    )
    try:
        run(["one text", "two texts"])
        span = next(s for s in spans.get_finished_spans() if s.name == "embeddings wordllama/l2_supercat_256")
        assert span.attributes is not None
        assert span.attributes["gen_ai.operation.name"] == "embeddings"
        assert span.attributes["dspex.embed.texts"] == 2
        data = reader.get_metrics_data()
        assert data is not None
        points: dict[str, list[Any]] = {
            m.name: list(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        batch = points["dspex.worker.embed.batch_size"]
        assert batch[0].sum == 2 and batch[0].attributes["gen_ai.operation.name"] == "embeddings"
        assert points["gen_ai.client.operation.duration"][0].count == 1
    finally:
        telemetry.reset()
