"""Named reward functions for `best_of_n` and `refine` (docs/dspy-surface.md).

`dspy.Refine` and `dspy.BestOfN` take `reward_fn(inputs: dict, prediction) -> float`, and Refine reads the reward
function's source with `inspect.getsource` to show it to the LM, so code received over the wire cannot be a
reward function. A request names one of the functions here (or an allow-listed `package.module:function`,
environment variable DSPEX_REWARDS_ALLOW) and gives its keyword arguments:

    module: { reward: "max_words", reward_args: { field: "answer", max: 3 }, threshold: 1.0, n: 3 }
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

from ..protocol.errors import ValidationError
from .allowlist import load_allowed

ALLOW_ENV = "DSPEX_REWARDS_ALLOW"

RewardFn = Callable[..., Any]


def _text(prediction: Any, field: str) -> str:
    value = prediction.get(field) if hasattr(prediction, "get") else None
    return "" if value is None else str(value)


def non_empty(inputs: dict[str, Any], prediction: Any, field: str = "answer") -> float:
    """1.0 when the output field is not empty."""
    return 1.0 if _text(prediction, field).strip() else 0.0


def one_word(inputs: dict[str, Any], prediction: Any, field: str = "answer") -> float:
    """1.0 when the output field is a single word."""
    return 1.0 if len(_text(prediction, field).split()) == 1 else 0.0


def max_words(inputs: dict[str, Any], prediction: Any, field: str = "answer", max: int = 1) -> float:  # noqa: A002
    """1.0 when the output field has at most `max` words, else max / words."""
    words = len(_text(prediction, field).split())
    return 1.0 if words <= max else max / words


def max_length(inputs: dict[str, Any], prediction: Any, field: str = "answer", max: int = 100) -> float:  # noqa: A002
    """1.0 when the output field has at most `max` characters, else max / length."""
    length = len(_text(prediction, field))
    return 1.0 if length <= max else max / length


def contains(
    inputs: dict[str, Any], prediction: Any, field: str = "answer", text: str = "", case_sensitive: bool = False
) -> float:
    """1.0 when the output field contains `text`."""
    value = _text(prediction, field)
    if not case_sensitive:
        return 1.0 if text.lower() in value.lower() else 0.0
    return 1.0 if text in value else 0.0


def equals(inputs: dict[str, Any], prediction: Any, field: str = "answer", value: Any = "") -> float:
    """1.0 when the output field equals `value` (case and surrounding whitespace ignored)."""
    return 1.0 if _text(prediction, field).strip().lower() == str(value).strip().lower() else 0.0


def matches(inputs: dict[str, Any], prediction: Any, field: str = "answer", pattern: str = "") -> float:
    """1.0 when the output field matches the regular expression `pattern` (re.search)."""
    return 1.0 if re.search(pattern, _text(prediction, field)) else 0.0


BUILTIN_REWARDS: dict[str, RewardFn] = {
    "non_empty": non_empty,
    "one_word": one_word,
    "max_words": max_words,
    "max_length": max_length,
    "contains": contains,
    "equals": equals,
    "matches": matches,
}


class Reward:
    """A named reward function bound to its arguments; records every reward it hands out.

    A class (not a closure or functools.partial) so that `inspect.getsource` works on it, which dspy.Refine needs;
    `source` is the named function's own source, which Refine shows to the LM instead of this wrapper's."""

    def __init__(self, name: str, fn: RewardFn, args: dict[str, Any]) -> None:
        self.name = name
        self.fn = fn
        self.args = args
        self.rewards: list[float] = []
        try:
            self.source = inspect.getsource(fn)
        except (OSError, TypeError):
            self.source = f"def {name}(inputs, prediction): ..."
        if args:
            self.source += f"\n# called with {args!r}"

    def __call__(self, inputs: dict[str, Any], prediction: Any) -> float:
        value = self.fn(inputs, prediction, **self.args)
        if not isinstance(value, int | float):
            raise ValidationError(
                f"module.reward: reward {self.name!r} returned {type(value).__name__}, not a number",
                field="module.reward",
            )
        reward = float(value)
        if not math.isfinite(reward):
            raise ValidationError(f"module.reward: reward {self.name!r} returned {reward}", field="module.reward")
        self.rewards.append(reward)
        return reward


def resolve_reward(name: str, args: dict[str, Any] | None, field: str = "module.reward") -> Reward:
    """The reward named `name` (a non-empty string, as the schema requires) bound to `args`; ValidationError
    naming the field for an unknown or disallowed name, or arguments the function does not take."""
    args = args or {}
    fn = BUILTIN_REWARDS.get(name)
    if fn is None:
        if ":" not in name:
            raise ValidationError(
                f"{field}: unknown reward {name!r}; built-in rewards: {', '.join(sorted(BUILTIN_REWARDS))}, or an "
                f"allow-listed `package.module:function` ({ALLOW_ENV})",
                field=field,
                details={"builtin": sorted(BUILTIN_REWARDS)},
            )
        fn = load_allowed(name, ALLOW_ENV, what="reward", field=field)
    try:
        inspect.signature(fn).bind({}, None, **args)
    except TypeError as exc:
        where = f"{field}_args"
        raise ValidationError(f"{where}: reward {name!r} does not take these arguments: {exc}", field=where) from exc
    return Reward(name, fn, dict(args))
