"""Unit tests of the DSPy surface's checks: module options, rewards, tool specs, compile specs, ensembles."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import dspy
import pytest

from dspex_worker.ops import sandbox
from dspex_worker.ops.compile.optimizers import strip_lm_state
from dspex_worker.ops.compile.runner import to_examples
from dspex_worker.ops.compile.spec import parse_compile
from dspex_worker.ops.rewards import resolve_reward
from dspex_worker.ops.surface import trajectory_steps
from dspex_worker.ops.tools import check_tool_specs
from dspex_worker.programs.ensemble import EnsembleProgram
from dspex_worker.protocol import check_module_options
from dspex_worker.protocol.errors import ValidationError
from dspex_worker.signatures import build_signature

SIG = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


def field_of(fn: Any, *args: Any, **kwargs: Any) -> str | None:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value.field


def test_module_options_defaults_and_errors_name_the_field() -> None:
    # defaults of the schema, those of referenced definitions (innerModule) included
    assert check_module_options("best_of_n", {"reward": "one_word"}) == {
        "module": "predict",
        "n": 3,
        "reward": "one_word",
        "threshold": 1.0,
    }
    assert check_module_options("multi_chain_comparison", None) == {"m": 3, "temperature": 0.7}
    assert field_of(check_module_options, "best_of_n", {"reward": "x", "n": 0}) == "module.n"
    assert field_of(check_module_options, "best_of_n", {"reward": "x", "n": True}) == "module.n"
    assert field_of(check_module_options, "best_of_n", {}) == "module.reward"
    assert field_of(check_module_options, "best_of_n", {"reward": "x", "module": "react"}) == "module.module"
    assert field_of(check_module_options, "react", {"tools": [], "bogus": 1}) == "module.bogus"
    assert field_of(check_module_options, "react", []) == "module"
    assert field_of(check_module_options, "ensemble", {"demos": []}) == "module.demos"
    with pytest.raises(ValidationError) as info:
        check_module_options("majority", {"n": 21})
    assert info.value.message == "module.n: must be smaller than or equal to 20"


def test_rewards_are_named_bound_and_have_source() -> None:
    reward = resolve_reward("max_words", {"max": 2})
    assert reward({}, dspy.Prediction(answer="one two three")) == pytest.approx(2 / 3)
    assert reward({}, dspy.Prediction(answer="one")) == 1.0
    assert reward.rewards == [pytest.approx(2 / 3), 1.0]
    assert "def max_words" in reward.source and "{'max': 2}" in reward.source
    # dspy.Refine falls back to the class's source for callable objects: it must exist.
    assert "class Reward" in inspect.getsource(type(reward))
    assert field_of(resolve_reward, "nope", None) == "module.reward"
    assert field_of(resolve_reward, "equals", {"wrong": 1}) == "module.reward_args"
    assert field_of(resolve_reward, "os:system", None) == "module.reward"  # not allow-listed


def tools(*specs: Any) -> list[dict[str, Any]]:
    """The tool specs as the op gets them: the react options checked against the schema, then the tools' own rules."""
    return check_tool_specs(check_module_options("react", {"tools": list(specs)})["tools"])


