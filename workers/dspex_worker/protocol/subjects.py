"""What a schema cannot say about subjects in a request (`stream.subject`, a tool's `subject`): the worker publishes
to them, so they must be literal subjects — tokens separated by dots, no wildcards (`*`, `>`) or spaces."""

from __future__ import annotations

import re

_PUBLISH_SUBJECT = re.compile(r"[A-Za-z0-9_\-$]+(\.[A-Za-z0-9_\-$]+)*")


def is_publish_subject(subject: str) -> bool:
    return bool(_PUBLISH_SUBJECT.fullmatch(subject))
