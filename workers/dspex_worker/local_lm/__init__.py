"""A small real language model served locally over an OpenAI-compatible API, for keyless demos and tests.

Run ``python -m dspex_worker.local_lm --port 0``; point DSPy at the printed URL with
``dspy.LM("openai/<model>", api_base=url, api_key="local")``. Installed by scripts/install-local-lm.sh.
"""

from __future__ import annotations

from .models import (
    KNOWN_MODELS,
    KnownModel,
    LocalModel,
    LocalModelNotFound,
    find_model,
    find_model_path,
    installed_models,
)


def runtime_available() -> bool:
    """Whether the inference runtime (xllamacpp) is importable, without importing it."""
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def is_installed() -> bool:
    """Runtime importable and a model's weights on disk."""
    if not runtime_available():
        return False
    try:
        find_model_path()
    except LocalModelNotFound:
        return False
    return True


__all__ = [
    "KNOWN_MODELS",
    "KnownModel",
    "LocalModel",
    "LocalModelNotFound",
    "find_model",
    "find_model_path",
    "installed_models",
    "is_installed",
    "runtime_available",
]
