"""`python -m dspex_worker.local_lm --port 0`: serve the installed local model over an OpenAI-compatible API.

Prints one JSON line on stdout when ready, ``{"url": "http://127.0.0.1:PORT/v1", "model": "..."}``, then
serves until SIGTERM/SIGINT. Logs (JSON) go to stderr. Exit codes: 0 clean stop, 2 bad arguments,
3 no local model installed (or runtime missing), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from ..observability.log import emit_event, get_logger, setup_logging
from ..parent import exit_with_parent_if_asked
from .constraints import ConstraintLimits
from .engine import Engine, EngineConfig
from .models import KNOWN_MODELS, LocalModelNotFound, find_model
from .server import LocalLMServer

log = get_logger("local_lm")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dspex_worker.local_lm", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DSPEX_LOCAL_LM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=_env_int("DSPEX_LOCAL_LM_PORT", 0), help="0: any free port")
    parser.add_argument(
        "--model",
        default=os.environ.get("DSPEX_LOCAL_LM_MODEL_ID"),
        help="which installed model: " + ", ".join(m.id for m in KNOWN_MODELS) + " (default: first installed)",
    )
    parser.add_argument("--ctx", type=int, default=_env_int("DSPEX_LOCAL_LM_CTX", 4096), help="context tokens")
    parser.add_argument("--threads", type=int, default=_env_int("DSPEX_LOCAL_LM_THREADS", 0), help="0: one per core")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=_env_int("DSPEX_LOCAL_LM_MAX_TOKENS", 1024),
        help="cap on completion tokens per request",
    )
    parser.add_argument("--queue-size", type=int, default=_env_int("DSPEX_LOCAL_LM_QUEUE", 32))
    parser.add_argument(
        "--no-constrain",
        action="store_true",
        default=os.environ.get("DSPEX_LOCAL_LM_CONSTRAIN", "1") == "0",
        help="do not add grammars/schemas to DSPy prompts",
    )
    parser.add_argument(
        "--text-max-tokens",
        type=int,
        default=_env_int("DSPEX_LOCAL_LM_TEXT_MAX_TOKENS", ConstraintLimits.text_max_tokens),
        help="bound on each free-text output field of a DSPy prompt (tokens)",
    )
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds a running generation may finish after SIGTERM"
    )
    parser.add_argument("--llama-log", type=int, default=_env_int("DSPEX_LOCAL_LM_LLAMA_LOG", 0))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    setup_logging()
    exit_with_parent_if_asked()

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        model = find_model(args.model)
    except LocalModelNotFound as exc:
        log.error(str(exc))
        return 3
    config = EngineConfig(
        n_ctx=args.ctx,
        threads=args.threads,
        max_tokens=args.max_tokens,
        queue_size=args.queue_size,
        constrain=not args.no_constrain,
        limits=ConstraintLimits(
            text_max_tokens=args.text_max_tokens,
            text_max_chars=max(16, args.text_max_tokens * 4),
        ),
        llama_log_verbosity=args.llama_log,
    )
    engine = Engine(model, config)
    try:
        engine.start()
    except ImportError as exc:
        log.error("the local LM runtime is not installed; run scripts/install-local-lm.sh", error=str(exc))
        return 3
    if stop.is_set():
        engine.close()
        return 0

    server = LocalLMServer((args.host, args.port), engine)
    thread = threading.Thread(target=server.serve_forever, name="local-lm-http", daemon=True)
    thread.start()
    # the one line on stdout, read by the worker that hosts this server (lm/hosting.py)
    emit_event("ready", url=server.url, model=model.id, load_seconds=round(engine.load_seconds or 0, 3))
    log.info("serving the local model", model=model.id, url=server.url)

    stop.wait()
    server.shutdown()
    server.server_close()
    if not engine.close(timeout=args.grace):
        # llama.cpp cannot be interrupted mid-generation from here; the process exit ends it.
        log.warning("a generation was still running after the stop signal; exiting anyway", grace_s=args.grace)
        logging.shutdown()
        os._exit(0)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
