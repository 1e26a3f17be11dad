"""DSPy's Deno + Pyodide sandbox, which `program_of_thought` and `rlm` run the LM's code in.

A worker without Deno, or whose sandbox cannot start, answers those ops with the typed error `Unsupported`
(not retryable). DSPy's runner.js imports `https://deno.land/std@0.186.0/io/mod.ts` (for `readLines`) when the
sandbox starts; an import map points it at `sandbox_files/std_io.ts`, so the sandbox needs no access to deno.land.
Pyodide (from the npm registry) is cached at install time (scripts/install-sandbox.sh, hash-pinned by
`sandbox_files/deno.lock`) in the DENO_DIR the worker is given, and Deno runs with `--cached-only`: nothing is
fetched at run time.

Each request's sandboxes are a `Sandboxes`: DSPy asks it for interpreters, and the op closes it when the request
ends — at its deadline above all: a program that loops forever blocks the thread reading the sandbox's answer,
so the `deno` process is killed (SIGKILL), which ends that read, frees the thread and leaves no process behind;
a closed `Sandboxes` starts no new sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from dspy.primitives.code_interpreter import CodeInterpreterError
from dspy.primitives.python_interpreter import PythonInterpreter

from ..observability.log import get_logger
from ..protocol.errors import Unsupported

log = get_logger("sandbox")

SANDBOX_DIR = Path(__file__).parent / "sandbox_files"
SANDBOX_OPS = ("program_of_thought", "rlm")
# where scripts/install-sandbox.sh caches the sandbox's modules in a checkout (images set DENO_DIR instead)
INSTALL_CACHE = Path(__file__).resolve().parents[3] / ".dspex" / "deno" / "current"


def deno_dir() -> str | None:
    """The DENO_DIR the sandbox runs from: the environment's, else this checkout's install cache."""
    return os.environ.get("DENO_DIR") or (str(INSTALL_CACHE) if INSTALL_CACHE.is_dir() else None)


def _pyodide_version() -> str:
    """The Pyodide version the lockfile pins (`npm:pyodide@<version>`)."""
    lock = json.loads((SANDBOX_DIR / "deno.lock").read_text(encoding="utf-8"))
    return str(next(v for k, v in lock["specifiers"].items() if k.startswith("npm:pyodide@")))


def sandbox_cached() -> bool:
    """Whether Pyodide is in the sandbox's DENO_DIR (Deno runs with --cached-only: it fetches nothing)."""
    directory = deno_dir()
    return (
        directory is not None
        and (Path(directory) / "npm" / "registry.npmjs.org" / "pyodide" / _pyodide_version()).is_dir()
    )


def find_deno() -> str | None:
    """The Deno binary DSPy's sandbox would use: the `deno` Python package's, else `deno` on PATH."""
    try:
        from deno import find_deno_bin  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return str(find_deno_bin())
    except Exception:
        return shutil.which("deno")


def _kill(process: subprocess.Popen[str] | None) -> bool:
    """SIGKILLs a running deno process and reaps it; whether it was running."""
    if process is None or process.poll() is not None:
        return False
    process.kill()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        log.warning("deno process did not exit after SIGKILL", pid=process.pid)
    return True


class GuardedInterpreter(PythonInterpreter):  # type: ignore[misc]
    """DSPy's interpreter that refuses to run once its request's Sandboxes is closed. The check sits between the
    process start and its first exchange: a process started while the sandboxes were being closed is killed here,
    one started before is killed by `Sandboxes.close`."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        super().__init__()
        self._dspex_sandboxes = sandboxes

    def _health_check(self) -> None:
        if self._dspex_sandboxes.closed:
            _kill(self.deno_process)
            raise CodeInterpreterError("the request ended (its deadline passed): the sandbox was stopped")
        super()._health_check()


class Sandboxes:
    """The sandboxes one request's program starts (DSPy's `interpreter_factory` is `interpreter`); `close` kills
    those still running and refuses new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interpreters: list[GuardedInterpreter] = []
        self.closed = False

    def interpreter(self) -> Any:
        with self._lock:
            if self.closed:
                raise CodeInterpreterError("the request ended (its deadline passed): no new sandbox")
            interpreter = sandbox_interpreter(self)
            self._interpreters.append(interpreter)
        return interpreter

    def close(self) -> int:
        """Kills every sandbox process of the request still running; how many were."""
        with self._lock:
            self.closed = True
            interpreters = list(self._interpreters)
        killed = sum(_kill(getattr(i, "deno_process", None)) for i in interpreters)
        if killed:
            log.info("sandbox stopped", killed=killed)
        return killed


def sandbox_interpreter(sandboxes: Sandboxes) -> GuardedInterpreter:
    """DSPy's `PythonInterpreter` (Deno + Pyodide) with deno.land's `std/io` served from this package, closed with
    the request's `sandboxes`.

    The default Deno command is a list DSPy builds in `PythonInterpreter.__init__`; `--cached-only`, the lockfile
    (instead of DSPy's `--no-lock`) and the import map go right after `run`, and the directory joins
    `--allow-read`."""
    directory = deno_dir()
    if directory is not None:
        os.environ.setdefault("DENO_DIR", directory)  # DSPy's interpreter and its Deno read it from here
    interpreter = GuardedInterpreter(sandboxes)
    command = getattr(interpreter, "deno_command", None)
    if isinstance(command, list) and "run" in command:
        # resolved from the lockfile the install used (the cache holds those versions, and no registry metadata)
        command[:] = [arg for arg in command if arg != "--no-lock"]
        at = command.index("run") + 1
        command[at:at] = [
            "--cached-only",
            f"--lock={SANDBOX_DIR / 'deno.lock'}",
            "--frozen",
            f"--import-map={SANDBOX_DIR / 'import_map.json'}",
        ]
        for i, arg in enumerate(command):
            if isinstance(arg, str) and arg.startswith("--allow-read="):
                command[i] = f"{arg},{SANDBOX_DIR}"
    return interpreter


def need_deno(op: str) -> None:
    if find_deno() is None:
        raise Unsupported(
            f"op {op!r} runs generated code in DSPy's Deno 2.x + Pyodide sandbox, and this worker has no Deno: "
            "install the PyPI package `deno` (dspy[deno]) in the worker's environment or put deno 2.x on PATH",
            details={"op": op, "needs": "deno>=2,<3"},
        )
    if not sandbox_cached():
        raise Unsupported(
            f"op {op!r} runs generated code in DSPy's Deno + Pyodide sandbox, whose modules are not cached in this "
            f"worker's DENO_DIR ({deno_dir() or 'unset'}): run scripts/install-sandbox.sh, or build the image, "
            "which caches them; nothing is fetched at run time",
            details={"op": op, "needs": "the sandbox cache"},
        )


def sandbox_failure(op: str, exc: BaseException) -> Unsupported | None:
    """DSPy's interpreter failing to start (Deno missing, or its imports not downloadable) as a typed error."""
    text = f"{type(exc).__name__}: {exc}"
    if "Deno" in text or "deno" in text or "Pyodide" in text or "CodeInterpreter" in text:
        first = " ".join(str(exc).split())[:400]
        hint = (
            " (the sandbox's modules are not cached in this worker's DENO_DIR: run scripts/install-sandbox.sh, or "
            "build the image, which caches them)"
            if "--cached-only" in text
            else ""
        )
        return Unsupported(
            f"op {op!r} could not start DSPy's Deno + Pyodide sandbox on this worker: {first}{hint}",
            details={"op": op, "exception": type(exc).__name__},
        )
    return None
