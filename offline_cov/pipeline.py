"""`analyze`: read, sample, (infer a taxonomy,) label, aggregate. The library behind the CLI."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import islice
from pathlib import Path

from . import __version__
from .aggregate import LabelStore, SampleLabel, Tally, Thresholds, wilson_interval
from .contract import CoverageReport
from .dataset import DatasetScan, FieldSpec, Sample, chosen_indices, iter_samples, scan_dataset
from .engines import Engine, get_engine_class
from .home import go_offline
from .cache import LabelCache, cache_key
from .labeling import LabelRun, LabelSettings, Labeler, label_samples
from .prompts import PROMPT_VERSION
from .registry import load_registry, model_identity
from .shard import shard_block
from .taxonomy import Taxonomy

FEW_SAMPLES = 50
# What labels samples on a machine without a GPU when --engine is not given: the labeler that
# bench/labelers.py measured best there (bench/README.md). On a GPU it is the LLM in vLLM.
CPU_DEFAULT_ENGINE = "fused"
# Labelers built around the MiniLM embedding; the vLLM engine behind them is opened only to infer
# a taxonomy, or (hybrid) to choose among the embedding's candidates.
EMBEDDING_LABELERS = ("embed", "hybrid", "fused")


@dataclass
class AnalyzeOptions:
    """Everything `analyze` can be told, with the CLI's defaults."""

    taxonomy: Taxonomy | None = None
    model: str | None = None
    engine: str | None = None  # vllm, transformers, embed, hybrid, fused, ray; None: default_engine()
    sample: int | None = None
    seed: int = 0
    strategy: str = "per-sample"  # per-sample, card, distill
    distill_size: int = 2000  # distill: how many samples the LLM labels
    fields: FieldSpec = field(default_factory=FieldSpec)
    encoding: str = "utf-8"
    skip_bad_lines: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    label: LabelSettings = field(default_factory=LabelSettings)
    use_cache: bool = True
    shard: tuple[int, int] | None = None
    cache_path: str | Path | None = None
    engine_options: dict = field(default_factory=dict)  # more engine arguments (ray: address, replicas)


@dataclass
class AnalysisResult:
    """The report, the per-sample labels and the run metadata."""

    report: CoverageReport
    labels: "LabelStore | list[SampleLabel]"  # iterable, in index order
    metadata: dict
    taxonomy: Taxonomy


def default_engine() -> str:
    """The LLM in vLLM where a GPU is visible; elsewhere the CPU default the bench chose."""
    from .registry import gpu_available

    return "vllm" if gpu_available() else CPU_DEFAULT_ENGINE


def llm_engine_name(engine: str) -> str:
    """The LLM engine behind a labeler: the embedding labelers use vLLM (hybrid to choose, the others only to infer)."""
    return "vllm" if engine in EMBEDDING_LABELERS else engine


def labeler_identity(engine: str, llm_identity: str) -> str:
    """The cache identity of the labeler: the LLM's, plus the embedding's and the rule's for the embedding labelers."""
    if engine not in EMBEDDING_LABELERS:
        return llm_identity
    from .embed import embed_identity
    from .fused import FUSED_LLM_WEIGHT, FUSED_VERSION, LLM_MAX_TOKENS
    from .hybrid import HYBRID_MARGIN, HYBRID_TOP_K

    knobs = {
        "hybrid": {"top_k": HYBRID_TOP_K, "margin": HYBRID_MARGIN},
        "fused": {"version": FUSED_VERSION, "llm_weight": FUSED_LLM_WEIGHT, "llm_tokens": LLM_MAX_TOKENS},
    }.get(engine, {})
    return f"{engine}:{embed_identity()}:{knobs}:{llm_identity}"


def make_labeler(handle: "EngineHandle", taxonomy: Taxonomy, opts: AnalyzeOptions):
    """The labeler `opts.engine` names; embed and fused open no LLM engine (fused reads the LLM's hidden states)."""
    if opts.engine == "embed":
        from .embed import EmbedLabeler

        return EmbedLabeler(taxonomy, opts.label)
    if opts.engine == "fused":
        from .fused import FusedLabeler

        return FusedLabeler(taxonomy, opts.label, model=handle.model_name)
    if opts.engine == "hybrid":
        from .hybrid import HybridLabeler

        return HybridLabeler(handle.get(), taxonomy, opts.label)
    return Labeler(handle.get(), taxonomy, opts.label)


def open_engine(name: str, model: str | None, seed: int = 0, **options) -> Engine:
    """Build the named engine with the named model (default: the one this machine can run)."""
    go_offline()
    return get_engine_class(name)(load_registry().get(model), seed=seed, **options)


