"""What every labeler is: the `Labeler` protocol, its settings, and what a labeling pass produced.

A labeler class declares, besides labeling:
- `name`: its registry name (`--labeler NAME`);
- `writes_labels`: True when an LLM writes every label it gives (only such labels can teach
  `--strategy distill`'s classifier);
- `needs_engine`: True when it sends generation requests to the model runtime (`--engine`);
- `reads_llm`: True when a language model reads the samples in any way (so the run's model is
  part of what produced the labels); `reading_model`, where set, names the model that does when
  it is not the run's;
- `cache_identity(llm_identity)`: what, beside the prompt version and taxonomy, makes its labels
  differ from another labeler's (part of every cache key);
- `open(taxonomy, settings, handle)`: build it for a run (`handle` opens the engine on demand);
- `measured`: its accuracy as the bench measured it on public labeled sets, one entry per model
  it was measured with (which sets, which run, which model; `measured.on_test`), which the
  report's intervals rest on when the user gives no calibration rows.

Every label carries a `confidence`, the labeler's probability that the primary category is right
(None where it has none): for the embedding labelers the softmax of their scores at a temperature
fitted on the bench's dev split; for the LLM the probability of its chosen category's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..data.readers import Sample
    from ..report.tally import SampleLabel
    from ..taxonomy import Taxonomy

LABEL_MAX_TOKENS = 96
# No labeler reads, tokenizes or counts more than this many characters of one sample: far more
# than any token budget here holds (1536 tokens is ~6k characters of English, fewer of CJK),
# and it keeps a single huge record (a 50 MB line) from costing the tokenizers gigabytes.
SAMPLE_MAX_CHARS = 32_768


def sample_text(sample: Sample) -> tuple[str, bool]:
    """What a labeler reads of a sample (`Sample.for_labeler`: no system turn) as text cut to
    SAMPLE_MAX_CHARS, and whether it was cut."""
    text = sample.for_labeler().render()
    return (text, False) if len(text) <= SAMPLE_MAX_CHARS else (text[:SAMPLE_MAX_CHARS], True)


# Samples handed to the engine per call; the label cache commits after each call, so a killed run
# loses at most one batch. A CPU labels ~0.5-2 samples/s: 64 is about a minute of work there, and
# vLLM-CPU gains nothing from more sequences in flight on 2-16 cores. A GPU runs hundreds of
# sequences at once: calls of 64 leave it idle while each call's last answers drain, and its
# prefill batches small. 1024 keeps vLLM's scheduler full (max_num_seqs 256-1024) through a call
# and is still under a minute of work at the 20-100 samples/s a 7B model labels on one H100-class
# GPU (bench/GPU.md derives the figure). `--batch-size` overrides either.
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 1024


def default_batch_size() -> int:
    """The batch for this machine: GPU_BATCH_SIZE where a GPU is visible, else CPU_BATCH_SIZE."""
    from ..registry import gpu_available

    return GPU_BATCH_SIZE if gpu_available() else CPU_BATCH_SIZE


# Tokens of a sample the LLM reads at most. On a CPU the prompt's prefill is most of the time a
# label takes: bench/speed_cpu.py measured 0.908 vs 0.634 samples/s at 512 vs 1536 tokens (Arena-Hard
# and Just-Eval dev rows), and the dev check of bench/views.py --max-sample-tokens 512 moved the
# ensemble's accuracy by one row of 100 on Arena-Hard (0.83 -> 0.82) and none on InfoBench. A GPU
# reads more: prefill is cheap there.
CPU_SAMPLE_TOKENS = 512
GPU_SAMPLE_TOKENS = 1536


def default_sample_tokens() -> int:
    from ..registry import gpu_available

    return GPU_SAMPLE_TOKENS if gpu_available() else CPU_SAMPLE_TOKENS


@dataclass
class LabelSettings:
    """Knobs of the labeling pass (the batch size and the sample cut follow the device unless given)."""

    batch_size: int = field(default_factory=default_batch_size)
    max_sample_tokens: int = field(default_factory=default_sample_tokens)
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

    def absorb(self, other: LabelRun) -> None:
        """Add another pass's failures and counters to this one (not its labels)."""
        self.failed += other.failed
        self.truncated |= other.truncated
        self.retried += other.retried
        self.output_tokens += other.output_tokens
        self.requests += other.requests


class Labeler(Protocol):
    """Labels batches of samples against one taxonomy."""

    name: str
    writes_labels: bool
    needs_engine: bool
    reads_llm: bool
    taxonomy: Taxonomy
    settings: LabelSettings
    sample_budget: int  # tokens of a sample it reads at most

    def label_batch(self, samples: list[Sample], run: LabelRun) -> list[SampleLabel]: ...

    def info(self) -> dict: ...


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
