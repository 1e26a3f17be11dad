"""The DSPy modules programs are made of, and how learned state is loaded into one: shared by stored programs,
ensemble members and the modules the ops build inside others (best_of_n, parallel, majority)."""

from __future__ import annotations

from typing import Any

import dspy

# `predict` and `chain_of_thought`: the modules a stored program, an ensemble member or an inner module can be.
BASIC_MODULES: dict[str, type[Any]] = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}


def set_demos(module: Any, demos: list[dict[str, Any]]) -> None:
    examples = [dspy.Example(**d) for d in demos]
    for predictor in module.predictors():
        predictor.demos = list(examples)


def build_module(kind: str, signature: Any, demos: list[dict[str, Any]] | None = None) -> Any:
    """A `predict` or `chain_of_thought` module of the signature, with few-shot demos when given."""
    module = BASIC_MODULES[kind](signature)
    if demos:
        set_demos(module, demos)
    return module


def apply_state(module: Any, state: dict[str, Any] | None) -> None:
    """Loads DSPy `dump_state` JSON (`dspy_state`), or plain few-shot `demos`, into a freshly built module."""
    if not state:
        return
    if state.get("dspy_state"):
        module.load_state(state["dspy_state"])
    elif state.get("demos"):
        set_demos(module, state["demos"])
