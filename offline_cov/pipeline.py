"""`analyze`: read, sample, (infer a taxonomy,) label, aggregate. The library behind the CLI."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__
from .aggregate import ReportInputs, SampleLabel, Thresholds, build_report, wilson_interval
from .contract import CoverageReport
from .dataset import FieldSpec, Sample, draw_sample, read_samples
from .engines import Engine, get_engine_class
from .home import go_offline
from .cache import LabelCache, cache_key
from .labeling import LabelRun, LabelSettings, Labeler, label_samples
from .prompts import PROMPT_VERSION
from .registry import load_registry, model_identity
from .shard import select_shard, shard_block
from .taxonomy import Taxonomy

FEW_SAMPLES = 50
# What labels samples on a machine without a GPU when --engine is not given: the labeler that
# bench/labelers.py measured best there (bench/README.md). On a GPU it is the LLM in vLLM.
CPU_DEFAULT_ENGINE = "embed"
LLM_FREE_ENGINES = ("embed", "hybrid")  # labelers built around the embedding, not one LLM engine


@dataclass
class AnalyzeOptions:
    """Everything `analyze` can be told, with the CLI's defaults."""

    taxonomy: Taxonomy | None = None
    model: str | None = None
    engine: str | None = None  # vllm, transformers, embed, hybrid; None: default_engine()
    sample: int | None = None
    seed: int = 0
    strategy: str = "per-sample"
    fields: FieldSpec = field(default_factory=FieldSpec)
    encoding: str = "utf-8"
    skip_bad_lines: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    label: LabelSettings = field(default_factory=LabelSettings)
    use_cache: bool = True
    shard: tuple[int, int] | None = None
    cache_path: str | Path | None = None


@dataclass
class AnalysisResult:
    """The report, the per-sample labels and the run metadata."""

    report: CoverageReport
    labels: list[SampleLabel]
    metadata: dict
    taxonomy: Taxonomy


def default_engine() -> str:
    """The LLM in vLLM where a GPU is visible; elsewhere the CPU default the bench chose."""
    from .registry import gpu_available

    return "vllm" if gpu_available() else CPU_DEFAULT_ENGINE


def llm_engine_name(engine: str) -> str:
    """The LLM engine behind a labeler: embed and hybrid use vLLM (hybrid to choose, embed only to infer)."""
    return "vllm" if engine in LLM_FREE_ENGINES else engine


def labeler_identity(engine: str, llm_identity: str) -> str:
    """The cache identity of the labeler: the LLM's, plus the embedding's for embed and hybrid."""
    if engine not in LLM_FREE_ENGINES:
        return llm_identity
    from .embed import embed_identity
    from .hybrid import HYBRID_MARGIN, HYBRID_TOP_K

    knobs = {"top_k": HYBRID_TOP_K, "margin": HYBRID_MARGIN} if engine == "hybrid" else {}
    return f"{engine}:{embed_identity()}:{knobs}:{llm_identity}"


def make_labeler(handle: "EngineHandle", taxonomy: Taxonomy, opts: AnalyzeOptions):
    """The labeler `opts.engine` names; embed opens no LLM."""
    if opts.engine == "embed":
        from .embed import EmbedLabeler

        return EmbedLabeler(taxonomy, opts.label)
    if opts.engine == "hybrid":
        from .hybrid import HybridLabeler

        return HybridLabeler(handle.get(), taxonomy, opts.label)
    return Labeler(handle.get(), taxonomy, opts.label)


def open_engine(name: str, model: str | None, seed: int = 0) -> Engine:
    """Build the named engine with the named model (default: the one this machine can run)."""
    go_offline()
    registry = load_registry()
    spec = registry.get(model or registry.default_name())
    return get_engine_class(name)(spec, seed=seed)


