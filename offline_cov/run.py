"""One run of `analyze`: what every strategy is handed (`Run`) and the metadata it writes.

The run metadata is built here, by `Run.metadata`, for every strategy; each strategy adds only
its own blocks (samples, failures, its checks).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from .cache import LabelCache
from .data.plan import DatasetPlan
from .engines import EngineHandle
from .options import AnalysisResult, AnalyzeOptions
from .prompts import PROMPT_VERSION
from .report.contract import CoverageReport
from .taxonomy import Taxonomy
from .version import __version__

FEW_SAMPLES = 50
DUPLICATES_WARN = 0.01  # warn when more than 1% of the samples repeat an earlier one exactly


@dataclass
class Run:
    """A run's options (labeler and engine decided), its samples, its engine (opened on demand), its
    label cache, the labeler class, and what it has noted so far (warnings, timings)."""

    opts: AnalyzeOptions
    plan: DatasetPlan
    handle: EngineHandle
    cache: LabelCache | None
    labeler_cls: type
    progress: Callable[[int, int], None] | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    labeler_info: dict = field(default_factory=dict)
    described: dict | None = None  # what the model wrote for a names-only taxonomy (strategies/describe.py)

    def __post_init__(self):
        self.warnings += sample_warnings(self.plan)
        self.labeler_info = self.labeler_info or {"labeler": self.labeler_cls.name}

    @cached_property
    def identity(self) -> str:
        """The labeler's cache identity (its engine and model settings included), worked out once:
        every sample's cache key holds it."""
        return self.labeler_cls.cache_identity(self.handle.identity)

    def open_labeler(self, taxonomy: Taxonomy):
        """The run's labeler for `taxonomy`. One that needs the engine (llm, hybrid, ensemble: each sends
        the LLM's label request) is refused before the engine starts when the label prompt cannot fit."""
        if self.labeler_cls.needs_engine:
            from .labelers.llm import check_fits_before_engine

            check_fits_before_engine(taxonomy, self.opts.label, self.handle)
        return self.labeler_cls.open(taxonomy, self.opts.label, self.handle)

    def timed(self, name: str, since: float) -> None:
        self.timings[name] = round(time.perf_counter() - since, 3)

    def result(self, report: CoverageReport, labels, taxonomy: Taxonomy, **blocks) -> AnalysisResult:
        """The run's result: the report, the labels, and the metadata with the strategy's own `blocks`."""
        if not self.opts.shard and (warning := report_warning(report, taxonomy)):  # merge warns for the whole run
            self.warnings.append(warning)
        counts = report.counts()  # `render` and `compare` tell this run's report from another's by them
        return AnalysisResult(report, labels, self.metadata(taxonomy, category_counts=counts, **blocks), taxonomy)

    def model_read(self) -> str:
        """The model that read the samples: the run's, unless only the labeler's own one did (fused)."""
        own = getattr(self.labeler_cls, "reading_model", None)
        return self.handle.model_name if self.handle.loaded or own is None else own

    def metadata(self, taxonomy: Taxonomy, **blocks) -> dict:
        """The run's facts: model, labeler, engine and versions, prompt version, taxonomy, timings, warnings."""
        self.timings["engine_load_s"] = self.handle.load_s
        if self.cache is not None:
            self.warnings += [w for w in self.cache.warnings if w not in self.warnings]
        self.timings["total_s"] = round(time.perf_counter() - self.started, 3)
        reads_llm = self.labeler_cls.reads_llm or self.handle.loaded
        engine = self.handle.info()
        self.warnings += dtype_warning(engine, self.warnings) + lighter_warning(self.labeler_cls, self.model_read(), self.warnings)
        return {
            "tool": {"name": "offline-cov", "version": __version__},
            "model": self.model_read() if reads_llm else None,
            "labeler": self.labeler_info,
            "engine": engine,
            "engine_identity": self.identity,
            "prompt_version": PROMPT_VERSION,
            "strategy": self.opts.strategy,
            "taxonomy": taxonomy_facts(taxonomy),
            **({"taxonomy_described": self.described} if self.described else {}),
            "thresholds": {"gap": self.opts.thresholds.gap, "over": self.opts.thresholds.over},
            "input": self.plan.facts(),
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "timings": self.timings,
            "warnings": self.warnings,
            "cache": cache_facts(self.cache),
            **blocks,
        }


def dtype_warning(engine: dict, already: list[str]) -> list[str]:
    """A warning when the engine ran the model in another dtype than models.yaml's (a CPU without
    bfloat16 instructions: registry.cpu_dtype), so a slow run says why."""
    note = (engine.get("cpu_runtime") or {}).get("dtype")
    if not note:
        return []
    warning = (f"the model ran in {note}: labeling is several times slower than on a CPU with AVX-512 BF16 "
               "or AMX; --labeler fused needs no LLM and is fast anywhere, and -m qwen2.5-coder-0.5b runs ~2x faster "
               "with less accurate labels (bench/README.md)")
    return [] if warning in already else [warning]


