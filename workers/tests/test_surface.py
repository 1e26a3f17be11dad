"""Unit tests of the DSPy surface's checks: module options, rewards, tool specs, compile specs, ensembles."""

from __future__ import annotations

import inspect
from typing import Any

import dspy
import pytest

from dspex_worker.ensemble import EnsembleProgram
from dspex_worker.errors import ValidationError
from dspex_worker.modules import OPTIONS, check_options, trajectory_steps
from dspex_worker.optimize import parse_compile, strip_lm_state, to_examples
from dspex_worker.rewards import resolve_reward
from dspex_worker.signatures import build_signature
from dspex_worker.tools import check_tool_specs

SIG = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


def field_of(fn: Any, *args: Any, **kwargs: Any) -> str | None:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value.field


def test_module_options_defaults_and_errors_name_the_field() -> None:
    assert check_options({"reward": "one_word"}, OPTIONS["best_of_n"]) == {
        "module": "predict",
        "n": 3,
        "reward": "one_word",
        "reward_args": None,
        "threshold": 1.0,
        "fail_count": None,
        "demos": None,
    }
    assert field_of(check_options, {"reward": "x", "n": 0}, OPTIONS["best_of_n"]) == "module.n"
    assert field_of(check_options, {"reward": "x", "n": True}, OPTIONS["best_of_n"]) == "module.n"
    assert field_of(check_options, {}, OPTIONS["best_of_n"]) == "module.reward"
    assert field_of(check_options, {"reward": "x", "module": "react"}, OPTIONS["best_of_n"]) == "module.module"
    assert field_of(check_options, {"tools": [], "bogus": 1}, OPTIONS["react"]) == "module.bogus"
    assert field_of(check_options, [], OPTIONS["react"]) == "module"


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


def test_tool_specs() -> None:
    specs = check_tool_specs(
        [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}]
    )
    assert specs[0]["subject"] == "dspex.tool.add" and specs[0]["timeout_ms"] == 30_000
    assert field_of(check_tool_specs, [{"name": "finish"}]) == "module.tools[0].name"
    assert field_of(check_tool_specs, [{"name": "a b"}]) == "module.tools[0].name"
    assert field_of(check_tool_specs, [{"name": "a"}, {"name": "a"}]) == "module.tools[1].name"
    assert field_of(check_tool_specs, [{"name": "a", "subject": "dspex.tool.*"}]) == "module.tools[0].subject"
    bad_required = [{"name": "a", "parameters": {"properties": {}, "required": ["x"]}}]
    assert field_of(check_tool_specs, bad_required) == "module.tools[0].parameters.required"


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
    assert (
        spec.job == "job-1"
        and spec.init == {"max_bootstrapped_demos": 2}
        and spec.metric == {"name": "answer_exact_match"}
    )
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
    from dspex_worker import modules

    monkeypatch.setattr(modules, "find_deno", lambda: None)
    with pytest.raises(modules.Unsupported) as info:
        modules._need_deno("program_of_thought")
    assert info.value.type == "Unsupported" and "Deno" in info.value.message and not info.value.retryable
    failure = modules._sandbox_failure("rlm", RuntimeError("Deno exited (code 1) during health check"))
    assert failure is not None and failure.type == "Unsupported"
    assert modules._sandbox_failure("rlm", RuntimeError("unrelated")) is None


def test_sandbox_interpreter_maps_deno_land_to_the_package() -> None:
    from dspex_worker.modules import SANDBOX_DIR, sandbox_interpreter

    interpreter = sandbox_interpreter()
    command = interpreter.deno_command
    assert f"--import-map={SANDBOX_DIR / 'import_map.json'}" == command[command.index("run") + 1]
    assert any(a.startswith("--allow-read=") and a.endswith(str(SANDBOX_DIR)) for a in command)
    assert (SANDBOX_DIR / "std_io.ts").exists()