class EngineHandle:
    """The engine, opened only when something must be generated: a fully cached run loads no model."""

    def __init__(self, opts: AnalyzeOptions, engine: Engine | None = None):
        self.opts, self._engine, self.own = opts, engine, engine is None
        self.load_s = 0.0
        if engine is not None:
            fallback = f"{engine.name}:{engine.model_name}"  # engines written outside this package
            self.identity, self.model_name = getattr(engine, "identity", fallback), engine.model_name
        else:
            registry = load_registry()
            spec = registry.get(opts.model or registry.default_name())
            self.identity, self.model_name = model_identity(llm_engine_name(opts.engine), spec), spec.name
        self.identity = labeler_identity(opts.engine, self.identity)
        self.labeler_info: dict = {"labeler": opts.engine}

    def get(self) -> Engine:
        if self._engine is None:
            t = time.perf_counter()
            self._engine = open_engine(llm_engine_name(self.opts.engine), self.model_name, self.opts.seed)
            self.load_s = round(time.perf_counter() - t, 3)
        return self._engine

    def info(self) -> dict:
        return self._engine.info() if self._engine else {"engine": self.opts.engine, "loaded": False}

    def close(self) -> None:
        if self.own and self._engine is not None:
            self._engine.close()


def load_and_sample(data: str | Path, opts: AnalyzeOptions) -> tuple[list[Sample], dict]:
    """Read the dataset and draw the sample; return it with the reading facts for the metadata."""
    read = read_samples(data, opts.fields, encoding=opts.encoding, skip_bad_lines=opts.skip_bad_lines)
    chosen = draw_sample(read.samples, opts.sample, opts.seed)
    facts = {
        "dataset": str(Path(data).resolve()),
        "shape": read.shape,
        "samples_in_file": len(read.samples),
        "skipped_records": read.skipped,
        "sample_size": opts.sample,
        "seed": opts.seed,
        "fields": [opts.fields.instruction, opts.fields.response],
        "encoding": opts.encoding,
    }
    return chosen, facts


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
        opts = replace(opts, engine="vllm" if engine is not None or opts.model else default_engine())
    started = time.perf_counter()
    samples, facts = load_and_sample(data, opts)
    warnings = _sample_warnings(samples, facts)
    handle = EngineHandle(opts, engine)
    cache = LabelCache(opts.cache_path) if opts.use_cache else None
    try:
        if opts.strategy == "card":
            from .card import run_card

            timings: dict = {}
            result = run_card(handle.get(), samples, opts, facts, warnings, timings, started)
            result.metadata["timings"]["engine_load_s"] = handle.load_s
            return result
        return _per_sample(handle, cache, samples, opts, facts, warnings, started, progress)
    finally:
        handle.close()
        if cache is not None:
            cache.close()


