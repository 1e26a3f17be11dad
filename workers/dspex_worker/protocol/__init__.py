"""dspex_worker.protocol — the wire contract in Python. Everything under generated/ comes from schemas/
(`npm run generate`); this package adds only what a schema cannot say: the msgpack codec, the error mapping
and path-naming checks."""

from .codec import decode, encode
from .error_base import DspexError
from .errors import error_from_wire
from .validate import (
    check_compile,
    check_dlq_redacted_body,
    check_job_progress,
    check_job_record,
    check_lm,
    check_lm_profiles,
    check_module_options,
    check_request,
    check_signature,
)

ENVELOPE_VERSION = 1

__all__ = [
    "ENVELOPE_VERSION",
    "DspexError",
    "check_compile",
    "check_dlq_redacted_body",
    "check_job_progress",
    "check_job_record",
    "check_lm",
    "check_lm_profiles",
    "check_module_options",
    "check_request",
    "check_signature",
    "decode",
    "encode",
    "error_from_wire",
]
