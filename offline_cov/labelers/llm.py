"""The LLM labeler: one chat request per sample, its answer constrained to the taxonomy's enums."""

from __future__ import annotations

import math
import re

from ..data.readers import Sample
from ..engines import Engine, GenRequest, GenResult
from ..errors import GenerationError
from ..generation import Outcome, generate_parsed, json_object
from ..prompts import label_messages, label_schema, label_system_prompt
from ..report.tally import SampleLabel, rounded_confidence
from ..taxonomy import Taxonomy
from .base import LabelRun, LabelSettings, sample_text

TEMPLATE_OVERHEAD_TOKENS = 48


class LLMLabeler:
    """Labels samples against one taxonomy with one engine: the LLM writes every label."""

    name = "llm"
    # What bench/labelers.py measured on the held-out test split (the report's intervals use it).
    measured = {"model": "smollm2-135m", "bench_run": "bench/results/labelers-smollm2-135m-20261126-004846.json", "split": "test",
                "accuracy": {"arena-hard (3 categories, 491 rows)": 0.344, "selfinstruct-domains (6 categories, 173 rows)": 0.179}}
    writes_labels = True
    needs_engine = True
    reads_llm = True

    @classmethod
    def cache_identity(cls, llm_identity: str) -> str:
        return llm_identity

    @classmethod
    def open(cls, taxonomy: Taxonomy, settings: LabelSettings, handle) -> LLMLabeler:
        return cls(handle.get(), taxonomy, settings)

    def __init__(self, engine: Engine, taxonomy: Taxonomy, settings: LabelSettings | None = None):
        self.engine, self.taxonomy = engine, taxonomy
        self.settings = settings or LabelSettings()
        self.schema = label_schema(taxonomy)
        overhead = engine.count_tokens(label_system_prompt(taxonomy)) + TEMPLATE_OVERHEAD_TOKENS
        room = engine.max_model_len - overhead - self.settings.max_tokens
        if room < 16:
            raise GenerationError(
                f"the taxonomy's prompt ({overhead} tokens) leaves no room for samples in the model's "
                f"{engine.max_model_len}-token context; shorten descriptions and examples"
            )
        self.sample_budget = min(self.settings.max_sample_tokens, room)

    def request(self, sample: Sample) -> tuple[GenRequest, bool]:
        """The request for one sample, truncated to the token budget; True when truncated."""
        text, cut_chars = sample_text(sample)
        cut = self.engine.truncate(text, self.sample_budget)
        messages = label_messages(self.taxonomy, cut)
        return GenRequest(messages, self.schema, self.settings.max_tokens, logprobs=True), cut_chars or cut != text

    def parse(self, index: int, result: GenResult) -> SampleLabel | None:
        """A SampleLabel from the model's JSON, or None when it is unusable."""
        data = json_object(result)
        if data is None:
            return None
        names = [data.get("primary", "")] + list(data.get("also") or [])
        canonical = [self.taxonomy.canonical(n) for n in names if isinstance(n, str)]
        if not canonical or canonical[0] is None or None in canonical:
            return None
        difficulty = data.get("difficulty")
        if difficulty not in ("easy", "medium", "hard"):
            return None
        confidence = value_probability(result, "primary", data["primary"])
        return SampleLabel(index, tuple(dict.fromkeys(canonical)), difficulty,
                           None if confidence is None else rounded_confidence(confidence))

    def label_batch(self, samples: list[Sample], run: LabelRun) -> list[SampleLabel]:
        """Label a batch; each failed or cut-off answer is retried once, then recorded as failed."""
        built = [self.request(s) for s in samples]
        run.truncated.update(s.index for s, (_, cut) in zip(samples, built) if cut)
        outcomes = generate_parsed(self.engine, [r for r, _ in built], lambda i, res: self.parse(samples[i].index, res))
        run.requests += len(samples)
        return [label for s, o in zip(samples, outcomes) if (label := record(run, s.index, o)) is not None]

    def info(self) -> dict:
        return {"labeler": self.name, "engine": self.engine.name, "model": self.engine.model_name}


def value_probability(result: GenResult, key: str, value: str) -> float | None:
    """The model's probability of having written `value` for `key`: exp of the summed logprobs of the
    generated tokens that overlap the value's characters and its closing quote. The grammar forces
    the JSON around it, so this is the choice among the enum's values. None without token logprobs."""
    tokens = result.extra.get("tokens")
    if not tokens or "".join(t for t, _ in tokens) != result.text:
        return None
    match = re.search(rf'"{re.escape(key)}"\s*:\s*"', result.text)
    if match is None or not result.text.startswith(value, match.end()):
        return None
    start, end = match.end(), match.end() + len(value) + 1  # the value and its closing quote
    total, at = 0.0, 0
    for text, logprob in tokens:
        if at < end and at + len(text) > start:
            total += logprob
        at += len(text)
    return math.exp(total)


def record(run: LabelRun, index: int, outcome: Outcome) -> SampleLabel | None:
    """Count one outcome into the run: its tokens, its retry, its failure; its label, if any."""
    run.output_tokens += outcome.output_tokens
    run.retried += outcome.retried
    if outcome.value is None:
        run.failed.append({"index": index, "finish_reason": outcome.result.finish_reason,
                           "first_finish_reason": outcome.first_finish_reason})
    return outcome.value
