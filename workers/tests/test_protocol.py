"""The generated protocol package: not stale, and its checks name the field the way the clients do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dspex_worker.protocol import check_module_options, check_signature
from dspex_worker.protocol.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "workers/dspex_worker/protocol/generated"


def test_the_generated_code_is_what_the_schemas_generate(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/generate_protocol.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.py")}
    checked_in = {p.name: p.read_text() for p in GENERATED.glob("*.py")}
    assert sorted(fresh) == sorted(checked_in), "files added or removed: run `npm run generate`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated code in {stale}: run `npm run generate`"


def failure(check: object, *args: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        check(*args)  # type: ignore[operator]
    return info.value


def test_a_failed_type_expression_names_the_field_inside_it() -> None:
    def sig(type_: object) -> dict[str, object]:
        return {"inputs": [{"name": "q", "type": {"kind": "str"}}], "outputs": [{"name": "a", "type": type_}]}

    nested = {"kind": "list", "items": {"kind": "dict", "keys": {"kind": "str"}, "values": {"kind": "optional"}}}
    assert failure(check_signature, sig(nested)).field == "signature.outputs[0].type.items.values.inner"
    unknown = failure(check_signature, sig({"kind": "list", "items": {"kind": "lst"}}))
    assert unknown.field == "signature.outputs[0].type.items.kind"
    assert unknown.message.startswith("signature.outputs[0].type.items.kind: unknown kind 'lst'; expected one of str")
    assert failure(check_signature, sig("str")).field == "signature.outputs[0].type", "not a union member at all"


def test_defaults_of_referenced_definitions_are_filled_in() -> None:
    assert check_module_options("parallel", {})["module"] == "predict"  # modules.schema.json innerModule
