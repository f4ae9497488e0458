"""The tool's home folder (converted models, caches) and the offline environment."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "OFFLINE_COV_HOME"

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
}


def tool_home() -> Path:
    """$OFFLINE_COV_HOME, else $XDG_CACHE_HOME/offline-cov, else ~/.cache/offline-cov."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "offline-cov"


def go_offline() -> None:
    """Forbid downloads and usage reports for this process and the workers it spawns."""
    os.environ.update(OFFLINE_ENV)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # Without it vLLM finds its host address by a UDP connect to a public resolver.
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
