"""The ensemble labeler: the LLM's pick and its yes/no check of every category, with the fused prototypes.

Per sample, three experts score the taxonomy's categories:

- the LLM (the run's model, Qwen2.5-Coder-1.5B on a CPU) answering the product's label request
  (`llm.LLMLabeler`, enum-constrained JSON), with the top-20 allowed tokens where its category
  value begins, read as a distribution by `llm.choice_distribution`;
- the `fused` labeler (MiniLM and SmolLM2 hidden-state prototypes): softmax of its scores at its
  fitted temperature;
- the same LLM asked of each of the sample's CHECK_TOP_K likeliest categories (by the first two
  experts) on its own whether the sample belongs to it (`check.py`): the log-odds of yes, less the
  model's lean measured on content-free inputs.

The label is the category with the largest `log P_llm + ENSEMBLE_FUSED_WEIGHT * log P_fused +
CHECK_WEIGHT * check` (a weighted product of experts), its confidence that score's softmax at
ENSEMBLE_TEMPERATURE. The experts are right on different samples (the LLM's pick on writing,
reasoning and maths, the prototypes on role-play and humanities, the check where a description
covers what the pick reads as a task type), and the product lets a sure expert overrule an unsure one.

Difficulty is the LLM's expected difficulty (`P(medium) + 2 P(hard)` from the same answer's
difficulty value) plus DIFFICULTY_LENGTH_WEIGHT x log10(1 + words of the instruction), cut at
DIFFICULTY_CUTS (`difficulty_score`, the bench's "chosen" row): the model's probabilities rank
samples better than the class it writes (under label-v1 it wrote "hard" for almost every sample).
Every constant was chosen on the dev splits of bench/choose.py, for the label prompt of
prompts.PROMPT_VERSION (bench/README.md has the tables).

One label per sample, as `fused` gives: the LLM's "also" list is not used (Qwen 1.5B fills it for
most samples, so shares summed to ~220% on the bundled example, and the bench never measured it).
A sample the LLM cannot answer (twice) keeps the other experts' label and the rule's difficulty; a
sample whose check failed is labeled without it; an engine that returns no logprobs counts the LLM's
written category as a sure vote and has no check.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

from ..data.readers import Sample
from ..engines import Engine
from ..generation import generate_parsed
from ..prompts import CHECK_PROMPT_VERSION
from ..report.contract import DIFFICULTIES
from ..report.tally import SampleLabel, rounded_confidence, rounded_probabilities
from ..taxonomy import Taxonomy
from .base import LabelRun, LabelSettings, sample_text
from .check import CHECK_OFFSET_STRENGTH, CHECK_TOP_K, CategoryCheck, top_candidates
from .difficulty import difficulty_features, difficulty_from_text
from .embed import embedding_identity, softmax
from .fused import FUSED_ENCODER_MODEL, FusedLabeler
from .llm import LLMLabeler, choice_distribution, record
from .measured import CHOOSE_TEST_RUN_05B_V7, CHOOSE_TEST_RUN_V7, DECISIONS_RUN_V7, MARGIN_RUN_V7, gaps_named, interval_coverage
from .measured import on_test as measured_on_test

# v7: the check asks the top CHECK_TOP_K; v6: the yes/no check; v5: refitted for label-v2; v4: 3x the dev rows;
# v3: the length term
ENSEMBLE_VERSION = "ensemble-v7"
ENSEMBLE_FUSED_WEIGHT = 2.0
CHECK_WEIGHT = 4.0  # of the check's log-odds
ENSEMBLE_TEMPERATURE = 0.35
DIFFICULTY_CUTS = (1.05, 1.3)  # a difficulty score below the first: easy; from the second: hard
DIFFICULTY_LENGTH_WEIGHT = 0.375  # the score adds this times log10(1 + words of the instruction)
TOP_LOGPROBS = 20
SURE = 0.98  # an LLM vote without logprobs: its written category's probability
# The experts whose wall seconds the run metadata gives (`info()["seconds"]`): the prototypes, the label
# request (its retries included), the check (its content-free offsets included, asked once a run).
EXPERTS = ("fused", "llm", "check")


class EnsembleLabeler:
    """LLM enum probabilities and fused prototype probabilities, multiplied."""

    name = "ensemble"
    measured = (measured_on_test({
        "arena-hard": 0.833, "arena-hard-names": 0.86, "selfinstruct-domains": 0.647, "infobench": 0.607,
        "justeval-tasks": 0.787, "justeval-topics": 0.827, "justeval-topics-names": 0.74,
        "arena-hard-described": 0.88, "justeval-topics-described": 0.78,
    }, model="qwen2.5-coder-1.5b", run=CHOOSE_TEST_RUN_V7,
        gaps=gaps_named((41, 91), (100, 100), absent_share=(11, 11), run=DECISIONS_RUN_V7),
        intervals=interval_coverage((100, 100), (94.8, 100), MARGIN_RUN_V7)), measured_on_test({
        "arena-hard": 0.773, "arena-hard-names": 0.72, "selfinstruct-domains": 0.573, "infobench": 0.571,
        "justeval-tasks": 0.641, "justeval-topics": 0.633, "justeval-topics-names": 0.52,
    }, model="qwen2.5-coder-0.5b", run=CHOOSE_TEST_RUN_05B_V7))  # bench/choose.py, test split (the report's
    # intervals use the lowest); the 0.5B's gap calls were not measured (bench.decisions reads the 1.5B's views)
    writes_labels = False  # the prototypes can overrule the LLM
    needs_engine = True
    reads_llm = True
    version = ENSEMBLE_VERSION
    temperature = ENSEMBLE_TEMPERATURE  # of the confidence softmax over `combined_scores`
    check_top_k = CHECK_TOP_K  # categories the check asks per sample, 0 for none (bench.check_cost times others)
    check_prompt = CHECK_PROMPT_VERSION
    check_weight = CHECK_WEIGHT
    check_strength = CHECK_OFFSET_STRENGTH
    check_skip_above: float | None = None  # no check for a sample the other experts are surer of (`pre_check_confidence`)
    skip_temperature: float | None = None  # of the confidence softmax of a sample the check skipped
    fused_weight = ENSEMBLE_FUSED_WEIGHT
    lighter: str | None = None  # a lighter form's difference from `ensemble`, for the run's warning (run.py)

    @classmethod
    def cache_identity(cls, llm_identity: str) -> str:
        knobs = {"version": cls.version, "fused_weight": cls.fused_weight, "temperature": cls.temperature,
                 "difficulty_cuts": list(DIFFICULTY_CUTS), "difficulty_length_weight": DIFFICULTY_LENGTH_WEIGHT,
                 "top_logprobs": TOP_LOGPROBS, "check_weight": cls.check_weight,
                 "check_offset_strength": cls.check_strength, "check_prompt": cls.check_prompt,
                 "check_top_k": cls.check_top_k, **cls.skip_knobs(),
                 "fused": FusedLabeler.cache_identity(FUSED_ENCODER_MODEL)}
        return embedding_identity(cls.name, knobs, llm_identity)

    @classmethod
    def skip_knobs(cls) -> dict:
        """The check's skip rule for the cache identity; none where it asks every sample (labels cached
        before the rule existed keep their identity)."""
        if cls.check_skip_above is None:
            return {}
        return {"check_skip_above": cls.check_skip_above, "skip_temperature": cls.skip_temperature}

    @classmethod
    def open(cls, taxonomy: Taxonomy, settings: LabelSettings, handle) -> EnsembleLabeler:
        return cls(handle.get(), taxonomy, settings)

    def __init__(self, engine: Engine, taxonomy: Taxonomy, settings: LabelSettings | None = None,
                 fused: FusedLabeler | None = None, weight: float | None = None):
        self.taxonomy, self.weight = taxonomy, self.fused_weight if weight is None else weight
        self.settings = settings or LabelSettings()
        self.llm = LLMLabeler(engine, taxonomy, self.settings, top_logprobs=TOP_LOGPROBS)
        self.fused = fused or FusedLabeler(taxonomy, self.settings, model=FUSED_ENCODER_MODEL)
        self.sample_budget = self.llm.sample_budget
        self.check = (CategoryCheck(engine, taxonomy, self.sample_budget, self.check_strength, self.check_prompt)
                      if self.check_top_k else None)
        self.overruled = self.llm_failed = self.check_failed = self.check_skipped = 0
        self.described = all(c.description.strip() for c in taxonomy.categories)
        self.seconds = dict.fromkeys(EXPERTS, 0.0)

    @contextmanager
    def timed(self, expert: str):
        """Add the wall time of the block to `expert`'s seconds (the run metadata's `seconds`)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[expert] += time.perf_counter() - started

    def label_batch(self, samples: list[Sample], run: LabelRun) -> list[SampleLabel]:
        texts = [sample_text(s)[0] for s in samples]
        with self.timed("fused"):
            fused = self.fused.scores(texts)
        built = [self.llm.request(s) for s in samples]
        run.truncated.update(s.index for s, (_, cut) in zip(samples, built) if cut)
        with self.timed("llm"):
            outcomes = generate_parsed(self.llm.engine, [r for r, _ in built], self.parse(samples))
        run.requests += len(samples)
        scratch = LabelRun()
        answers = [record(scratch, s.index, outcome) or (None, None) for s, outcome in zip(samples, outcomes)]
        experts = [self.experts(row, *answer) for row, answer in zip(fused, answers)]
        skipped = [self.skips(e) for e in experts]
        checks = self.check_scores(texts, experts, skipped)
        labels = [self.combine(sample, e, *answer, check, skip)
                  for sample, e, answer, check, skip in zip(samples, experts, answers, checks, skipped)]
        self.llm_failed += len(scratch.failed)  # those samples keep the prototypes' label
        scratch.failed = []
        run.absorb(scratch)
        return labels

    def skips(self, experts: tuple) -> bool:
        """Whether the check is not asked of a sample: its other experts' confidence is above
        `check_skip_above`. Never when the labeler has no such rule or no check, nor in a taxonomy with a
        category that has no description (names alone with `--no-describe`), where the LLM's pick was
        often sure and wrong and the check set it right (bench/README.md)."""
        return bool(self.check_top_k) and check_skipped(experts, self.weight, self.check_skip_above, self.described)

    def check_scores(self, texts: list[str], experts: list[tuple], skipped: list[bool]) -> list:
        """The check's offset log-odds per text, asking each its `check_top_k` likeliest categories by its
        `experts` (None where it failed, where `skipped`, for every text of an engine without logprobs,
        and for every text when `check_top_k` is 0: nothing is asked)."""
        asked = [i for i, skip in enumerate(skipped) if not skip]
        out: list = [None] * len(texts)
        if not self.check_top_k or not asked:
            return out
        candidates = [check_candidates(*experts[i], self.weight, self.check_top_k) for i in asked]
        with self.timed("check"):
            scores = self.check.scores([texts[i] for i in asked], candidates)
        self.check_failed += sum(s is None for s in scores)
        self.check_skipped += len(texts) - len(asked)
        for i, score in zip(asked, scores):
            out[i] = score
        return out

    def parse(self, samples: list[Sample]):
        """The parse hook of `generate_parsed`: (the LLM's label, its answer), None when unusable."""
        def parse(i: int, result):
            label = self.llm.parse(samples[i].index, result)
            return None if label is None else (label, result)
        return parse

    def experts(self, fused_row, label: SampleLabel | None, result) -> tuple:
        """(P_llm, P_fused) of one sample in taxonomy order; P_llm is None when the LLM gave no label."""
        return (llm_category_probabilities(label, result, self.taxonomy.names),
                softmax(fused_row * self.fused.temperature))

    def combine(self, sample: Sample, experts: tuple, label: SampleLabel | None, result, check=None,
                skipped: bool = False) -> SampleLabel:
        """One sample's label from its experts' probabilities, the LLM's answer (None when it gave none)
        and the check's scores (None without them; `skipped` when the check was not asked, whose
        confidence has a temperature of its own)."""
        names = self.taxonomy.names
        scores = combined_scores(*experts, self.weight, check, self.check_weight)
        best = max(range(len(names)), key=lambda j: (scores[j], -j))
        posterior = softmax(scores * (self.skip_temperature if skipped else self.temperature))
        if label is not None and names[best] != label.categories[0]:
            self.overruled += 1
        difficulty = expected_difficulty_label(result, sample.instruction) if label else None
        return SampleLabel(sample.index, (names[best],), difficulty or difficulty_from_text(sample.instruction),
                           rounded_confidence(posterior[best]), rounded_probabilities(posterior))

    def info(self) -> dict:
        return {"labeler": self.name, "engine": self.llm.engine.name, "model": self.llm.engine.model_name,
                "version": self.version, "fused_weight": self.weight, "temperature": self.temperature,
                "difficulty_cuts": list(DIFFICULTY_CUTS), "check_weight": self.check_weight if self.check_top_k else 0,
                "check": {**self.check.info(), "top_k": self.check_top_k, "failed": self.check_failed,
                          **self.skip_info()} if self.check_top_k else None,
                "fused": self.fused.info(), "llm_overruled": self.overruled,
                "llm_failed": self.llm_failed, "seconds": {k: round(v, 1) for k, v in self.seconds.items()}}

    def skip_info(self) -> dict:
        """The check's skip rule and how many samples it skipped, for the run metadata; none without a rule."""
        if self.check_skip_above is None:
            return {}
        return {"skip_above": self.check_skip_above, "skipped": self.check_skipped}


