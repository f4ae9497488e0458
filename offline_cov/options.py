"""What `analyze` is told (`AnalyzeOptions`) and what it gives back (`AnalysisResult`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .data.readers import FieldSpec
from .labelers.base import LabelSettings
from .report.contract import CoverageReport
from .report.tally import LabelStore, SampleLabel, Thresholds
from .taxonomy import Taxonomy

ENGINES = ("vllm", "transformers", "ray")  # model runtimes a user picks with --engine
LABELER_ENGINES = ("embed", "fused", "hybrid")  # once --engine names, now --labeler names


@dataclass
class AnalyzeOptions:
    """Everything `analyze` can be told, with the CLI's defaults.

    `labeler` is what turns samples into labels (llm, embed, fused, hybrid, ensemble; None: the
    machine's default, `llm` where that would not read a named model or engine, `resolved`); `engine` is the model runtime
    the labeler and taxonomy inference use (vllm, transformers, ray; None: vllm). The
    labeler names once given as `engine` (embed, fused, hybrid) are still understood as labelers.
    """

    taxonomy: Taxonomy | None = None
    model: str | None = None
    labeler: str | None = None
    engine: str | None = None
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
    calibration: str | Path | None = None  # rows of the user's data with their true category (data/calibration.py)
    # a names-only category gets a description and examples from the model (strategies/describe.py);
    # OFFLINE_COV_DESCRIBE=0 turns the default off
    describe: bool = field(default_factory=lambda: os.environ.get("OFFLINE_COV_DESCRIBE", "1") != "0")

    def __post_init__(self):
        if self.engine in LABELER_ENGINES:
            if self.labeler not in (None, self.engine):
                raise ValueError(f"engine={self.engine!r} names a labeler, and labeler={self.labeler!r} another")
            self.labeler, self.engine = self.engine, None

    def resolved(self, engine_given: bool = False) -> AnalyzeOptions:
        """These options with the labeler and engine decided: an engine handed in, a runtime other than
        vLLM (the ensemble's measured numbers rest on vLLM's logprobs), or a strategy that needs an
        LLM's labels means the LLM labels; else the machine decides, and a named model or `--engine
        vllm` keeps its default only when that default reads the model (`default_labeler`)."""
        from dataclasses import replace

        from .labelers import default_labeler

        llm_asked = engine_given or self.engine not in (None, "vllm") or self.strategy != "per-sample"
        named = bool(self.model) or self.engine == "vllm"
        return replace(self, labeler=self.labeler or default_labeler(llm_asked, named), engine=self.engine or "vllm")


@dataclass
class AnalysisResult:
    """The report, the per-sample labels and the run metadata."""

    report: CoverageReport
    labels: LabelStore | list[SampleLabel]  # iterable, in index order
    metadata: dict
    taxonomy: Taxonomy
