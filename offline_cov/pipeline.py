"""`analyze`: plan the samples, hand the run to its strategy. The library behind the CLI.

The flow: data (`data/`) -> plan (`data/plan.py`) -> strategy (`strategies/`) -> labeler
(`labelers/`) -> engine (`engines/`) -> tally and report (`report/`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .cache import LabelCache
from .data.plan import DatasetPlan
from .engines import Engine, EngineHandle
from .labelers import get_labeler_class
from .options import AnalysisResult, AnalyzeOptions
from .run import Run
from .strategies import get_strategy


def analyze(
    data: str | Path,
    opts: AnalyzeOptions | None = None,
    *,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Analyze a dataset's coverage. Pass an open `engine` to reuse it across runs."""
    started = time.perf_counter()
    opts = (opts or AnalyzeOptions()).resolved(engine_given=engine is not None)
    strategy, labeler_cls = get_strategy(opts.strategy), get_labeler_class(opts.labeler)
    plan = DatasetPlan.of(data, opts)
    handle = EngineHandle(opts.engine, opts.model, opts.seed, opts.engine_options, engine)
    cache = LabelCache(opts.cache_path) if opts.use_cache else None
    try:
        return strategy(Run(opts, plan, handle, cache, labeler_cls, progress, started=started))
    finally:
        handle.close()
        if cache is not None:
            cache.close()
