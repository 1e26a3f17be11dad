"""The worker's metric instruments, shared by the request telemetry (telemetry.py) and the DSPy callback
(dspy_callback.py): a leaf, so neither has to import the other for them."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.metrics import Meter

# Explicit bucket boundaries the semantic conventions recommend for durations in seconds, and for token counts.
DURATION_BUCKETS: Sequence[float] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)
TOKEN_BUCKETS: Sequence[float] = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


class Instruments:
    """The worker's metric instruments (no-op instruments when metrics are off)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.request_duration = meter.create_histogram(
            "dspex.worker.request.duration",
            unit="s",
            description="Time from the worker starting a request to its reply being ready",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.queue_wait = meter.create_histogram(
            "dspex.worker.queue_wait.duration",
            unit="s",
            description="Time a request waited in JetStream (stored timestamp to the worker starting it)",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.inflight = meter.create_up_down_counter(
            "dspex.worker.requests.inflight", unit="{request}", description="Requests the worker is running"
        )
        self.lm_tokens = meter.create_counter(
            "dspex.worker.lm.tokens", unit="{token}", description="LM tokens used, by model and token type"
        )
        # GenAI semantic-convention client metrics.
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used per LM call",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.embed_batch = meter.create_histogram(
            "dspex.worker.embed.batch_size",
            unit="{text}",
            description="Texts per embedding model call (requests joined by the batcher)",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of LM calls",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
