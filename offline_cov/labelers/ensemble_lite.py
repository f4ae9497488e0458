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
request's prefix", session 31): mean 0.781 over the nine dev sets against 0.703 without a check and
0.787 for `ensemble` (session 28's views), and ahead of `fused` on each. It is the default on a CPU without AMX:
`bench.cpu_default` labeled the bundled example in 294 s on a 2-core EPYC with AVX-512 BF16 (206 s
without a check; `ensemble`'s check took 569 s there in session 29; #13's bar is 300).

It asks the check of every sample. Skipping it where the other two experts are already sure
(`EnsembleLabeler.check_skip_above`) saved 46% of the check's requests on the nine dev sets at about the
same mean (0.779 vs 0.781; bench.check_skip, session 41); it is not on until its test split is read
(bench/README.md, "The check skipped where the other experts are sure").
"""

from __future__ import annotations

from .ensemble import EnsembleLabeler
from .measured import CHOOSE_TEST_RUN_LITE, CHOOSE_TEST_RUN_LITE_05B, DECISIONS_RUN_LITE, MARGIN_RUN_LITE, gaps_named, interval_coverage
from .measured import on_test as measured_on_test

LITE_CHECK_WEIGHT = 4.0
LITE_CHECK_STRENGTH = 0.5
LITE_FUSED_WEIGHT = 1.5
LITE_TOP_K = 3
LITE_TEMPERATURE = 0.4


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
    lighter = "with the yes/no check asked in the label request's own chat (check-v2)"
    measured = (measured_on_test({
        "arena-hard": 0.8, "arena-hard-names": 0.887, "selfinstruct-domains": 0.66, "infobench": 0.595,
        "justeval-tasks": 0.813, "justeval-topics": 0.76, "justeval-topics-names": 0.673,
        "arena-hard-described": 0.847, "justeval-topics-described": 0.753,
    }, model="qwen2.5-coder-1.5b", run=CHOOSE_TEST_RUN_LITE, column="ensemble",
        gaps=gaps_named((44, 96), (99, 100), absent_share=(16, 21), run=DECISIONS_RUN_LITE),
        intervals=interval_coverage((96.1, 100), (90.1, 100), MARGIN_RUN_LITE, factor=0.2)), measured_on_test({
        "arena-hard": 0.813, "arena-hard-names": 0.727, "selfinstruct-domains": 0.54, "infobench": 0.542,
        "justeval-tasks": 0.66, "justeval-topics": 0.607, "justeval-topics-names": 0.527,
        "arena-hard-described": 0.8, "justeval-topics-described": 0.567,
    }, model="qwen2.5-coder-0.5b", run=CHOOSE_TEST_RUN_LITE_05B, column="ensemble"))
    # bench/choose.py on the check-v2 views' test split (their `ensemble` column is this labeler); the 1.5B's
    # gap calls: bench.decisions on the check-v2 pool views (session 36; the absent share a scratch count, bench/README.md);
    # its no-calibration margin: bench.calibration's margin study on the same views (session 37: 0.15 held 89.6% of
    # Just-Eval's dev cells, so its own factor, 0.2)