class EngineHandle:
    """The engine, opened only when something must be generated: a fully cached run loads no model."""

    def __init__(self, opts: AnalyzeOptions, engine: Engine | None = None):
        self.opts, self._engine, self.own = opts, engine, engine is None
        self.load_s = 0.0
        if engine is not None:
            fallback = f"{engine.name}:{engine.model_name}"  # engines written outside this package
            self.identity, self.model_name = getattr(engine, "identity", fallback), engine.model_name
        else:
            spec = load_registry().get(opts.model)
            self.identity, self.model_name = model_identity(llm_engine_name(opts.engine), spec), spec.name
        self.identity = labeler_identity(opts.engine, self.identity)
        self.labeler_info: dict = {"labeler": opts.engine}

    def get(self) -> Engine:
        if self._engine is None:
            t = time.perf_counter()
            self._engine = open_engine(llm_engine_name(self.opts.engine), self.model_name, self.opts.seed,
                                       **self.opts.engine_options)
            self.load_s = round(time.perf_counter() - t, 3)
        return self._engine

    def info(self) -> dict:
        return self._engine.info() if self._engine else {"engine": self.opts.engine, "loaded": False}

    def close(self) -> None:
        if self.own and self._engine is not None:
            self._engine.close()


@dataclass
class DatasetPlan:
    """Which samples of the dataset a run analyzes (a random sample, then a shard), found by a first
    pass that checks every record and keeps no text; `stream()` then reads them one at a time."""

    data: Path
    opts: AnalyzeOptions
    scan: DatasetScan
    chosen: set[int] | None

    @classmethod
    def of(cls, data: str | Path, opts: AnalyzeOptions) -> "DatasetPlan":
        scan = scan_dataset(data, opts.fields, encoding=opts.encoding, skip_bad_lines=opts.skip_bad_lines)
        return cls(Path(data), opts, scan, chosen_indices(scan.count, opts.sample, opts.seed))

    @property
    def drawn(self) -> int:
        """Samples drawn from the file (before sharding)."""
        return self.scan.count if self.chosen is None else len(self.chosen)

    @cached_property
    def analyzed(self) -> int:
        """Samples this run labels (its shard of the drawn ones); counted once."""
        if self.opts.shard is None:
            return self.drawn
        index, count = self.opts.shard
        pool = range(self.scan.count) if self.chosen is None else self.chosen
        return sum(1 for i in pool if i % count == index)

    def wanted(self, index: int, sharded: bool = True) -> bool:
        if self.chosen is not None and index not in self.chosen:
            return False
        return not (sharded and self.opts.shard) or index % self.opts.shard[1] == self.opts.shard[0]

    def stream(self, sharded: bool = True, only: set[int] | None = None) -> Iterator[Sample]:
        """The run's samples in file order (`only`: just those indices), one at a time."""
        for sample in iter_samples(self.data, self.opts.fields, encoding=self.opts.encoding, on_bad=_ignore):
            if (only is None or sample.index in only) and self.wanted(sample.index, sharded):
                yield sample

    def spread(self, k: int) -> list[Sample]:
        """k drawn samples evenly spread over the file, the same in every shard (taxonomy inference)."""
        pool = range(self.scan.count) if self.chosen is None else sorted(self.chosen)
        step = max(1.0, len(pool) / k)
        picks = {pool[int(i * step)] for i in range(min(k, len(pool)))}
        return list(self.stream(sharded=False, only=picks))

    def report(self, tally: Tally, thresholds: Thresholds) -> CoverageReport:
        """The report of this run's tally, with its representative examples read back from the file."""
        chosen = tally.representatives()
        texts = {s.index: s.instruction for s in self.stream(only=set(chosen.values()))}
        return tally.report(self.analyzed, thresholds, {name: texts[i] for name, i in chosen.items() if i in texts})

    def facts(self) -> dict:
        return {
            "dataset": str(self.data.resolve()),
            "shape": self.scan.shape,
            "samples_in_file": self.scan.count,
            "skipped_records": self.scan.skipped,
            "sample_size": self.opts.sample,
            "seed": self.opts.seed,
            "fields": [self.opts.fields.instruction, self.opts.fields.response],
            "encoding": self.opts.encoding,
        }


def _ignore(_exc) -> None:
    """Bad records were reported (or allowed to be skipped) by the first pass."""


