"""What every op runs with: the worker's caches (signature classes, LM clients, built modules, stored programs),
its job store and NATS connection. One per worker process; ops get it as their first argument."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from ..jobs.store import JobStore
from ..lm.factory import LMFactory
from ..programs.modules import build_module
from ..programs.packages import Catalog
from ..programs.store import ProgramStore
from ..protocol.errors import ValidationError
from ..signatures import SignatureCache


class ModuleCache:
    """Predict / ChainOfThought objects reused across requests of one signature (ChainOfThought builds a new
    signature class when it is made); a request with its own demos gets a fresh module."""

    def __init__(self, max_size: int = 256) -> None:
        self._modules: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._max_size = max_size

    def get(self, kind: str, sig_key: str, signature: Any, demos: list[dict[str, Any]] | None = None) -> Any:
        if demos:
            return build_module(kind, signature, demos)
        key = (kind, sig_key)
        module = self._modules.get(key)
        if module is None:
            module = self._modules[key] = build_module(kind, signature)
            if len(self._modules) > self._max_size:
                self._modules.popitem(last=False)
        return module


@dataclass
class OpContext:
    signatures: SignatureCache = field(default_factory=SignatureCache)
    lms: LMFactory = field(default_factory=LMFactory)
    modules: ModuleCache = field(default_factory=ModuleCache)
    worker_id: str = ""
    nc: Client | None = None
    jobs: JobStore | None = None
    # users' packaged programs (programs/packages.py): the worker fills it at start, before it pulls
    catalog: Catalog = field(default_factory=Catalog)
    programs: ProgramStore = field(init=False)

    def __post_init__(self) -> None:
        self.programs = ProgramStore(self.signatures, packaged=lambda name: self.catalog.get(name))

    def connect(self, nc: Client) -> None:
        """Binds the ops that use the bus (stored programs, jobs, tools, streaming) to the worker's connection."""
        self.nc = nc
        js = nc.jetstream()
        self.programs.connect(js)
        self.jobs = JobStore(js)

    def connection(self, field: str) -> Client:
        """The NATS connection an op needs; a worker without one (in-process use) names the field that needed it."""
        if self.nc is None:
            raise ValidationError(f"{field}: needs the worker's NATS connection", field=field)
        return self.nc
