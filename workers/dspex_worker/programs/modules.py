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


# What DSPy's Predict.dump_state writes (besides `lm`). A stored program's state keeps only these: `load_state` sets
# any other key as an attribute of the predictor — `config` is passed to every LM call, so a state holding
# `config.api_base` would send the request's LM, with its key, to that host — and `lm` would build an LM of its own.
PREDICTOR_STATE_KEYS = ("traces", "train", "demos", "signature", "extended_signature", "fields")


def _predictor_state(raw: dict[str, Any]) -> dict[str, Any]:
    return {**{k: raw[k] for k in PREDICTOR_STATE_KEYS if k in raw}, "lm": None}


def safe_dspy_state(module: Any, state: Any) -> Any:
    """A basic module's `dump_state` map reduced to what learned state is (demos, instructions, traces) for each of
    its predictors: no LM, no LM call settings. The request's LM (the operator's profile) runs every predictor.
    Other modules (ensembles) read their own state, and load their members through apply_state."""
    basic = any(isinstance(module, kind) for kind in BASIC_MODULES.values())
    if not isinstance(state, dict) or not basic:
        return state  # load_state says what is wrong with it
    out: dict[str, Any] = {}
    for name, _ in module.named_predictors():
        raw = state if name == "self" else state.get(name)
        if not isinstance(raw, dict):
            if name in state:
                out[name] = raw
            continue
        if name == "self":  # a Predict's state is flat
            return _predictor_state(raw)
        out[name] = _predictor_state(raw)
    return out


def apply_state(module: Any, state: dict[str, Any] | None) -> None:
    """Loads DSPy `dump_state` JSON (`dspy_state`, reduced by safe_dspy_state), or plain few-shot `demos`, into a
    freshly built module."""
    if not state:
        return
    if state.get("dspy_state"):
        module.load_state(safe_dspy_state(module, state["dspy_state"]))
    elif state.get("demos"):
        set_demos(module, state["demos"])
