"""Labelers: what to ask of a model, and how answers or vectors become labels. One file each.

- `llm` (`llm.py`): the LLM writes every label (enum-constrained JSON);
- `embed` (`embed.py`): nearest MiniLM category prototype, no LLM;
- `fused` (`fused.py`): MiniLM's and the LLM's hidden-state similarities, added;
- `hybrid` (`hybrid.py`): the LLM chooses among the embedding's top candidates.

Each class declares what it is (`base.py`); the registry below names them as "module:object"
strings, so nothing heavy is imported until a labeler is used.
"""

from __future__ import annotations

import importlib

from ..errors import OfflineCovError

LABELERS = {
    "llm": "offline_cov.labelers.llm:LLMLabeler",
    "embed": "offline_cov.labelers.embed:EmbedLabeler",
    "fused": "offline_cov.labelers.fused:FusedLabeler",
    "hybrid": "offline_cov.labelers.hybrid:HybridLabeler",
}
# What labels samples on a machine without a GPU when no labeler is named: the one that
# bench/labelers.py measured best there (bench/README.md). On a GPU it is the LLM.
CPU_DEFAULT_LABELER = "fused"


def get_labeler_class(name: str):
    """The labeler class registered as `name`; lists the choices when the name is unknown."""
    if name not in LABELERS:
        raise OfflineCovError(f"Unknown labeler {name!r}. Available: {', '.join(LABELERS)}")
    module, _, attr = LABELERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def default_labeler(llm_asked: bool = False) -> str:
    """`llm` where a GPU is visible or an LLM was asked for; elsewhere the CPU default the bench chose."""
    from ..registry import gpu_available

    return "llm" if llm_asked or gpu_available() else CPU_DEFAULT_LABELER
