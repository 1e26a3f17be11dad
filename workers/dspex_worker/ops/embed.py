"""The `embed` operation (gpu pool): `inputs.texts` (signature `texts: list[str] -> vectors`) in, float32 vectors out.

Reply outputs: `{vectors: bin, dim: int, count: int, model: str, truncated: [int]}` — `vectors` is msgpack bin
holding `count × dim` little-endian float32 values, row-major (text i is bytes [4·dim·i, 4·dim·(i+1))); `truncated`
lists the texts cut to the model's token limit (module option `truncate: true`). Options (modules.schema.json
EmbedOptions): `model` (`wordllama`, or `lm`: `dspy.Embedder` with the model the request's `lm` names through the
operator's profiles), `truncate`, `normalize`.

Bad input, each a typed error naming the field: no texts / too many / too many characters (`inputs.texts`,
ValidationError or PayloadTooLarge), an empty text or one over the token limit without `truncate`
(`inputs.texts[i]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from ..execution import Execution, Request
from ..observability.telemetry import state as telemetry
from ..protocol.errors import LMConfigError, LMError, PayloadTooLarge, ValidationError
from .context import OpContext
from .embedder import Embedders

if TYPE_CHECKING:
    import numpy as np  # imported when a request embeds: a general worker never loads numpy (~150 ms at start)

EMBEDDERS = Embedders()  # one per worker process: the model is loaded once, its batcher is shared by requests


def check_texts(texts: Any, max_texts: int, max_chars: int) -> list[str]:
    if not isinstance(texts, list) or not texts:
        raise ValidationError("inputs.texts: a non-empty list of strings is required", field="inputs.texts")
    if len(texts) > max_texts:
        raise PayloadTooLarge(
            f"inputs.texts: {len(texts)} texts; at most {max_texts} per request",
            field="inputs.texts", details={"count": len(texts), "limit": max_texts},
        )  # fmt: skip
    total = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError(f"inputs.texts[{i}]: must be a string", field=f"inputs.texts[{i}]")
        if not text.strip():
            raise ValidationError(f"inputs.texts[{i}]: empty text", field=f"inputs.texts[{i}]")
        total += len(text)
    if total > max_chars:
        raise PayloadTooLarge(
            f"inputs.texts: {total} characters; at most {max_chars} per request",
            field="inputs.texts", details={"chars": total, "limit": max_chars},
        )  # fmt: skip
    return texts


def apply_token_limit(
    texts: list[str], ends: list[list[int]], limit: int, truncate: bool
) -> tuple[list[str], list[int]]:
    """Texts within the limit, cut at the end of their limit-th token when `truncate`, else the first one over
    it is a ValidationError naming it."""
    out, cut = list(texts), []
    for i, token_ends in enumerate(ends):
        if len(token_ends) <= limit:
            continue
        if not truncate:
            raise ValidationError(
                f"inputs.texts[{i}]: {len(token_ends)} tokens; the model takes at most {limit} "
                "(module.truncate: true cuts it)",
                field=f"inputs.texts[{i}]", details={"tokens": len(token_ends), "limit": limit},
            )  # fmt: skip
        out[i] = texts[i][: token_ends[limit - 1]]
        cut.append(i)
    return out, cut


async def _provider_vectors(
    ctx: OpContext, request: Request, texts: list[str], normalize: bool
) -> tuple[np.ndarray, str]:
    """dspy.Embedder with the model (and the key, only to its own endpoint) of the request's `lm` profile."""
    import dspy

    lm = ctx.lms.get(request.get("lm"))
    if not isinstance(lm, dspy.LM):
        raise LMConfigError("lm.model: not a provider model; module.model 'lm' needs one", field="lm.model")
    kwargs = {k: v for k, v in lm.kwargs.items() if k in ("api_key", "api_base")}
    try:
        embedder = dspy.Embedder(lm.model, batch_size=len(texts), caching=False, **kwargs)
        import numpy as np

        vectors = np.asarray(await embedder.acall(texts), dtype="<f4")
    except Exception as exc:
        raise LMError(f"embeddings from {lm.model!r} failed: {type(exc).__name__}: {exc}", field="lm") from exc
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors.astype("<f4", copy=False), str(lm.model)


async def run(ctx: OpContext, request: Request, options: dict[str, Any]) -> Execution:
    limits = EMBEDDERS.limits
    texts = check_texts(request["inputs"].get("texts"), limits.max_texts, limits.max_chars)
    normalize = bool(options.get("normalize", True))
    tracer = telemetry().tracer
    if options.get("model", "wordllama") == "lm":
        with tracer.start_as_current_span("embeddings", kind=SpanKind.CLIENT) as span:
            vectors, model = await _provider_vectors(ctx, request, texts, normalize)
            span.set_attributes({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": model})
        cut: list[int] = []
        tokens = 0
    else:
        batcher = EMBEDDERS.wordllama()
        ends = batcher.model.token_ends(texts)
        texts, cut = apply_token_limit(texts, ends, limits.max_tokens, bool(options.get("truncate", False)))
        tokens = sum(min(len(e), limits.max_tokens) for e in ends)
        model = batcher.model.name
        with tracer.start_as_current_span(f"embeddings {model}", kind=SpanKind.CLIENT) as span:
            span.set_attributes({
                "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "wordllama",
                "gen_ai.request.model": model, "gen_ai.usage.input_tokens": tokens, "dspex.embed.texts": len(texts),
            })  # fmt: skip
            vectors = await batcher.embed(texts, normalize)
    import numpy as np

    count, dim = vectors.shape
    outputs = {
        "vectors": np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
        "dim": int(dim),
        "count": int(count),
        "model": model,
        "truncated": cut,
    }
    usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    return Execution(outputs=outputs, lm=model, usage=usage)
