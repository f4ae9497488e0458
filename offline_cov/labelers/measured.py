"""What the bench measured for each labeler: the sets, in one place, and the run they come from.

A labeler class's `measured` (base.py) holds one entry per model the bench measured it with, each
naming the bench run and the accuracy on each public set; the report prints the entry of the run's
model (`for_model`) and widens its no-calibration intervals by the lowest number
(strategies/how_sure.py). The sets' descriptions live here so every labeler says the same thing.
"""

from __future__ import annotations

CHOOSE_TEST_RUN = "bench/results/choose-qwen2.5-coder-1.5b@cut512+label-v2-test-20261203-153746.json"
CHOOSE_TEST_RUN_05B = "bench/results/choose-qwen2.5-coder-0.5b@cut512+label-v2-test-20261204-232354.json"  # 7 sets, no -described rows
CHOOSE_TEST_RUN_05B_V7 = "bench/results/choose-qwen2.5-coder-0.5b@cut512+label-v2-test-20261206-114857.json"  # ensemble-v7, 7 sets
CHOOSE_TEST_RUN_V7 = "bench/results/choose-qwen2.5-coder-1.5b@cut512+label-v2-test-20261206-110156.json"  # ensemble-v7
CHOOSE_TEST_RUN_LITE = "bench/results/choose-qwen2.5-coder-1.5b@cut512+label-v2+check-v2-test-20261206-204649.json"  # ensemble-lite-v1
CHOOSE_TEST_RUN_LITE_05B = "bench/results/choose-qwen2.5-coder-0.5b@cut512+label-v2+check-v2-test-20261206-225852.json"
DECISIONS_RUN = "bench/results/decisions-cpu-labelers-20261205-165751.json"  # ensemble-v5, fused, embed
DECISIONS_RUN_V7 = "bench/results/decisions-cpu-labelers-20261206-110712.json"  # ensemble-v7
DECISIONS_RUN_LITE = "bench/results/decisions-cpu-labelers-20261207-131135.json"  # ensemble-lite-v1 (check-v2 pool views, its own margin)
MARGIN_RUN_V7 = "bench/results/calibration-cpu-labelers-20261206-093435.json"  # ensemble-v7's margin study (seed 51)
MARGIN_RUN_LITE = "bench/results/calibration-cpu-labelers-20261207-130153.json"  # ensemble-lite-v1's (seed 31, session 37)
NAMES_ONLY = "names only, no descriptions written by the model"
SETS = {
    "arena-hard": "3 categories, 150 rows",
    "arena-hard-names": f"3 categories, {NAMES_ONLY}, 150 rows",
    "selfinstruct-domains": "6 categories, 150 rows",
    "infobench": "7 categories, 168 rows",
    "justeval-tasks": "7 categories, 423 rows",
    "justeval-topics": "8 categories, 150 rows",
    "justeval-topics-names": f"8 categories, {NAMES_ONLY}, 150 rows",
    "arena-hard-described": "3 categories, names described by the model, 150 rows",
    "justeval-topics-described": "8 categories, names described by the model, 150 rows",
}


def on_test(accuracy: dict[str, float], model: str | None = None, run: str = CHOOSE_TEST_RUN,
            gaps: dict | None = None, column: str | None = None, intervals: dict | None = None) -> dict:
    """A `measured` dict: accuracy per bench set (keys of SETS) on the test split of `run`, with the
    model the labeler read (None for a labeler that reads no LLM) and, where bench.decisions measured
    them, how many of the real gaps the report names (`gaps_named`), and where bench.calibration's
    margin study did, how often its no-calibration interval held the true share (`interval_coverage`).
    `column`: the labeler's name in `run` where the bench scored it under another name."""
    head = {"model": model} if model else {}
    tail = {"gaps_without_review": gaps} if gaps else {}
    if intervals:
        tail["interval_coverage"] = intervals
    if column:
        tail["bench_column"] = column
    return {**head, "bench_run": run, "split": "test",
            "accuracy": {f"{name} ({SETS[name]})": value for name, value in accuracy.items()}, **tail}


def gaps_named(named: tuple[int, int], after_review: tuple[int, int], absent_share: tuple[int, int] | None = None,
               run: str = DECISIONS_RUN, labeler: str | None = None) -> dict:
    """bench.decisions (`run`) on the pools' test rows (Arena-Hard, Just-Eval topics): the range over its sets
    and mixture sizes of the real gaps (true share under 5%) the report named without calibration rows and
    after a 200-label review, in percent, and the share a category absent from the data still got.
    `labeler`: the labeler's name in `run` where it ran under another name."""
    out = {"bench_run": run, **({"bench_labeler": labeler} if labeler else {}), "real_gaps_named_percent": list(named),
           "after_200_label_review_percent": list(after_review)}
    return {**out, "absent_category_share_percent": list(absent_share)} if absent_share else out


def interval_coverage(dev: tuple[float, float], test: tuple[float, float], run: str, factor: float | None = None) -> dict:
    """bench.calibration's margin study (`run`): the range over its sets (Arena-Hard, Just-Eval topics) of
    the share of cells, in percent, whose true share the report's no-calibration interval held, on mixtures
    of the pools' dev rows and of their test rows, at the product's factor, or at `factor` where the study
    chose the labeler one of its own (the smallest holding 95% of every set's dev cells)."""
    return {"bench_run": run, **({"factor": factor} if factor is not None else {}), "dev_percent": list(dev),
            "test_percent": list(test)}


def percent_span(span: list[int] | tuple[int, int]) -> str:
    """A measured range as the reports write it: "40-91", or "11" when both ends are equal."""
    low, high = span
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def for_model(measured: tuple[dict, ...], model: str, reads_llm: bool) -> dict:
    """The entry of `measured` that applies to a run whose samples `model` read: the one measured
    with that model (any entry for a labeler that reads no LLM); otherwise a note naming the models
    it was measured with, and no accuracy."""
    if not measured:
        return {}
    if not reads_llm:
        return measured[0]
    match = next((m for m in measured if m.get("model") in (None, model)), None)
    if match is not None:
        return match
    return {"note": f"measured with {', '.join(m['model'] for m in measured)}, not with {model}"}
