"""`analyze`: read, sample, (infer a taxonomy,) label, aggregate. The library behind the CLI."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .aggregate import ReportInputs, SampleLabel, Thresholds, build_report
from .contract import CoverageReport
from .dataset import FieldSpec, Sample, draw_sample, read_samples
from .engines import Engine, get_engine_class
from .home import go_offline
from .labeling import LabelSettings, Labeler, label_samples
from .prompts import PROMPT_VERSION
from .registry import load_registry
from .taxonomy import Taxonomy

FEW_SAMPLES = 50


@dataclass
class AnalyzeOptions:
    """Everything `analyze` can be told, with the CLI's defaults."""

    taxonomy: Taxonomy | None = None
    model: str | None = None
    engine: str = "vllm"
    sample: int | None = None
    seed: int = 0
    strategy: str = "per-sample"
    fields: FieldSpec = field(default_factory=FieldSpec)
    encoding: str = "utf-8"
    skip_bad_lines: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    label: LabelSettings = field(default_factory=LabelSettings)


@dataclass
class AnalysisResult:
    """The report, the per-sample labels and the run metadata."""

    report: CoverageReport
    labels: list[SampleLabel]
    metadata: dict
    taxonomy: Taxonomy


def open_engine(name: str, model: str | None, seed: int = 0) -> Engine:
    """Build the named engine with the named model (default: the one this machine can run)."""
    go_offline()
    registry = load_registry()
    spec = registry.get(model or registry.default_name())
    return get_engine_class(name)(spec, seed=seed)


def load_and_sample(data: str | Path, opts: AnalyzeOptions) -> tuple[list[Sample], dict]:
    """Read the dataset and draw the sample; return it with the reading facts for the metadata."""
    read = read_samples(data, opts.fields, encoding=opts.encoding, skip_bad_lines=opts.skip_bad_lines)
    chosen = draw_sample(read.samples, opts.sample, opts.seed)
    facts = {
        "dataset": str(data),
        "shape": read.shape,
        "samples_in_file": len(read.samples),
        "skipped_records": read.skipped,
        "sample_size": opts.sample,
        "seed": opts.seed,
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
    started = time.perf_counter()
    samples, facts = load_and_sample(data, opts)
    warnings = _sample_warnings(samples, facts)
    own_engine = engine is None
    load_start = time.perf_counter()
    engine = engine or open_engine(opts.engine, opts.model, opts.seed)
    timings = {"engine_load_s": round(time.perf_counter() - load_start, 3)}
    try:
        if opts.strategy == "card":
            from .card import run_card

            return run_card(engine, samples, opts, facts, warnings, timings, started)
        return _per_sample(engine, samples, opts, facts, warnings, timings, started, progress)
    finally:
        if own_engine:
            engine.close()


def _per_sample(engine, samples, opts, facts, warnings, timings, started, progress) -> AnalysisResult:
    taxonomy = opts.taxonomy
    if taxonomy is None:
        from .infer import infer_taxonomy

        t = time.perf_counter()
        taxonomy = infer_taxonomy(engine, samples)
        timings["infer_taxonomy_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    labeler = Labeler(engine, taxonomy, opts.label)
    run = label_samples(labeler, samples, progress=progress)
    timings["label_s"] = round(time.perf_counter() - t, 3)
    report = build_report(
        ReportInputs(taxonomy, run.labels, {s.index: s for s in samples}, len(samples), opts.thresholds)
    )
    if run.failed:
        warnings.append(f"{len(run.failed)} sample(s) could not be labeled after a retry; see metadata 'failed'")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    metadata = run_metadata(engine, opts, taxonomy, facts, warnings, timings)
    metadata["samples"] = {
        "analyzed": len(samples),
        "labeled": len(run.labels),
        "failed": len(run.failed),
        "truncated": run.truncated,
        "retried": run.retried,
    }
    metadata["failed"] = run.failed
    metadata["output_tokens"] = run.output_tokens
    metadata["sample_token_budget"] = labeler.sample_budget
    return AnalysisResult(report, sorted(run.labels, key=lambda lab: lab.index), metadata, taxonomy)


def _sample_warnings(samples: list[Sample], facts: dict) -> list[str]:
    warnings = []
    if len(samples) < FEW_SAMPLES:
        warnings.append(
            f"only {len(samples)} samples analyzed: under {FEW_SAMPLES}, shares and gaps are weak statistics"
        )
    if facts["skipped_records"]:
        warnings.append(f"{len(facts['skipped_records'])} bad record(s) skipped (--skip-bad-lines)")
    return warnings


def run_metadata(engine: Engine, opts: AnalyzeOptions, taxonomy: Taxonomy, facts: dict, warnings, timings) -> dict:
    """The run's facts: model, engine and versions, prompt version, taxonomy, timings, warnings."""
    return {
        "tool": {"name": "offline-cov", "version": __version__},
        "model": engine.model_name,
        "engine": engine.info(),
        "prompt_version": PROMPT_VERSION,
        "strategy": opts.strategy,
        "taxonomy": {
            "names": taxonomy.names,
            "inferred": taxonomy.inferred,
            "targets": taxonomy.targets(),
            "descriptions": {c.name: c.description for c in taxonomy.categories if c.description},
        },
        "thresholds": {"gap": opts.thresholds.gap, "over": opts.thresholds.over},
        "input": facts,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "timings": timings,
        "warnings": warnings,
    }
