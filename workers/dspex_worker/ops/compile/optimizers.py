"""The DSPy side of an optimizer job: the optimizer built from its options, the checks DSPy cannot make before
it starts, scoring with `dspy.Evaluate`, and the parts of the result that are stored."""

from __future__ import annotations

from typing import Any

import dspy

from ...execution import sum_usage
from ...protocol.errors import Unsupported
from .spec import CompileSpec


def strip_lm_state(state: Any) -> Any:
    """`dump_state` JSON without per-predictor LM settings (endpoints, models), so runs use the caller's LM."""
    if isinstance(state, dict):
        return {k: (None if k == "lm" else strip_lm_state(v)) for k, v in state.items()}
    if isinstance(state, list):
        return [strip_lm_state(v) for v in state]
    return state


def lm_usage(*lms: Any) -> dict[str, int]:
    """Token usage of every call in the LMs' histories (each job runs on copies of the LMs, so this is its own)."""
    calls = [entry for lm in lms for entry in getattr(lm, "history", None) or [] if isinstance(entry, dict)]
    return sum_usage(*({str(lm): call.get("usage") or {}} for lm, call in enumerate(calls)))


def build_optimizer(spec: CompileSpec, metric: Any, lms: dict[str, Any]) -> Any:
    """The DSPy optimizer with its constructor options; `lms` holds the prompt/teacher/reflection LMs."""
    kwargs = dict(spec.init)
    name = spec.optimizer
    if name == "LabeledFewShot":
        return dspy.LabeledFewShot(**kwargs)
    if name == "Ensemble":
        return dspy.Ensemble(reduce_fn=dspy.majority, **kwargs)
    if lms.get("teacher") is not None and name in (
        "BootstrapFewShot",
        "BootstrapFewShotWithRandomSearch",
        "MIPROv2",
        "SIMBA",
    ):
        kwargs["teacher_settings"] = {"lm": lms["teacher"]}
    if name == "BootstrapFewShot":
        return dspy.BootstrapFewShot(metric=metric, **kwargs)
    if name == "BootstrapFewShotWithRandomSearch":
        return dspy.BootstrapFewShotWithRandomSearch(metric=metric, **kwargs)
    if name == "MIPROv2":
        return dspy.MIPROv2(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    if name == "COPRO":
        return dspy.COPRO(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    if name == "GEPA":
        return dspy.GEPA(metric=metric, reflection_lm=lms["reflection"], **kwargs)
    if name == "SIMBA":
        return dspy.SIMBA(metric=metric, prompt_model=lms.get("prompt"), **kwargs)
    if name == "BootstrapFinetune":
        return dspy.BootstrapFinetune(metric=metric, **kwargs)
    raise Unsupported(f"compile.optimizer: {name} is not supported here", field="compile.optimizer")


def check_finetune(lm: Any, config: dict[str, Any] | None) -> None:
    """BootstrapFinetune trains through the provider's fine-tuning API; an OpenAI-compatible endpoint at a custom
    `api_base` (the LM double, vLLM, …) has none that DSPy can drive."""
    provider = getattr(lm, "provider", None)
    api_base = (config or {}).get("api_base") or getattr(lm, "kwargs", {}).get("api_base")
    if api_base or provider is None or not getattr(provider, "finetunable", False):
        raise Unsupported(
            f"compile: BootstrapFinetune needs an LM provider with a fine-tuning API that DSPy drives; the job's LM "
            f"{getattr(lm, 'model', '?')!r}{' at ' + str(api_base) if api_base else ''} does not offer one",
            details={"optimizer": "BootstrapFinetune", "model": str(getattr(lm, "model", ""))},
        )


def evaluate_program(program: Any, devset: list[Any], metric: Any, num_threads: int) -> float:
    evaluator = dspy.Evaluate(
        devset=devset, metric=metric, num_threads=num_threads, display_progress=False, display_table=False
    )
    return float(evaluator(program).score)