def _per_sample(handle, cache, samples, opts, facts, warnings, started, progress) -> AnalysisResult:
    timings: dict = {}
    taxonomy = opts.taxonomy
    if taxonomy is None:
        t = time.perf_counter()
        taxonomy = _inferred_taxonomy(handle, cache, samples)
        timings["infer_taxonomy_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    samples = select_shard(samples, opts.shard)
    run, budget = _label_cached(handle, cache, taxonomy, samples, opts, progress)
    timings["label_s"] = round(time.perf_counter() - t, 3)
    timings["engine_load_s"] = handle.load_s
    report = build_report(
        ReportInputs(taxonomy, run.labels, {s.index: s for s in samples}, len(samples), opts.thresholds)
    )
    if run.failed:
        warnings.append(f"{len(run.failed)} sample(s) could not be labeled after a retry; see metadata 'failed'")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    metadata = run_metadata(handle, opts, taxonomy, facts, warnings, timings)
    metadata["samples"] = {
        "analyzed": len(samples),
        "labeled": len(run.labels),
        "failed": len(run.failed),
        "truncated": len(run.truncated),
        "retried": run.retried,
    }
    metadata["failed"] = run.failed
    metadata["output_tokens"] = run.output_tokens
    metadata["sample_token_budget"] = budget
    metadata["cache"] = _cache_facts(cache)
    metadata["labeler"] = handle.labeler_info
    if len(samples) < facts["samples_in_file"]:
        metadata["share_ci95"] = {
            c.name: wilson_interval(c.count, report.total_samples_analyzed) for c in report.categories
        }
    if opts.shard:
        metadata["shard"] = shard_block(opts.shard, sorted(run.labels, key=lambda lab: lab.index), run.failed, taxonomy)
    return AnalysisResult(report, sorted(run.labels, key=lambda lab: lab.index), metadata, taxonomy)


def _cache_facts(cache: LabelCache | None) -> dict:
    if cache is None:
        return {"enabled": False}
    return {"enabled": True, "path": str(cache.path), "hits": cache.hits, "misses": cache.misses}


def label_key(identity: str, taxonomy: Taxonomy, settings: LabelSettings, sample: Sample) -> str:
    """The cache key of one sample's label."""
    knobs = {"max_sample_tokens": settings.max_sample_tokens, "max_tokens": settings.max_tokens, "temperature": 0}
    return cache_key("label", identity, PROMPT_VERSION, taxonomy.fingerprint(), knobs, sample.content_hash())


def _label_cached(handle, cache, taxonomy, samples, opts, progress) -> tuple[LabelRun, int | None]:
    """Labels from the cache where present; the rest from the engine, stored batch by batch."""
    keys = {s.index: label_key(handle.identity, taxonomy, opts.label, s) for s in samples}
    found = cache.get_many(list(keys.values())) if cache else {}
    run, todo = LabelRun(), []
    for s in samples:
        hit = found.get(keys[s.index])
        if hit is None:
            todo.append(s)
            continue
        run.labels.append(SampleLabel(s.index, tuple(hit["categories"]), hit["difficulty"]))
        if hit.get("truncated"):
            run.truncated.add(s.index)
    total = len(samples)
    if progress and run.labels:
        progress(len(run.labels), total)
    if not todo:
        return run, None
    labeler = make_labeler(handle, taxonomy, opts)

    def store(labels: list[SampleLabel], fresh: LabelRun) -> None:
        if cache is not None and labels:
            cache.put_many({keys[lab.index]: _cached_value(lab, fresh) for lab in labels})

    fresh = label_samples(labeler, todo, progress=(lambda n, _: progress(n, total)) if progress else None,
                          on_batch=store)
    handle.labeler_info = labeler.info() if hasattr(labeler, "info") else {"labeler": opts.engine}
    run.labels += fresh.labels
    run.failed, run.retried, run.output_tokens = fresh.failed, fresh.retried, fresh.output_tokens
    run.truncated |= fresh.truncated
    return run, labeler.sample_budget


def _cached_value(label: SampleLabel, run: LabelRun) -> dict:
    return {"categories": list(label.categories), "difficulty": label.difficulty, "truncated": label.index in run.truncated}


def _inferred_taxonomy(handle, cache, samples) -> Taxonomy:
    """Infer the taxonomy, or reuse the one inferred before for the same samples and model."""
    from .infer import INFER_MAX_SAMPLES, infer_taxonomy, spread

    key = cache_key("infer", handle.identity, PROMPT_VERSION, [s.content_hash() for s in spread(samples, INFER_MAX_SAMPLES)])
    if cache is not None:
        hit = cache.get_many([key]).get(key)
        if hit is not None:
            return Taxonomy.model_validate(hit)
    taxonomy = infer_taxonomy(handle.get(), samples)
    if cache is not None:
        cache.put_many({key: taxonomy.model_dump()})
    return taxonomy


def _sample_warnings(samples: list[Sample], facts: dict) -> list[str]:
    warnings = []
    if len(samples) < FEW_SAMPLES:
        warnings.append(
            f"only {len(samples)} samples analyzed: under {FEW_SAMPLES}, shares and gaps are weak statistics"
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
