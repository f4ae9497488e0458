"""Labelers: what to ask of a model, and how answers or vectors become labels. One file each.

- `llm` (`llm.py`): the LLM writes every label (enum-constrained JSON);
- `embed` (`embed.py`): nearest MiniLM category prototype, no LLM;
- `fused` (`fused.py`): MiniLM's and the LLM's hidden-state similarities, added;
- `hybrid` (`hybrid.py`): the LLM chooses among the embedding's top candidates;
- `ensemble` (`ensemble.py`): the LLM's probability of every category times `fused`'s, and its
  yes/no check of each sample's likeliest categories;
- `ensemble-nocheck` (`ensemble_nocheck.py`): the same without the check;
- `ensemble-lite` (`ensemble_lite.py`): the same with a check that reuses the label request's prefix.

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
    "ensemble": "offline_cov.labelers.ensemble:EnsembleLabeler",
    "ensemble-nocheck": "offline_cov.labelers.ensemble_nocheck:EnsembleNoCheckLabeler",
    "ensemble-lite": "offline_cov.labelers.ensemble_lite:EnsembleLiteLabeler",
}
# What labels samples on a machine without a GPU when no labeler is named: the one that
# bench/choose.py measured best there (bench/README.md). On a GPU it is the LLM. On a CPU without
# AMX ensemble's check made the bundled example too slow (bench.cpu_default: 569 s on a 2-core EPYC;
# #13's bar is 300), so there it is ensemble-lite, whose check reuses the label request's prefix (294 s
# on the same EPYC; its dev mean 0.781 against 0.703 without a check and ensemble's 0.787).
CPU_DEFAULT_LABELER = "ensemble"
CPU_NO_AMX_LABELER = "ensemble-lite"
CHECK_FLAGS = {"amx_bf16"}  # CPU flags under which the check's prefill is fast enough for the default
LABELER_ENV = "OFFLINE_COV_LABELER"  # the labeler used when none is named (test suites, batch jobs)


def get_labeler_class(name: str):
    """The labeler class registered as `name`; lists the choices when the name is unknown."""
    if name not in LABELERS:
        raise OfflineCovError(f"Unknown labeler {name!r}. Available: {', '.join(LABELERS)}")
    module, _, attr = LABELERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def default_labeler(llm_asked: bool = False, model_named: bool = False) -> str:
    """`llm` where an LLM's own labels were asked for; else $OFFLINE_COV_LABELER when set; else `llm`
    where a GPU is visible and the CPU default the bench chose where not (`cpu_default_labeler`). `model_named` (a `--model`
    was given): that default when it reads the named model (the ensemble), `llm` when it would ignore
    it (`fused`, `embed`), so naming a model never leaves it unused."""
    import os

    from ..registry import gpu_available

    if llm_asked:
        return "llm"
    chosen = os.environ.get(LABELER_ENV)
    if not chosen and gpu_available():
        return "llm"
    chosen = chosen or cpu_default_labeler()
    if chosen not in LABELERS:
        raise OfflineCovError(f"${LABELER_ENV}={chosen!r} is not a labeler. Available: {', '.join(LABELERS)}")
    if model_named and not get_labeler_class(chosen).needs_engine:
        return "llm"
    return chosen


def cpu_default_labeler() -> str:
    """CPU_DEFAULT_LABELER on a CPU with AMX (or whose flags cannot be read), CPU_NO_AMX_LABELER elsewhere."""
    from ..registry import cpu_flags

    flags = cpu_flags()
    return CPU_DEFAULT_LABELER if flags is None or flags & CHECK_FLAGS else CPU_NO_AMX_LABELER
