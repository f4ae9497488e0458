"""`--strategy per-sample` (the default): every sample labeled on its own, through the label cache.

The samples stream in chunks of `STREAM_CHUNK`: each chunk's cached labels are looked up, the
misses go to the labeler batch by batch and each batch is committed to the cache as soon as it is
labeled (a run that dies loses nothing already labeled). Only the compact labels and the running
tally outlive a chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..cache import cache_key
from ..data.plan import chunks
from ..data.readers import Sample
from ..labelers.base import LabelRun, LabelSettings, label_samples
from ..labelers.difficulty import counts_words_apart
from ..options import AnalysisResult
from ..prompts import PROMPT_VERSION
from ..report.contract import DIFFICULTIES
from ..report.tally import LabelStore, SampleLabel, Tally
from ..run import Run
from ..taxonomy import Taxonomy
from .describe import described_taxonomy
from .how_sure import decided_shares, example_block, example_texts, mix_of, sampling_intervals, share_intervals
from .infer import inferred_taxonomy
from .shard import shard_block

STREAM_CHUNK = 4096  # samples read, looked up in the cache and labeled at a time


def run_per_sample(run: Run) -> AnalysisResult:
    opts, plan = run.opts, run.plan
    taxonomy = opts.taxonomy
    if taxonomy is None:
        t = time.perf_counter()
        taxonomy = inferred_taxonomy(run)
        run.timed("infer_taxonomy_s", t)
    t = time.perf_counter()
    taxonomy = described_taxonomy(run, taxonomy)
    run.timed("describe_taxonomy_s", t)
    t = time.perf_counter()
    labeled = label_stream(run, taxonomy, plan.stream(), plan.analyzed, run.progress)
    run.timed("label_s", t)
    decided, calibration = decided_shares(run, taxonomy, labeled.tally, labeled.labels, labeled.labeler)
    examples, texts = example_texts(plan, labeled.tally)
    report = plan.report(labeled.tally, opts.thresholds, decided, texts)
    if labeled.failed:
        run.warnings.append(f"{len(labeled.failed)} sample(s) could not be labeled after a retry; see metadata 'failed'")
    blocks = {
        "samples": {"analyzed": plan.analyzed, "labeled": len(labeled.labels), "failed": len(labeled.failed),
                    "truncated": len(labeled.truncated), "retried": labeled.retried},
        "failed": labeled.failed,
        "output_tokens": labeled.output_tokens,
        "throughput": throughput(run, labeled),
        "difficulty_mix": difficulty_mix(run, labeled.labels),
        "sample_token_budget": labeled.budget,
        **calibration,
        "share_intervals": share_intervals(run, report, calibration, taxonomy),
        "examples": example_block(examples, texts),
    }
    blocks.update(sampling_intervals(plan, report))
    if opts.shard:
        blocks["shard"] = shard_block(opts.shard, list(labeled.labels), labeled.failed, taxonomy)
    return run.result(report, labeled.labels, taxonomy, **blocks)


def difficulty_mix(run: Run, labels) -> dict:
    """How many samples got each difficulty; a mix with one class over 80% is flagged (and warned
    about): on the bench such mixes came from labelers whose difficulty carries little information."""
    mix, warning = mix_of(labels)
    if warning:
        run.warnings.append(warning)
    return mix


def throughput(run: Run, labeled: StreamRun) -> dict:
    """Samples/s of the samples labeled in this run (cache hits and model load left out) and tokens
    per sample; prompt tokens and the prefix-cache hit rate where the engine counts them (vLLM)."""
    n, seconds = labeled.requests, (run.timings.get("label_s") or 0.0) - run.handle.load_s
    out = {"samples_labeled": n, "samples_per_s": round(n / seconds, 3) if n and seconds else None,
           "output_tokens_per_sample": round(labeled.output_tokens / n, 1) if n else None}
    usage = run.handle.info().get("usage") or {}
    if n and usage.get("prompt_tokens"):
        out["prompt_tokens_per_sample"] = round(usage["prompt_tokens"] / n, 1)
        out["prefix_cache_hit_rate"] = usage.get("prefix_cache_hit_rate")
    return out


def label_key(identity: str, taxonomy: Taxonomy, settings: LabelSettings, sample: Sample) -> str:
    """The cache key of one sample's label: the content the labeler reads (`Sample.for_labeler`). A
    sample whose words the difficulty rubric now counts otherwise (`counts_words_apart`) gets a key
    of its own, so its label cached under the old count is not reused."""
    knobs = {"max_sample_tokens": settings.max_sample_tokens, "max_tokens": settings.max_tokens, "temperature": 0}
    if counts_words_apart(sample.instruction):
        knobs["words"] = "cjk-and-long-tokens"
    return cache_key("label", identity, PROMPT_VERSION, taxonomy.fingerprint(), knobs,
                     sample.for_labeler().content_hash())


@dataclass
class StreamRun(LabelRun):
    """A labeling pass over a stream: its labels kept compactly, the running tally, the counters."""

    labels: LabelStore = field(default_factory=LabelStore)
    tally: Tally | None = None
    budget: int | None = None
    labeler: object = None  # the labeler, when one was opened (calibration texts outside the data use it)


def label_stream(run: Run, taxonomy: Taxonomy, samples: Iterable[Sample], total: int, progress=None) -> StreamRun:
    """Label the samples (in file order) chunk by chunk: cached labels where present, the rest from the
    labeler, stored batch by batch; only the labels and the tally outlive a chunk."""
    out, labeler, cache, names = StreamRun(tally=Tally(taxonomy)), None, run.cache, set(taxonomy.names)
    for chunk in chunks(samples, STREAM_CHUNK):
        keys = {s.index: label_key(run.identity, taxonomy, run.opts.label, s) for s in chunk}
        found = cache.get_many(list(keys.values())) if cache is not None else {}
        labels, todo = {}, []
        for s in chunk:
            hit = cached_label(s.index, found.get(keys[s.index]), names)
            if hit is None:
                if keys[s.index] in found:
                    cache.reject()  # a value this taxonomy and version cannot have written: label again
                todo.append(s)
                continue
            labels[s.index], truncated = hit
            if truncated:
                out.truncated.add(s.index)
        if progress and labels:
            progress(len(labels), total, cached=True)
        if todo:
            labeler = labeler or run.open_labeler(taxonomy)
            if progress:
                progress(0, total)  # the labeler is ready: the rate's clock starts here
            firsts, copies = first_of_each(todo, keys)
            labels.update(_label_todo(labeler, firsts, keys, cache, out, progress, total))
            copied = copy_labels(copies, labels, out)
            if progress and copied:
                progress(copied, total, cached=True)
            out.budget = labeler.sample_budget
        for s in chunk:
            if s.index in labels:
                out.labels.append(labels[s.index])
                out.tally.add(labels[s.index], len(s.instruction))
    if labeler is not None:
        run.labeler_info = labeler.info()
    out.labeler = labeler
    return out


def first_of_each(todo: list[Sample], keys: dict[int, str]) -> tuple[list[Sample], list[tuple[Sample, Sample]]]:
    """(the samples to label: the first of each cache key, the (copy, first) pairs): exact copies
    within a chunk are labeled once, so they get one label, as copies in later chunks do from the cache."""
    first: dict[str, Sample] = {}
    copies = []
    for s in todo:
        if keys[s.index] in first:
            copies.append((s, first[keys[s.index]]))
        else:
            first[keys[s.index]] = s
    return list(first.values()), copies


def copy_labels(copies: list[tuple[Sample, Sample]], labels: dict[int, SampleLabel], out: StreamRun) -> int:
    """Give each copy its first's label (and truncation) under its own index, or its first's failure;
    the number of copies labeled."""
    if not copies:
        return 0
    failed = {f["index"]: f for f in out.failed}
    count = 0
    for copy, first in copies:
        if first.index in labels:
            labels[copy.index] = replace(labels[first.index], index=copy.index)
            count += 1
            if first.index in out.truncated:
                out.truncated.add(copy.index)
        elif first.index in failed:
            out.failed.append({**failed[first.index], "index": copy.index})
    return count


def cached_label(index: int, value, names: set[str]) -> tuple[SampleLabel, bool] | None:
    """The label a cached value holds and whether its sample was truncated; None for a value that
    is not one this version writes (categories outside the taxonomy, a difficulty not in the enum)."""
    if not isinstance(value, dict):
        return None
    categories, difficulty = value.get("categories"), value.get("difficulty")
    if not isinstance(categories, list) or not categories or not all(isinstance(c, str) and c in names for c in categories):
        return None
    if difficulty not in DIFFICULTIES:
        return None
    confidence = value.get("confidence")
    if confidence is not None and not _is_probability(confidence):
        return None
    probabilities = value.get("probabilities")
    if probabilities is not None and not (isinstance(probabilities, list) and len(probabilities) == len(names)
                                          and all(_is_probability(p) for p in probabilities)):
        return None
    return (SampleLabel(index, tuple(categories), difficulty, confidence,
                        None if probabilities is None else tuple(probabilities)), bool(value.get("truncated")))


def _is_probability(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _label_todo(labeler, todo, keys, cache, out: StreamRun, progress, total) -> dict[int, SampleLabel]:
    """Label the cache misses of one chunk, committing each batch's labels to the cache at once."""

    def store(labels: list[SampleLabel], fresh: LabelRun) -> None:
        if cache is not None and labels:
            cache.put_many({keys[lab.index]: _cached_value(lab, fresh) for lab in labels})

    # An engine may label a whole list itself (ray: batches in flight on every replica).
    stream = getattr(getattr(labeler, "engine", None), "label_samples", label_samples)
    fresh = stream(labeler, todo, progress=(lambda n, _: progress(n, total)) if progress else None, on_batch=store)
    out.absorb(fresh)
    return {lab.index: lab for lab in fresh.labels}


def _cached_value(label: SampleLabel, run: LabelRun) -> dict:
    return {"categories": list(label.categories), "difficulty": label.difficulty, "confidence": label.confidence,
            "probabilities": None if label.probabilities is None else list(label.probabilities),
            "truncated": label.index in run.truncated}
