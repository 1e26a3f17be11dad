"""The `complete` operation: one raw LM call through the fleet, for callers who need a completion without a
signature (`client.complete(messages, options)`).

The request is an ordinary envelope with the signature `messages: list[dict[str, str]] -> completions` and
`inputs: {messages: [{role, content}, …]}`; `module` (CompleteOptions) may set only `temperature`, `max_tokens`,
`n` and `stop` — the model, endpoint and key are the LM profile's, as for every op. It runs with the same LM
profiles, per-profile limits, error mapping and tracing (DSPy's LM span) as a Predict. Reply outputs:
`{completions: [str, …]}`.
"""

from __future__ import annotations

from typing import Any, Final

import dspy
from dspy.utils.usage_tracker import track_usage

from ..execution import Execution, Request, sum_usage
from ..protocol.errors import ValidationError
from .context import OpContext

ROLES: Final = frozenset({"system", "user", "assistant"})
MAX_MESSAGES: Final = 256


def check_messages(messages: Any) -> list[dict[str, str]]:
    """Chat messages, each `{role, content}` with a known role and string content; errors name the field."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError(
            "inputs.messages: a non-empty list of {role, content} is required", field="inputs.messages"
        )
    if len(messages) > MAX_MESSAGES:
        raise ValidationError(
            f"inputs.messages: {len(messages)} messages; at most {MAX_MESSAGES}", field="inputs.messages"
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValidationError(
                f"inputs.messages[{i}]: a message is exactly {{role, content}}", field=f"inputs.messages[{i}]"
            )
        if m["role"] not in ROLES:
            raise ValidationError(
                f"inputs.messages[{i}].role: {m['role']!r} is not one of {sorted(ROLES)}",
                field=f"inputs.messages[{i}].role",
            )
        if not isinstance(m["content"], str):
            raise ValidationError(
                f"inputs.messages[{i}].content: must be a string", field=f"inputs.messages[{i}].content"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


async def run(ctx: OpContext, request: Request, options: dict[str, Any]) -> Execution:
    messages = check_messages(request["inputs"].get("messages"))
    lm, _ = ctx.lms.resolve(request.get("lm"))
    if not isinstance(lm, dspy.LM):
        raise ValidationError("lm: this profile's LM cannot make raw completions", field="lm")
    with dspy.context(lm=lm), track_usage() as usage:
        outputs = await lm.acall(messages=messages, **options)
    completions = [o if isinstance(o, str) else str(o.get("text", "")) for o in outputs]
    return Execution(outputs={"completions": completions}, lm=str(lm.model), usage=sum_usage(usage.get_total_tokens()))
