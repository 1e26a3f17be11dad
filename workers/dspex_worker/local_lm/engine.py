"""The inference engine: one llama.cpp model (via xllamacpp) fed by one FIFO queue.

A 2-core CPU runs one generation at a time well and two badly, so requests are serialised: HTTP threads
enqueue a job and wait; a single worker thread runs jobs in arrival order.
"""

from __future__ import annotations

import importlib
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..observability.log import get_logger
from .constraints import COMPLETED_MARKER, ConstraintLimits, constrain_request
from .models import LocalModel

log = get_logger("local_lm")


class EngineBusy(RuntimeError):
    """The queue is full; the caller should retry later (HTTP 503)."""


class EngineRequestError(ValueError):
    """llama.cpp rejected the request (HTTP 400)."""


@dataclass
class EngineConfig:
    n_ctx: int = 4096
    threads: int = 0  # 0: one per core
    max_tokens: int = 1024  # upper bound on a completion, whatever the request asks
    queue_size: int = 32
    temperature: float = 0.0  # when the request gives none
    repeat_penalty: float = 1.1  # small models loop at temperature 0 without it
    seed: int = 42
    constrain: bool = True  # grammar/schema for DSPy prompts (see constraints.py)
    limits: ConstraintLimits | None = None
    llama_log_verbosity: int = 0  # llama.cpp's own logging; 0 keeps it to errors


@dataclass
class _Job:
    body: dict[str, Any]
    future: Future[dict[str, Any]]
    enqueued: float


class Engine:
    def __init__(self, model: LocalModel, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=self.config.queue_size)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.load_seconds: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the model (blocking) and start the worker thread."""
        # llama.cpp's OpenMP threads spin while they wait; on a shared 2-core machine (NATS, the node
        # services and other workers on the same cores) spinning threads starve each other and generation
        # drops from ~25 to ~2 tokens/s. Passive waiting must be set before the OpenMP runtime loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # Imported here so that this package imports without the optional runtime (and it has no stubs).
        xlc: Any = importlib.import_module("xllamacpp")

        threads = self.config.threads or os.cpu_count() or 1
        params = xlc.CommonParams()
        params.model.path = str(self.model.path)
        params.n_ctx = self.config.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.offline = True  # never reach for a model hub
        params.ui = False
        params.cache_ram_mib = 256  # prompt cache: DSPy repeats its system prompts
        params.warmup = True
        params.verbosity = self.config.llama_log_verbosity
        params.sampling.temp = self.config.temperature
        params.sampling.penalty_repeat = self.config.repeat_penalty
        params.sampling.seed = self.config.seed
        started = time.monotonic()
        self._server = xlc.Server(params)
        self.load_seconds = time.monotonic() - started
        self._thread = threading.Thread(target=self._run, name="local-lm-engine", daemon=True)
        self._thread.start()
        log.info("model loaded", model=self.model.id, path=str(self.model.path), seconds=round(self.load_seconds, 2))

    def close(self, timeout: float = 30.0) -> bool:
        """Fail the queued jobs, let the running one finish within `timeout`, free the model.

        Returns False when a generation was still running after `timeout` (the model is then left loaded;
        the caller should exit the process, which ends the generation).
        """
        if self._thread is not None:
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.future.set_exception(EngineBusy("server shutting down"))
            self._queue.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
            self._thread = None
        self._server = None
        return True

    # ------------------------------------------------------------------ requests

    def submit(self, body: dict[str, Any]) -> Future[dict[str, Any]]:
        if self._thread is None:
            raise EngineBusy("engine not running")
        job = _Job(body=body, future=Future(), enqueued=time.monotonic())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise EngineBusy(f"{self.config.queue_size} requests already queued") from None
        return job.future

    def chat(self, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        return self.submit(body).result(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The request as llama.cpp gets it: capped length, no streaming, constraint for DSPy prompts."""
        request = {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options", "n")}
        cap = self.config.max_tokens
        requested = request.pop("max_completion_tokens", None) or request.get("max_tokens")
        request["max_tokens"] = min(int(requested), cap) if isinstance(requested, int | float) else cap
        if request.get("temperature") is None:
            request["temperature"] = self.config.temperature
        constraint = "none"
        if self.config.constrain:
            constraint = constrain_request(request, self.config.limits)
        return request, constraint

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self._generate(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting HTTP thread
                job.future.set_exception(exc)

    def _generate(self, job: _Job) -> dict[str, Any]:
        request, constraint = self.prepare(job.body)
        started = time.monotonic()
        result = self._server.handle_chat_completions(request)
        if not isinstance(result, dict):
            raise EngineRequestError(f"unexpected llama.cpp reply: {type(result).__name__}")
        if "error" in result and "choices" not in result:
            error = result["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise EngineRequestError(message or "llama.cpp rejected the request")
        if constraint == "chat-grammar":
            choice = (result.get("choices") or [{}])[0]
            content = str((choice.get("message") or {}).get("content") or "")
            if choice.get("finish_reason") == "stop" and not content.rstrip().endswith(COMPLETED_MARKER):
                # llama.cpp ignores a grammar it cannot compile; say so rather than fail silently.
                log.warning("ChatAdapter grammar was not enforced; the output lacks the completed marker")
        result["model"] = self.model.id
        result.setdefault("object", "chat.completion")
        result.setdefault("created", int(time.time()))
        usage = result.setdefault("usage", {})
        usage.setdefault("prompt_tokens", 0)
        usage.setdefault("completion_tokens", 0)
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        log.debug(
            "generated",
            constraint=constraint,
            response_format=job.body.get("response_format"),
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
        )
        result["dspex"] = {
            "constraint": constraint,
            "queue_ms": round((started - job.enqueued) * 1000, 1),
            "generate_ms": round((time.monotonic() - started) * 1000, 1),
        }
        return result
