"""An optimizer job's `compile` map, checked before a token is spent: its shape, the optimizer and its options are
the schema's (optimizers.schema.json, `protocol.check_compile`; which options go to the constructor and which to
`compile()` is the generated `OPTIMIZERS` table); combinations DSPy would reject only after starting are checked
here. Every problem is a ValidationError naming `compile.<field>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...protocol import check_compile
from ...protocol.errors import ValidationError
from ...protocol.generated.ops import OPTIMIZERS
from ...protocol.generated.types import LMConfig, ProgramRef

# DSPy's default SIMBA batch size (dspy.SIMBA bsize=32).
SIMBA_DEFAULT_BSIZE = 32


@dataclass(slots=True)
class CompileSpec:
    job: str
    optimizer: str
    init: dict[str, Any]  # constructor options
    compile: dict[str, Any]  # arguments of optimizer.compile()
    options: dict[str, Any]  # as the caller gave them (recorded in the program's lineage)
    program: ProgramRef
    trainset: list[dict[str, Any]]
    valset: list[dict[str, Any]] | None
    metric: str | dict[str, Any] | None
    prompt_lm: LMConfig | None
    teacher_lm: LMConfig | None
    reflection_lm: LMConfig | None
    evaluate: bool
    takes_valset: bool
    record_spec: dict[str, Any]  # the job record's `spec`


def parse_compile(raw: Any, request_id: str) -> CompileSpec:
    # the job id defaults to the request id, which then has to be a job id too: the schema says what one is
    checked = check_compile({"job": request_id, **raw} if isinstance(raw, dict) else raw)
    name = checked["optimizer"]
    info = OPTIMIZERS[name]
    options: dict[str, Any] = checked.get("options") or {}
    init = {k: options[k] for k in info["init"] if k in options}
    comp = {k: options[k] for k in info["compile"] if k in options}
    trainset: list[dict[str, Any]] = checked.get("trainset") or []
    _check_optimizer_rules(name, init, comp, len(trainset))
    return CompileSpec(
        job=checked["job"],
        optimizer=name,
        init=init,
        compile=comp,
        options=dict(options),
        program=checked["program"],
        trainset=trainset,
        valset=checked.get("valset"),
        metric=checked.get("metric"),
        prompt_lm=checked.get("prompt_lm"),
        teacher_lm=checked.get("teacher_lm"),
        reflection_lm=checked.get("reflection_lm"),
        evaluate=checked["evaluate"],
        takes_valset=info["valset"],
        record_spec=optimize_spec(checked),
    )


def _check_optimizer_rules(name: str, init: dict[str, Any], comp: dict[str, Any], n_train: int) -> None:
    """Combinations DSPy would reject only after starting."""
    if name == "MIPROv2":
        auto = init.get("auto")
        if auto is None:
            auto = "off" if ("num_candidates" in init or "num_trials" in comp) else "light"
        if auto == "off":
            for key, where in (("num_candidates", init), ("num_trials", comp)):
                if key not in where:
                    field = f"compile.options.{key}"
                    raise ValidationError(
                        f"{field}: MIPROv2 without `auto` needs it", field=field, details={"auto": "off"}
                    )
        elif "num_candidates" in init or "num_trials" in comp:
            raise ValidationError(
                f"compile.options.auto: MIPROv2 with auto={auto!r} chooses num_candidates and num_trials itself; "
                "set auto: 'off'",
                field="compile.options.auto",
            )
        init["auto"] = None if auto == "off" else auto
    if name == "GEPA":
        budgets = [k for k in ("auto", "max_full_evals", "max_metric_calls") if k in init]
        if len(budgets) != 1:
            raise ValidationError(
                "compile.options.max_metric_calls: GEPA needs exactly one budget: `auto`, `max_full_evals` or "
                "`max_metric_calls`",
                field="compile.options.max_metric_calls",
            )
    if name == "SIMBA":
        bsize = init.get("bsize", SIMBA_DEFAULT_BSIZE)
        if bsize > n_train:
            raise ValidationError(
                f"compile.options.bsize: SIMBA's `bsize` ({bsize}) must not exceed the trainset size ({n_train})",
                field="compile.options.bsize",
            )


def optimize_spec(compile_map: dict[str, Any]) -> dict[str, Any]:
    """The job record's `spec` (job.schema.json OptimizeSpec): the compile map without its datasets, plus their
    sizes. Works on a map that failed its checks too, for the record of a job rejected before it started."""
    spec: dict[str, Any] = {
        k: compile_map[k] for k in ("optimizer", "options", "program", "metric", "evaluate") if k in compile_map
    }
    trainset, valset = compile_map.get("trainset"), compile_map.get("valset")
    spec["trainset_size"] = len(trainset) if isinstance(trainset, list) else 0
    spec["valset_size"] = len(valset) if isinstance(valset, list) else None
    return spec