def pre_check_confidence(p_llm: list[float] | None, p_fused, weight: float) -> float:
    """How sure the LLM's pick and the prototypes are together before the check: the largest softmax
    (temperature 1) of `combined_scores` without a check. The check is skipped above a labeler's
    `check_skip_above`; bench/check_skip.py chose the line."""
    return float(max(softmax(combined_scores(p_llm, p_fused, weight))))


def check_skipped(experts: tuple, weight: float, line: float | None, described: bool) -> bool:
    """Whether a skip rule at `line` (None: no rule) asks no check of a sample with these `experts`
    (P_llm, P_fused): only in a taxonomy whose categories all have descriptions, above the line."""
    return line is not None and described and pre_check_confidence(*experts, weight) > line


def llm_category_probabilities(label: SampleLabel | None, result, names: list[str]) -> list[float] | None:
    """The LLM's probability of each category (taxonomy order), None when it gave no label."""
    if label is None:
        return None
    return llm_vote(label.categories[0], choice_distribution(result, "primary", names), names)


def llm_vote(written: str, dist: dict[str, float] | None, names: list[str]) -> list[float]:
    """The LLM's distribution in taxonomy order; without one (no logprobs), its written category
    with probability SURE and the rest spread evenly."""
    if dist is None:
        rest = (1 - SURE) / max(len(names) - 1, 1)
        return [SURE if n == written else rest for n in names]
    return [dist[n] for n in names]


