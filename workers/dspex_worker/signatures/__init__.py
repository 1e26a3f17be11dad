"""Signatures as data: checked (check.py), built into dspy.Signature classes once per distinct signature
(build.py), and the inputs of a request checked against them (inputs.py)."""

from .build import SignatureCache, build_signature
from .check import CONSTRAINT_KEYS, RESERVED_FIELD_NAMES, check_signature, format_type, signature_key, type_from_expr
from .inputs import validate_inputs

__all__ = [
    "CONSTRAINT_KEYS",
    "RESERVED_FIELD_NAMES",
    "SignatureCache",
    "build_signature",
    "check_signature",
    "format_type",
    "signature_key",
    "type_from_expr",
    "validate_inputs",
]
