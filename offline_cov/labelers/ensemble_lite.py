"""`ensemble-lite`: the ensemble with a yes/no check that reuses the label request's prefix (check-v2).

`ensemble`'s check (check-v1) asks each category in a chat of its own: its own system prompt, the
sample, then the category's name, description and examples. A CPU spends most of that run on prefill,
and the label request had already read the same sample. check-v2 (`prompts.shared_check_messages`)
asks in the label request's own chat (its system prompt lists every category with its description),
with one question naming the category after the sample: every token but the question's is one vLLM's
prefix cache already holds from labeling the sample, so a check costs a few tokens of prefill.

The experts and their product are `ensemble`'s (`ensemble.py`); the check's weight, its content-free
offset strength, the fused weight, the categories asked per sample and the confidence temperature
were chosen for check-v2 on the bench's dev splits (bench/README.md, "A check that shares the label
request's prefix").
"""

from __future__ import annotations

from .ensemble import EnsembleLabeler

LITE_CHECK_WEIGHT = 4.0
LITE_CHECK_STRENGTH = 1.0
LITE_FUSED_WEIGHT = 2.0
LITE_TOP_K = 4
LITE_TEMPERATURE = 0.35


class EnsembleLiteLabeler(EnsembleLabeler):
    """The ensemble's three experts, the check asked in the label request's own chat."""

    name = "ensemble-lite"
    version = "ensemble-lite-v1"
    check_prompt = "check-v2"
    check_weight = LITE_CHECK_WEIGHT
    check_strength = LITE_CHECK_STRENGTH
    fused_weight = LITE_FUSED_WEIGHT
    check_top_k = LITE_TOP_K
    temperature = LITE_TEMPERATURE
    measured = ()