def combined_scores(p_llm: list[float] | None, p_fused, weight: float, check=None,
                    check_weight: float = CHECK_WEIGHT):
    """log P_llm + weight * log P_fused + check_weight * check per category; a term whose expert gave
    nothing (the LLM, the check: None) is left out."""
    import numpy as np

    scores = weight * np.log(np.clip(np.asarray(p_fused, dtype=float), 1e-12, 1.0))
    if p_llm is not None:
        scores = scores + np.log(np.clip(np.asarray(p_llm, dtype=float), 1e-12, 1.0))
    if check is not None:
        scores = scores + check_weight * np.asarray(check, dtype=float)
    return scores


def check_candidates(p_llm: list[float] | None, p_fused, weight: float, k: int) -> list[int]:
    """The categories the check asks of one sample: its k likeliest by the LLM and the prototypes
    (`combined_scores` without a check), highest first. bench/views.py and bench/choose.py ask and
    score the same ones."""
    return top_candidates(combined_scores(p_llm, p_fused, weight), k)


def expected_difficulty(p: dict[str, float]) -> float:
    """0 (surely easy) to 2 (surely hard): P(medium) + 2 P(hard)."""
    return p["medium"] + 2 * p["hard"]


def difficulty_score(p: dict[str, float], words: int, length_weight: float = DIFFICULTY_LENGTH_WEIGHT) -> float:
    """The expected difficulty plus `length_weight` x log10(1 + words): longer asks rank harder."""
    return expected_difficulty(p) + length_weight * math.log10(1 + words)


def difficulty_from_score(score: float, cuts: tuple[float, float] = DIFFICULTY_CUTS) -> str:
    return "easy" if score < cuts[0] else ("hard" if score >= cuts[1] else "medium")


def expected_difficulty_label(result, instruction: str) -> str | None:
    """The difficulty from the answer's difficulty probabilities and the instruction's length
    (`difficulty_score`, cut at DIFFICULTY_CUTS); None without logprobs."""
    dist = choice_distribution(result, "difficulty", list(DIFFICULTIES))
    if dist is None:
        return None
    return difficulty_from_score(difficulty_score(dist, difficulty_features(instruction)["words"]))

