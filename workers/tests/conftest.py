"""Fixtures of the integration tests (bus.py): a real nats-server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nats_bus import nats_server


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    with nats_server(tmp_path / "js") as url:
        yield url
