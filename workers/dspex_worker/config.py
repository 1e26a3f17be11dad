"""Worker configuration: command-line flags over DSPEX_* environment variables over defaults."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass

from .protocol.generated.bus import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE_MS, POOLS

# Ops whose work is CPU in this process or a child (the Deno sandbox of ProgramOfThought and RLM, optimizers):
# however many requests a worker holds, at most `cpu_concurrency` of these run at once.
# The worker's event loops (--event-loop): uvloop is a dependency on every platform the worker image runs on.
EVENT_LOOPS = ("uvloop", "asyncio")
CPU_OPS: frozenset[str] = frozenset({"program_of_thought", "rlm", "compile"})


@dataclass(frozen=True)
class WorkerConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    # The worker role's credentials file (docs/security.md); None only against a server without auth.
    nats_creds: str | None = None
    pool: str = "general"
    # Requests run at once, both lanes together (default: the pool's, schemas/bus.json defaultConcurrency).
    concurrency: int = DEFAULT_CONCURRENCY["general"]
    # Of those, CPU-heavy ops (CPU_OPS) at once (default: the cores this process may use).
    cpu_concurrency: int = 2
    worker_id: str = ""
    health_port: int | None = None
    # Seconds a fetch waits for work; bounds how fast a stopping worker notices.
    fetch_timeout: float = 2.0
    # How long a stopping worker waits for in-flight requests before giving up on them (they are redelivered).
    drain_timeout: float = 30.0
    max_payload: int = 1024 * 1024
    # Recycling: replace the worker after this many requests or above this RSS (0: never).
    max_requests: int = 0
    max_rss_mb: int = 0
    # Under the embedded supervisor a worker asks to be recycled instead of stopping by itself.
    supervised: bool = False
    # gpu pool: start the local model server beside the worker and advertise it (lm/hosting.py).
    host_local_lm: bool = False
    # Serve the `dspex/*` test models (lm/echo.py): benchmarks and tests only.
    allow_test_models: bool = False
    # How long a request without a Dspex-Deadline header may run: the pool's default (bus.json defaultDeadlines,
    # DSPEX_<POOL>_TIMEOUT_MS); 0 falls back to the general pool's.
    default_deadline_ms: int = 0
    # Dead-letter copies keep the request's body (its inputs); by default they keep a redacted summary.
    dlq_keep_inputs: bool = False
    # The event loop: uvloop (libuv) by default, the standard library's asyncio loop on request (__main__.py).
    event_loop: str = "uvloop"


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_config(argv: list[str] | None = None) -> WorkerConfig:
    parser = argparse.ArgumentParser(
        prog="dspex-worker",
        description="DSPex Python worker (real DSPy over NATS). It verifies the bus it is given and never "
        "provisions it: run `dspex bus apply` first (the worker waits for its pool's consumer).",
    )
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", WorkerConfig.nats_url),
        help="NATS server URL(s), comma-separated: any nodes of a cluster (env NATS_URL)",
    )
    parser.add_argument(
        "--nats-creds",
        default=os.environ.get("NATS_CREDS") or None,
        help="the worker role's NATS credentials file (env NATS_CREDS); TLS from NATS_CA/NATS_CERT/NATS_KEY",
    )
    parser.add_argument("--pool", default=os.environ.get("DSPEX_POOL", WorkerConfig.pool), choices=POOLS)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests run at once, both lanes (env DSPEX_WORKER_CONCURRENCY, else DSPEX_<POOL>_CONCURRENCY, else the "
        f"pool's default: {', '.join(f'{pool} {n}' for pool, n in DEFAULT_CONCURRENCY.items())})",
    )
    parser.add_argument(
        "--cpu-concurrency",
        type=int,
        default=_env_int("DSPEX_WORKER_CPU_CONCURRENCY", _cores()),
        help=f"of those, CPU-heavy ops ({', '.join(sorted(CPU_OPS))}) at once (env DSPEX_WORKER_CPU_CONCURRENCY; "
        "default: the cores this process may use)",
    )
    parser.add_argument("--worker-id", default=os.environ.get("DSPEX_WORKER_ID", ""))
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ["DSPEX_HEALTH_PORT"]) if os.environ.get("DSPEX_HEALTH_PORT") else None,
        help="serve /healthz and /readyz on this port (off when unset)",
    )
    parser.add_argument("--drain-timeout", type=float, default=WorkerConfig.drain_timeout)
    parser.add_argument("--max-requests", type=int, default=_env_int("DSPEX_WORKER_MAX_REQUESTS", 0))
    parser.add_argument("--max-rss-mb", type=int, default=_env_int("DSPEX_WORKER_MAX_RSS_MB", 0))
    parser.add_argument(
        "--host-local-lm",
        action="store_true",
        default=os.environ.get("DSPEX_HOST_LOCAL_LM") == "1",
        help="serve the installed local model (docs/local-lm.md) and advertise it; for the gpu pool",
    )
    parser.add_argument(
        "--allow-test-models",
        action="store_true",
        default=os.environ.get("DSPEX_ALLOW_TEST_MODELS") == "1",
        help="serve the test-only LMs `dspex/*` (the zero-latency `dspex/echo`), for tests and benchmarks; "
        "without it a request naming one gets LMConfigError (env DSPEX_ALLOW_TEST_MODELS=1)",
    )
    parser.add_argument("--supervised", action="store_true", default=os.environ.get("DSPEX_SUPERVISED") == "1")
    parser.add_argument(
        "--dlq-keep-inputs",
        action="store_true",
        default=os.environ.get("DSPEX_DLQ_KEEP_INPUTS") == "1",
        help="dead-letter copies keep the request's body with its inputs (env DSPEX_DLQ_KEEP_INPUTS=1); by default "
        "they keep a redacted summary: sizes, types and field names",
    )
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=os.environ.get("DSPEX_WORKER_EVENT_LOOP") or WorkerConfig.event_loop,
        help="uvloop (default: less CPU per request, docs/performance.md) or the standard library's asyncio loop "
        "(env DSPEX_WORKER_EVENT_LOOP)",
    )
    parser.add_argument(
        "--default-deadline-ms",
        type=int,
        default=None,
        help="how long a request without a Dspex-Deadline header may run (default: DSPEX_<POOL>_TIMEOUT_MS, else "
        "the pool's default from schemas/bus.json: "
        f"{', '.join(f'{pool} {ms} ms' for pool, ms in DEFAULT_DEADLINE_MS.items())})",
    )
    args = parser.parse_args(argv)
    concurrency = args.concurrency
    if concurrency is None:
        try:
            concurrency = _env_int(
                "DSPEX_WORKER_CONCURRENCY",
                _env_int(f"DSPEX_{args.pool.upper()}_CONCURRENCY", DEFAULT_CONCURRENCY[args.pool]),
            )
        except ValueError:
            parser.error("DSPEX_WORKER_CONCURRENCY / DSPEX_<POOL>_CONCURRENCY must be an integer")
    if concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.cpu_concurrency < 1:
        parser.error("--cpu-concurrency must be at least 1")
    deadline_ms = args.default_deadline_ms
    if deadline_ms is None:
        try:
            deadline_ms = _env_int(f"DSPEX_{args.pool.upper()}_TIMEOUT_MS", DEFAULT_DEADLINE_MS[args.pool])
        except ValueError:
            parser.error(f"DSPEX_{args.pool.upper()}_TIMEOUT_MS must be an integer (ms)")
    if deadline_ms < 1:
        parser.error("--default-deadline-ms (DSPEX_<POOL>_TIMEOUT_MS) must be at least 1")
    worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    return WorkerConfig(
        nats_url=args.nats_url,
        nats_creds=args.nats_creds,
        pool=args.pool,
        concurrency=concurrency,
        cpu_concurrency=args.cpu_concurrency,
        worker_id=worker_id,
        health_port=args.health_port,
        drain_timeout=args.drain_timeout,
        max_requests=args.max_requests,
        max_rss_mb=args.max_rss_mb,
        supervised=args.supervised,
        host_local_lm=args.host_local_lm,
        allow_test_models=args.allow_test_models,
        default_deadline_ms=deadline_ms,
        dlq_keep_inputs=args.dlq_keep_inputs,
        event_loop=args.event_loop,
    )
