"""Per-sample labeling: build requests, run them in batches, parse, retry once, count failures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .aggregate import SampleLabel
from .dataset import Sample
from .engines import Engine, GenRequest, GenResult
from .errors import GenerationError
from .prompts import label_messages, label_schema, label_system_prompt
from .taxonomy import Taxonomy

LABEL_MAX_TOKENS = 96
TEMPLATE_OVERHEAD_TOKENS = 48


@dataclass
class LabelSettings:
    """Knobs of the labeling pass."""

    batch_size: int = 64
    max_sample_tokens: int = 1536
    max_tokens: int = LABEL_MAX_TOKENS


@dataclass
class LabelRun:
    """What a labeling pass produced: labels, failures and counters for the run metadata."""

    labels: list[SampleLabel] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    truncated: set[int] = field(default_factory=set)
    retried: int = 0
    output_tokens: int = 0
    requests: int = 0

    def absorb(self, other: "LabelRun") -> None:
        """Add another pass's failures and counters to this one (not its labels)."""
        self.failed += other.failed
        self.truncated |= other.truncated
        self.retried += other.retried
        self.output_tokens += other.output_tokens
        self.requests += other.requests


class Labeler:
    """Labels samples against one taxonomy with one engine."""

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
        text = sample.render()
        cut = self.engine.truncate(text, self.sample_budget)
        messages = label_messages(self.taxonomy, cut)
        return GenRequest(messages, self.schema, self.settings.max_tokens), cut != text

    def parse(self, index: int, result: GenResult) -> SampleLabel | None:
        """A SampleLabel from the model's JSON, or None when it is unusable."""
        if not result.ok:
            return None
        try:
            data = json.loads(result.text)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        names = [data.get("primary", "")] + list(data.get("also") or [])
        canonical = [self.taxonomy.canonical(n) for n in names if isinstance(n, str)]
        if not canonical or canonical[0] is None or None in canonical:
            return None
        difficulty = data.get("difficulty")
        if difficulty not in ("easy", "medium", "hard"):
            return None
        return SampleLabel(index, tuple(dict.fromkeys(canonical)), difficulty)

    def label_batch(self, samples: list[Sample], run: LabelRun) -> list[SampleLabel]:
        """Label a batch; each failed or cut-off answer is retried once, then recorded as failed."""
        built = [self.request(s) for s in samples]
        run.truncated.update(s.index for s, (_, cut) in zip(samples, built) if cut)
        requests = [r for r, _ in built]
        results = self.engine.generate(requests)
        run.requests += len(requests)
        labels: dict[int, SampleLabel] = {}
        retry = []
        for sample, request, result in zip(samples, requests, results):
            run.output_tokens += result.output_tokens
            label = self.parse(sample.index, result)
            if label is None:
                retry.append((sample, request, result))
            else:
                labels[sample.index] = label
        labels.update(self._retry(retry, run))
        return [labels[s.index] for s in samples if s.index in labels]

    def _retry(self, failures: list, run: LabelRun) -> dict[int, SampleLabel]:
        if not failures:
            return {}
        run.retried += len(failures)
        again = [retry_request(r, res) for _, r, res in failures]
        labels = {}
        for (sample, _, first), result in zip(failures, self.engine.generate(again)):
            run.output_tokens += result.output_tokens
            label = self.parse(sample.index, result)
            if label is None:
                run.failed.append(
                    {"index": sample.index, "finish_reason": result.finish_reason, "first_finish_reason": first.finish_reason}
                )
            else:
                labels[sample.index] = label
        return labels


def retry_request(request: GenRequest, result: GenResult) -> GenRequest:
    """The one retry of a failed answer: a cut-off answer gets twice the token budget."""
    budget = request.max_tokens * 2 if result.finish_reason == "length" else request.max_tokens
    return GenRequest(request.messages, request.schema, budget)


def batched(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def label_samples(
    labeler: Labeler,
    samples: list[Sample],
    progress: Callable[[int, int], None] | None = None,
    on_batch: Callable[[list[SampleLabel], LabelRun], None] | None = None,
) -> LabelRun:
    """Label every sample in batches; `on_batch` sees each batch's labels as soon as they exist."""
    run = LabelRun()
    for batch in batched(samples, labeler.settings.batch_size):
        labels = labeler.label_batch(batch, run)
        run.labels.extend(labels)
        if on_batch:
            on_batch(labels, run)
        if progress:
            progress(len(batch), len(samples))
    return run
