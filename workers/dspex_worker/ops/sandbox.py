"""DSPy's Deno + Pyodide sandbox, which `program_of_thought` and `rlm` run the LM's code in.

A worker without Deno, or whose sandbox cannot start, answers those ops with the typed error `Unsupported`
(not retryable). DSPy's runner.js imports `https://deno.land/std@0.186.0/io/mod.ts` (for `readLines`) when the
sandbox starts; an import map points it at `sandbox_files/std_io.ts`, so the sandbox needs no access to deno.land
(Deno downloads Pyodide from the npm registry on first use and caches it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..protocol.errors import Unsupported

SANDBOX_DIR = Path(__file__).parent / "sandbox_files"
SANDBOX_OPS = ("program_of_thought", "rlm")


def find_deno() -> str | None:
    """The Deno binary DSPy's sandbox would use: the `deno` Python package's, else `deno` on PATH."""
    try:
        from deno import find_deno_bin  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return str(find_deno_bin())
    except Exception:
        return shutil.which("deno")


def sandbox_interpreter() -> Any:
    """DSPy's `PythonInterpreter` (Deno + Pyodide) with deno.land's `std/io` served from this package.

    The default Deno command is a list DSPy builds in `PythonInterpreter.__init__`; the import map goes right after
    `run` and the directory joins `--allow-read`."""
    from dspy.primitives.python_interpreter import PythonInterpreter

    interpreter = PythonInterpreter()
    command = getattr(interpreter, "deno_command", None)
    if isinstance(command, list) and "run" in command:
        command.insert(command.index("run") + 1, f"--import-map={SANDBOX_DIR / 'import_map.json'}")
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


def sandbox_failure(op: str, exc: BaseException) -> Unsupported | None:
    """DSPy's interpreter failing to start (Deno missing, or its imports not downloadable) as a typed error."""
    text = f"{type(exc).__name__}: {exc}"
    if "Deno" in text or "deno" in text or "Pyodide" in text or "CodeInterpreter" in text:
        first = " ".join(str(exc).split())[:400]
        return Unsupported(
            f"op {op!r} could not start DSPy's Deno + Pyodide sandbox on this worker: {first}",
            details={"op": op, "exception": type(exc).__name__},
        )
    return None