def analyze(
    data: str | Path,
    opts: AnalyzeOptions | None = None,
    *,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Analyze a dataset's coverage. Pass an open `engine` to reuse it across runs."""
    opts = opts or AnalyzeOptions()
    if opts.engine is None:  # an engine handed in or a model named means the LLM; else the machine decides
        llm = engine is not None or opts.model or opts.strategy == "distill"
        opts = replace(opts, engine="vllm" if llm else default_engine())
    started = time.perf_counter()
    plan = DatasetPlan.of(data, opts)
    facts = plan.facts()
    warnings = _sample_warnings(plan.analyzed, facts)
    handle = EngineHandle(opts, engine)
    cache = LabelCache(opts.cache_path) if opts.use_cache else None
    try:
        if opts.strategy == "card":
            from .card import run_card

            timings: dict = {}
            result = run_card(handle.get(), list(plan.stream(sharded=False)), opts, facts, warnings, timings, started)
            result.metadata["timings"]["engine_load_s"] = handle.load_s
            return result
        if opts.strategy == "distill":
            return _distilled(handle, cache, plan, warnings, started, progress)
        return _per_sample(handle, cache, plan, warnings, started, progress)
    finally:
        handle.close()
        if cache is not None:
            cache.close()


def _per_sample(handle, cache, plan: DatasetPlan, warnings, started, progress) -> AnalysisResult:
    opts, timings = plan.opts, {}
    taxonomy = opts.taxonomy
    if taxonomy is None:
        t = time.perf_counter()
        taxonomy = _inferred_taxonomy(handle, cache, plan)
        timings["infer_taxonomy_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    run = label_stream(handle, cache, taxonomy, plan.stream(), plan.analyzed, opts, progress)
    timings["label_s"] = round(time.perf_counter() - t, 3)
    timings["engine_load_s"] = handle.load_s
    report = plan.report(run.tally, opts.thresholds)
    if run.failed:
        warnings.append(f"{len(run.failed)} sample(s) could not be labeled after a retry; see metadata 'failed'")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    metadata = run_metadata(handle, opts, taxonomy, plan.facts(), warnings, timings)
    metadata["samples"] = {
        "analyzed": plan.analyzed,
        "labeled": len(run.labels),
        "failed": len(run.failed),
        "truncated": len(run.truncated),
        "retried": run.retried,
    }
    metadata["failed"] = run.failed
    metadata["output_tokens"] = run.output_tokens
    metadata["sample_token_budget"] = run.budget
    metadata["cache"] = _cache_facts(cache)
    metadata["labeler"] = handle.labeler_info
    if plan.analyzed < plan.scan.count:
        metadata["share_ci95"] = {
            c.name: wilson_interval(c.count, report.total_samples_analyzed) for c in report.categories
        }
    if opts.shard:
        metadata["shard"] = shard_block(opts.shard, list(run.labels), run.failed, taxonomy)
    return AnalysisResult(report, run.labels, metadata, taxonomy)


def _distilled(handle, cache, plan: DatasetPlan, warnings, started, progress) -> AnalysisResult:
    """`--strategy distill` (offline_cov/distill.py): the LLM labels a stratified subsample, a
    classifier on sentence embeddings the rest."""
    from .distill import check_options, run_distill, share_intervals

    opts, timings = plan.opts, {}
    check_options(opts)
    taxonomy = opts.taxonomy or _inferred_taxonomy(handle, cache, plan)
    t = time.perf_counter()
    labels, tally, llm, facts = run_distill(handle, cache, plan, taxonomy, progress)
    timings["label_s"] = round(time.perf_counter() - t, 3)
    timings["engine_load_s"] = handle.load_s
    report = plan.report(tally, opts.thresholds)
    if llm.failed:
        warnings.append(f"the LLM could not label {len(llm.failed)} subsample sample(s) after a retry")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    metadata = run_metadata(handle, opts, taxonomy, plan.facts(), warnings, timings)
    metadata["samples"] = {"analyzed": plan.analyzed, "labeled": len(labels), "llm_labeled": facts["llm_labeled"],
                           "classifier_labeled": facts["classifier_labeled"], "failed": len(llm.failed)}
    metadata["failed"] = llm.failed
    metadata["distill"] = facts
    metadata["share_ci95"] = share_intervals(report, facts["llm_labeled"])
    metadata["cache"] = _cache_facts(cache)
    metadata["labeler"] = handle.labeler_info
    return AnalysisResult(report, labels, metadata, taxonomy)


def _cache_facts(cache: LabelCache | None) -> dict:
    if cache is None:
        return {"enabled": False}
    return {"enabled": True, "path": str(cache.path), "hits": cache.hits, "misses": cache.misses}


def label_key(identity: str, taxonomy: Taxonomy, settings: LabelSettings, sample: Sample) -> str:
    """The cache key of one sample's label."""
    knobs = {"max_sample_tokens": settings.max_sample_tokens, "max_tokens": settings.max_tokens, "temperature": 0}
    return cache_key("label", identity, PROMPT_VERSION, taxonomy.fingerprint(), knobs, sample.content_hash())


STREAM_CHUNK = 4096  # samples read, looked up in the cache and labeled at a time


@dataclass
class StreamRun(LabelRun):
    """A labeling pass over a stream: its labels kept compactly, the running tally, the counters."""

    labels: LabelStore = field(default_factory=LabelStore)
    tally: Tally | None = None
    budget: int | None = None


def label_stream(handle, cache, taxonomy: Taxonomy, samples: Iterable[Sample], total: int, opts: AnalyzeOptions,
                 progress=None) -> StreamRun:
    """Label the samples (in file order) chunk by chunk: cached labels where present, the rest from the
    labeler, stored batch by batch; only the labels and the tally outlive a chunk."""
    run, labeler = StreamRun(tally=Tally(taxonomy)), None
    for chunk in chunks(samples, STREAM_CHUNK):
        keys = {s.index: label_key(handle.identity, taxonomy, opts.label, s) for s in chunk}
        found = cache.get_many(list(keys.values())) if cache else {}
        labels, todo = {}, []
        for s in chunk:
            hit = found.get(keys[s.index])
            if hit is None:
                todo.append(s)
                continue
            labels[s.index] = SampleLabel(s.index, tuple(hit["categories"]), hit["difficulty"])
            if hit.get("truncated"):
                run.truncated.add(s.index)
        if progress and labels:
            progress(len(labels), total)
        if todo:
            labeler = labeler or make_labeler(handle, taxonomy, opts)
            labels.update(_label_todo(labeler, todo, keys, cache, run, progress, total))
            run.budget = labeler.sample_budget
        for s in chunk:
            if s.index in labels:
                run.labels.append(labels[s.index])
                run.tally.add(labels[s.index], len(s.instruction))
    if labeler is not None:
        handle.labeler_info = labeler.info() if hasattr(labeler, "info") else {"labeler": opts.engine}
    return run


def _label_todo(labeler, todo, keys, cache, run: StreamRun, progress, total) -> dict[int, SampleLabel]:
    """Label the cache misses of one chunk, committing each batch's labels to the cache at once."""

    def store(labels: list[SampleLabel], fresh: LabelRun) -> None:
        if cache is not None and labels:
            cache.put_many({keys[lab.index]: _cached_value(lab, fresh) for lab in labels})

    # An engine may label a whole list itself (ray: batches in flight on every replica).
    stream = getattr(getattr(labeler, "engine", None), "label_samples", label_samples)
    fresh = stream(labeler, todo, progress=(lambda n, _: progress(n, total)) if progress else None, on_batch=store)
    run.absorb(fresh)
    return {lab.index: lab for lab in fresh.labels}


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items from any iterable (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _cached_value(label: SampleLabel, run: LabelRun) -> dict:
    return {"categories": list(label.categories), "difficulty": label.difficulty, "truncated": label.index in run.truncated}


def _inferred_taxonomy(handle, cache, plan: DatasetPlan) -> Taxonomy:
    """Infer the taxonomy, or reuse the one inferred before for the same samples and model."""
    from .infer import INFER_MAX_SAMPLES, infer_taxonomy

    samples = plan.spread(INFER_MAX_SAMPLES)
    key = cache_key("infer", handle.identity, PROMPT_VERSION, [s.content_hash() for s in samples])
    if cache is not None:
        hit = cache.get_many([key]).get(key)
        if hit is not None:
            return Taxonomy.model_validate(hit)
    taxonomy = infer_taxonomy(handle.get(), samples)
    if cache is not None:
        cache.put_many({key: taxonomy.model_dump()})
    return taxonomy


def _sample_warnings(analyzed: int, facts: dict) -> list[str]:
    warnings = []
    if analyzed < FEW_SAMPLES:
        warnings.append(
            f"only {analyzed} samples analyzed: under {FEW_SAMPLES}, shares and gaps are weak statistics"
        )
    if facts["skipped_records"]:
        warnings.append(f"{len(facts['skipped_records'])} bad record(s) skipped (--skip-bad-lines)")
    return warnings


def run_metadata(engine, opts: AnalyzeOptions, taxonomy: Taxonomy, facts: dict, warnings, timings) -> dict:
    """The run's facts: model, engine and versions, prompt version, taxonomy, timings, warnings."""
    return {
        "tool": {"name": "offline-cov", "version": __version__},
        "model": engine.model_name,
        "engine": engine.info(),
        "engine_identity": engine.identity,
        "prompt_version": PROMPT_VERSION,
        "strategy": opts.strategy,
        "taxonomy": {
            "names": taxonomy.names,
            "inferred": taxonomy.inferred,
            "inferred_by": taxonomy.inferred_by,
            "targets": taxonomy.targets(),
            "descriptions": {c.name: c.description for c in taxonomy.categories if c.description},
        },
        "thresholds": {"gap": opts.thresholds.gap, "over": opts.thresholds.over},
        "input": facts,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "timings": timings,
        "warnings": warnings,
    }