def lighter_warning(labeler_cls, model: str, already: list[str]) -> list[str]:
    """A warning when the labels come from a lighter form of `ensemble` (a class with a `lighter` text:
    `ensemble-lite`, the default on a CPU without AMX, or `ensemble-nocheck`) that the bench measured
    less accurate: both means on the bench's test sets both were measured on, with the run's `model`
    (with the CPU default's model when it was not measured with both), and how to ask for `ensemble`."""
    from .labelers import CPU_DEFAULT_LABELER, get_labeler_class
    from .labelers.measured import for_model

    if not getattr(labeler_cls, "lighter", None) or not labeler_cls.measured:
        return []
    classes = (labeler_cls, get_labeler_class(CPU_DEFAULT_LABELER))
    entries = [for_model(cls.measured, model, reads_llm=True) for cls in classes]
    if not all("accuracy" in e for e in entries):
        entries = [cls.measured[0] for cls in classes]
    both = entries[0]["accuracy"].keys() & entries[1]["accuracy"].keys()
    if not both:
        return []  # no set measured with both: no comparison to make
    lighter, full = (mean_accuracy(e, both) for e in entries)
    if round(lighter, 2) >= round(full, 2):
        return []
    warning = (f"labeled by {labeler_cls.name}, {labeler_cls.lighter}: {lighter:.2f} mean accuracy on the "
               f"bench's test sets against {full:.2f} for {CPU_DEFAULT_LABELER} ({entries[0]['model']}). "
               f"--labeler {CPU_DEFAULT_LABELER} asks its check of each category in a chat of its own, about 2x "
               "slower on a CPU without AMX (bench/README.md)")
    return [] if warning in already else [warning]


def mean_accuracy(entry: dict, sets) -> float:
    """The mean test accuracy of one measured entry over `sets` (keys of its accuracy): two entries are
    compared on the sets both measured (the 0.5B's `ensemble` has no `-described` rows)."""
    return sum(entry["accuracy"][k] for k in sets) / len(sets)


def taxonomy_facts(taxonomy: Taxonomy) -> dict:
    return {
        "names": taxonomy.names,
        "inferred": taxonomy.inferred,
        "inferred_by": taxonomy.inferred_by,
        "targets": taxonomy.targets(),
        "descriptions": {c.name: c.description for c in taxonomy.categories if c.description},
    }


def cache_facts(cache: LabelCache | None) -> dict:
    if cache is None:
        return {"enabled": False}
    return {"enabled": True, "path": str(cache.path), "hits": cache.hits, "misses": cache.misses,
            "invalid_values": cache.bad_values, "writable": cache.writable}


def report_warning(report: CoverageReport, taxonomy: Taxonomy) -> str | None:
    """What the report itself calls for a warning on: part of the mix its balance score cannot see."""
    from .report.tally import off_target_warning

    return off_target_warning(report.counts(), report.total_samples_analyzed, taxonomy.targets())


def few_samples_warning(analyzed: int) -> str | None:
    """The warning a run (or a shard) of fewer than FEW_SAMPLES samples gets."""
    if analyzed >= FEW_SAMPLES:
        return None
    return f"only {analyzed} sample{'' if analyzed == 1 else 's'} analyzed: under {FEW_SAMPLES}, shares and gaps are weak statistics"


def sample_warnings(plan: DatasetPlan) -> list[str]:
    """What the plan's first pass found worth a warning: few samples, skipped records, exact
    duplicates over 1%, a --sample larger than the file."""
    from .data.readers import hf_split_note

    scan = plan.scan
    warnings = [note] if plan.data.is_dir() and (note := hf_split_note(plan.data)) else []
    warnings += scan.notes
    if few := few_samples_warning(plan.analyzed):
        warnings.append(few)
    if scan.skipped:
        warnings.append(f"{len(scan.skipped)} bad record(s) skipped (--skip-bad-lines)")
    if scan.count and scan.duplicates / scan.count > DUPLICATES_WARN:
        warnings.append(f"{scan.duplicates} of {scan.count} samples ({100 * scan.duplicates / scan.count:.1f}%) "
                        "repeat an earlier sample exactly; each copy is counted (deduplicate the file to count it once)")
    if plan.opts.sample and plan.opts.sample > scan.count:
        warnings.append(f"--sample {plan.opts.sample} asks for more samples than the file holds "
                        f"({scan.count}); all of them were analyzed")
    return warnings
