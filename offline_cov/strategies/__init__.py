"""Strategies: which samples go to which labeler, and how their labels become a report.

- `per-sample` (`per_sample.py`): every sample labeled on its own, through the label cache;
- `card` (`card.py`): the original single-prompt analysis, checked against the contract;
- `distill` (`distill.py`): an LLM labels a stratified subsample, a classifier the rest.

`infer.py` proposes a taxonomy when none is given; `shard.py` splits a run into job-array shards
and merges them. A strategy is a function of a `run.Run`; the registry names them as strings.
"""

from __future__ import annotations

import importlib

from ..errors import OfflineCovError

STRATEGIES = {
    "per-sample": "offline_cov.strategies.per_sample:run_per_sample",
    "card": "offline_cov.strategies.card:run_card",
    "distill": "offline_cov.strategies.distill:run_distilled",
}


def get_strategy(name: str):
    """The strategy function registered as `name`; lists the choices when the name is unknown."""
    if name not in STRATEGIES:
        raise OfflineCovError(f"Unknown strategy {name!r}. Available: {', '.join(STRATEGIES)}")
    module, _, attr = STRATEGIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
