"""EngineHandle: an engine opened on first use, or loaded in the background (`prefetch`) while work
that needs none runs; the fake engine stands in for the model (deterministic logic only)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from offline_cov.data.readers import Sample
from offline_cov.engines import ENGINES, EngineHandle
from offline_cov.engines.fake import FakeEngine
from offline_cov.labelers import ensemble
from offline_cov.labelers.base import LabelRun, LabelSettings
from offline_cov.labelers.ensemble import EnsembleLabeler
from offline_cov.taxonomy import parse_taxonomy_list


def gated_engine(monkeypatch, gate: threading.Event, fail: bool = False) -> list:
    """Registers under "vllm" an engine whose constructor waits for `gate`; returns the engines made."""
    made = []

    class Gated(FakeEngine):
        def __init__(self, spec=None, seed: int = 0, **_options):
            assert gate.wait(10), "the test never opened the gate"
            if fail:
                raise RuntimeError("no model here")
            super().__init__(spec, seed=seed)
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(ENGINES, "vllm", Gated)
    return made


def test_prefetch_loads_in_the_background_and_get_waits_for_it(monkeypatch):
    gate = threading.Event()
    made = gated_engine(monkeypatch, gate)
    handle = EngineHandle("vllm", "smollm2-135m")
    handle.prefetch()
    assert not handle.loaded  # the constructor is still waiting: prefetch did not block
    gate.set()
    engine = handle.get()
    assert made == [engine] and handle.loaded and handle.load_s > 0
    handle.prefetch()  # loaded already: nothing more is opened
    assert handle.get() is engine and len(made) == 1


def test_a_failed_background_load_is_raised_by_get_and_close_stays_quiet(monkeypatch):
    gate = threading.Event()
    gate.set()
    gated_engine(monkeypatch, gate, fail=True)
    handle = EngineHandle("vllm", "smollm2-135m")
    handle.prefetch()
    with pytest.raises(RuntimeError, match="no model here"):
        handle.get()
    handle.close()


def test_close_waits_for_an_engine_still_loading_and_closes_it(monkeypatch):
    gate = threading.Event()
    made = gated_engine(monkeypatch, gate)
    handle = EngineHandle("vllm", "smollm2-135m")
    handle.prefetch()
    threading.Timer(0.2, gate.set).start()
    handle.close()  # the run ended (or failed) before any request: no engine is left open
    assert len(made) == 1 and made[0].closed


def test_prefetch_can_be_turned_off(monkeypatch):
    gate = threading.Event()
    made = gated_engine(monkeypatch, gate)
    monkeypatch.setenv("OFFLINE_COV_PREFETCH", "0")
    handle = EngineHandle("vllm", "smollm2-135m")
    handle.prefetch()
    assert handle._loading is None and not made
    gate.set()
    assert handle.get() is made[0]


def test_the_ensemble_scores_its_prototypes_before_it_waits_for_the_engine(monkeypatch):
    """What the overlap buys: the prototype scores of the first batch need no engine."""
    gate = threading.Event()
    made = gated_engine(monkeypatch, gate)
    handle = EngineHandle("vllm", "smollm2-135m")
    taxonomy = parse_taxonomy_list("math,code,writing")
    seen = []

    def scores(texts):
        seen.append(handle.loaded)
        gate.set()
        return np.zeros((len(texts), 3))

    fused = SimpleNamespace(temperature=1.0, scores=scores, info=lambda: {})
    monkeypatch.setattr(ensemble, "FusedLabeler", lambda *args, **kwargs: fused)
    labeler = EnsembleLabeler.open(taxonomy, LabelSettings(), handle)
    assert not made  # open() returned before the engine was built
    labels = labeler.label_batch([Sample(0, (("user", "2 + 2?"),))], LabelRun())
    assert seen == [False] and made and labels[0].categories[0] in taxonomy.names
    handle.close()