def test_tool_specs() -> None:
    specs = tools({"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}})
    assert specs[0]["subject"] == "dspex.tool.add" and specs[0]["timeout_ms"] == 30_000
    assert field_of(tools) == "module.tools"
    assert field_of(tools, {"name": "finish"}) == "module.tools[0].name"
    assert field_of(tools, {"name": "a b"}) == "module.tools[0].name"
    assert field_of(tools, {"name": "a"}, {"name": "a"}) == "module.tools[1].name"
    assert field_of(tools, {"name": "a", "subject": "dspex.tool.*"}) == "module.tools[0].subject"
    assert field_of(tools, {"name": "a", "timeout_ms": 0}) == "module.tools[0].timeout_ms"
    bad_required = {"name": "a", "parameters": {"properties": {}, "required": ["x"]}}
    assert field_of(tools, bad_required) == "module.tools[0].parameters.required"


def test_trajectory_steps() -> None:
    flat = {"thought_0": "t", "tool_name_0": "add", "tool_args_0": {"a": 1}, "observation_0": 2, "thought_1": "done"}
    flat.update({"tool_name_1": "finish", "tool_args_1": {}, "observation_1": "Completed."})
    assert trajectory_steps(flat) == [
        {"thought": "t", "tool_name": "add", "tool_args": {"a": 1}, "observation": 2},
        {"thought": "done", "tool_name": "finish", "tool_args": {}, "observation": "Completed."},
    ]


def compile_map(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "optimizer": "BootstrapFewShot",
        "program": {"id": "p", "version": 1},
        "trainset": [{"question": "q", "answer": "a"}],
        "metric": "answer_exact_match",
    }
    return {**base, **overrides}


def test_compile_specs() -> None:
    spec = parse_compile(compile_map(options={"max_bootstrapped_demos": 2}), "job-1")
    assert spec.job == "job-1" and spec.init == {"max_bootstrapped_demos": 2} and spec.metric == "answer_exact_match"
    assert spec.evaluate is True and not spec.takes_valset
    mipro = parse_compile(compile_map(optimizer="MIPROv2", options={"num_candidates": 2, "num_trials": 2}), "j")
    assert mipro.init["auto"] is None and mipro.compile == {"num_trials": 2}
    assert field_of(parse_compile, compile_map(optimizer="Nope"), "j") == "compile.optimizer"
    assert field_of(parse_compile, compile_map(options={"bogus": 1}), "j") == "compile.options.bogus"
    assert field_of(parse_compile, compile_map(metric=None), "j") == "compile.metric"
    assert field_of(parse_compile, compile_map(optimizer="MIPROv2", options={"num_candidates": 2}), "j") == (
        "compile.options.num_trials"
    )
    assert field_of(parse_compile, compile_map(optimizer="GEPA"), "j") == "compile.options.max_metric_calls"
    assert field_of(parse_compile, compile_map(optimizer="SIMBA", options={"bsize": 2}), "j") == "compile.options.bsize"
    assert field_of(parse_compile, compile_map(trainset=[]), "j") == "compile.trainset"
    assert field_of(parse_compile, compile_map(), "j#2") == "compile.job", "a request id that is no job id"
    assert field_of(parse_compile, compile_map(optimizer="MIPROv2", options={"auto": "x"}), "j") == (
        "compile.options.auto"
    )
    assert field_of(parse_compile, compile_map(optimizer="Ensemble"), "j") == "compile.options"
    bfrs = parse_compile(
        compile_map(optimizer="BootstrapFewShotWithRandomSearch", options={"labeled_sample": True}), "j"
    )
    assert bfrs.compile == {"labeled_sample": True} and bfrs.init == {} and bfrs.takes_valset
    assert field_of(to_examples, [{"answer": "a"}], SIG, "compile.trainset") == "compile.trainset[0].question"
    examples = to_examples([{"question": "q", "answer": "a"}], SIG, "t")
    assert examples[0].inputs().toDict() == {"question": "q"} and examples[0].answer == "a"


def test_strip_lm_state() -> None:
    state = {"predict": {"demos": [], "lm": {"model": "openai/x", "api_base": "http://h"}}, "other": [{"lm": {}}]}
    assert strip_lm_state(state) == {"predict": {"demos": [], "lm": None}, "other": [{"lm": None}]}


def test_ensemble_program_round_trips_its_state() -> None:
    signature = build_signature(SIG)
    members = [
        {"module": "predict", "demos": [{"question": "q", "answer": "a"}]},
        {"module": "chain_of_thought", "dspy_state": None},
    ]
    program = EnsembleProgram(signature)
    program.set_members(members)
    again = EnsembleProgram(signature).load_state(program.dump_state())
    assert again.dump_state() == program.dump_state()
    assert len(again.members) == 2 and again.members[0].demos[0].answer == "a"
    assert again.field == "answer"
    votes = [dspy.Prediction(answer="x"), dspy.Prediction(answer="y"), dspy.Prediction(answer="x")]
    assert again.reduce(votes).answer == "x"
    assert field_of(EnsembleProgram(signature).load_state, {"ensemble": {"members": []}}) == "program"


def test_program_of_thought_without_deno_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    from dspex_worker.protocol.errors import Unsupported

    monkeypatch.setattr(sandbox, "find_deno", lambda: None)
    with pytest.raises(Unsupported) as info:
        sandbox.need_deno("program_of_thought")
    assert info.value.type == "Unsupported" and "Deno" in info.value.message and not info.value.retryable
    failure = sandbox.sandbox_failure("rlm", RuntimeError("Deno exited (code 1) during health check"))
    assert failure is not None and failure.type == "Unsupported"
    assert sandbox.sandbox_failure("rlm", RuntimeError("unrelated")) is None


def test_sandbox_interpreter_maps_deno_land_to_the_package() -> None:
    interpreter = sandbox.sandbox_interpreter(sandbox.Sandboxes())
    command = interpreter.deno_command
    assert f"--import-map={sandbox.SANDBOX_DIR / 'import_map.json'}" in command
    assert command.index(f"--import-map={sandbox.SANDBOX_DIR / 'import_map.json'}") < command.index("run") + 5
    assert any(a.startswith("--allow-read=") and a.endswith(str(sandbox.SANDBOX_DIR)) for a in command)
    assert (sandbox.SANDBOX_DIR / "std_io.ts").exists()


def test_closed_sandboxes_start_nothing() -> None:
    from dspy.primitives.code_interpreter import CodeInterpreterError

    sandboxes = sandbox.Sandboxes()
    assert sandboxes.close() == 0
    with pytest.raises(CodeInterpreterError, match="no new sandbox"):
        sandboxes.interpreter()


@pytest.mark.skipif(sandbox.find_deno() is None, reason="no Deno on this machine")
def test_closing_the_sandboxes_kills_a_looping_program_and_frees_its_thread() -> None:
    from dspy.primitives.code_interpreter import CodeInterpreterError

    sandboxes = sandbox.Sandboxes()
    interpreter = sandboxes.interpreter()
    outcome: list[BaseException | object] = []
    running = threading.Event()

    def run() -> None:
        interpreter.start()  # the sandbox up (Pyodide loaded) before the program
        running.set()
        try:
            outcome.append(interpreter.execute("while True:\n    pass"))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert running.wait(120), "the sandbox did not start"
    process = interpreter.deno_process
    assert process is not None and process.poll() is None
    assert sandboxes.close() == 1
    thread.join(10)
    assert not thread.is_alive(), "the thread reading the sandbox's answer ended"
    assert isinstance(outcome[0], CodeInterpreterError), outcome
    assert process.poll() is not None and not Path(f"/proc/{process.pid}").exists(), "killed and reaped"
