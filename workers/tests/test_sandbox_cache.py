"""The ProgramOfThought/RLM sandbox runs from what the install cached (scripts/install-sandbox.sh) and never
fetches at run time: with the project's DENO_DIR it runs code; with an empty one it refuses, naming the cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dspy.primitives.code_interpreter import CodeInterpreterError

from dspex_worker.ops.sandbox import Sandboxes, deno_dir, need_deno, sandbox_cached
from dspex_worker.protocol.errors import Unsupported

CACHED = Path(__file__).resolve().parents[2] / ".dspex" / "deno" / "current"


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    s = Sandboxes()
    yield s
    s.close()


def test_the_sandbox_runs_from_the_install_cache(monkeypatch: pytest.MonkeyPatch, sandboxes: Sandboxes) -> None:
    assert CACHED.is_dir(), "scripts/setup.sh caches the sandbox's modules (scripts/install-sandbox.sh)"
    monkeypatch.setenv("DENO_DIR", str(CACHED))
    interpreter = sandboxes.interpreter()
    assert "--cached-only" in interpreter.deno_command
    assert "--no-lock" not in interpreter.deno_command
    assert interpreter.execute("print(6 * 7)").strip() == "42"


def test_an_empty_deno_dir_is_refused_not_fetched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandboxes: Sandboxes
) -> None:
    monkeypatch.setenv("DENO_DIR", str(tmp_path))
    # the op refuses before starting anything, naming the cache
    with pytest.raises(Unsupported) as refused:
        need_deno("program_of_thought")
    assert "install-sandbox.sh" in refused.value.message and str(tmp_path) in refused.value.message
    # and Deno itself, started anyway, fetches nothing
    interpreter = sandboxes.interpreter()
    with pytest.raises(CodeInterpreterError):
        interpreter.execute("print(1)")
    assert not list(tmp_path.rglob("pyodide*")), "nothing was downloaded into the empty DENO_DIR"


def test_without_deno_dir_a_checkout_uses_its_install_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DENO_DIR", raising=False)
    assert deno_dir() == str(CACHED)
    assert sandbox_cached()
