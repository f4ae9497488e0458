"""`ensemble-nocheck`: the ensemble without the yes/no check, the fastest labeler that reads the LLM.

The same LLM label request and `fused` prototypes as `ensemble` (`ensemble.py`), multiplied, with no
check requests: what shipped as `ensemble-v5` before the check, with its own confidence temperature
(fitted on the dev splits without the check). The check is most of a CPU run's time, because a CPU
spends it on prefill: `bench.cpu_default` on a 2-core EPYC with AVX-512 BF16 and no AMX took 569 s for
the bundled example with it and 221 s without (0.23 and 0.69 samples/s; #13's bar is 300 s), where a
2-core Xeon with AMX took 243 s with it (bench/README.md, "Which labeler can be the CPU default here").
It costs accuracy: on the bench's test sets 0.692 mean against the check's 0.773 (`bench/choose.py`,
the same views). It was the default on a CPU without AMX until session 31; `ensemble-lite`, whose
check reuses the label request's prefix, took 294 s there and averages 0.754 (`ensemble_lite.py`).
"""

from __future__ import annotations

from .ensemble import EnsembleLabeler
from .measured import CHOOSE_TEST_RUN_05B_V7, CHOOSE_TEST_RUN_V7, gaps_named
from .measured import on_test as measured_on_test

NOCHECK_TEMPERATURE = 0.45  # ensemble-v5's, fitted on the dev splits of label-v2 without the check


class EnsembleNoCheckLabeler(EnsembleLabeler):
    """The ensemble's LLM and prototype experts, without the yes/no check."""

    name = "ensemble-nocheck"
    version = "ensemble-v5"
    temperature = NOCHECK_TEMPERATURE
    check_top_k = 0
    lighter = "without the yes/no check of each sample's likeliest categories"
    measured = (measured_on_test({
        "arena-hard": 0.82, "arena-hard-names": 0.633, "selfinstruct-domains": 0.647, "infobench": 0.565,
        "justeval-tasks": 0.693, "justeval-topics": 0.733, "justeval-topics-names": 0.527,
        "arena-hard-described": 0.847, "justeval-topics-described": 0.76,
    }, model="qwen2.5-coder-1.5b", run=CHOOSE_TEST_RUN_V7, column="ensemble-v5",
        gaps=gaps_named((40, 91), (99, 100), absent_share=(16, 24), labeler="ensemble")), measured_on_test({
        "arena-hard": 0.767, "arena-hard-names": 0.667, "selfinstruct-domains": 0.58, "infobench": 0.565,
        "justeval-tasks": 0.6, "justeval-topics": 0.62, "justeval-topics-names": 0.5,
    }, model="qwen2.5-coder-0.5b", run=CHOOSE_TEST_RUN_05B_V7, column="ensemble-v5"))
    # bench/choose.py's `ensemble-v5` column of the check's test runs (the same views); the gap calls are
    # bench.decisions' run of session 26, when `ensemble` was ensemble-v5 (its `labeler` there)
