"""Shared fixtures: an isolated tool home, offline mode, and one real vLLM engine per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ["VLLM_NO_USAGE_STATS"] = "1"
# The suite runs the pipeline with the small model and the labeler that loads no engine wherever a
# test names neither (the machine defaults, Qwen2.5-Coder-1.5B and `ensemble`, take minutes per run);
# tests/test_qwen.py runs the defaults themselves, and test_embed.py checks what they are.
os.environ["OFFLINE_COV_MODEL"] = "smollm2-135m"
os.environ["OFFLINE_COV_LABELER"] = "fused"
# Names-only taxonomies are described by the model before labeling (strategies/describe.py); with
# the fake engine that would be random text ahead of every queued answer, so the suite turns the
# default off and tests/test_describe.py and test_qwen.py turn it on where they check it.
os.environ["OFFLINE_COV_DESCRIBE"] = "0"

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sft_sample.jsonl"
EXAMPLE_TAXONOMY = REPO / "examples" / "taxonomy.yaml"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def no_minilm_outside_engine_tests(request, monkeypatch):
    """Taxonomy inference tops the model's proposal up with skills that MiniLM finds samples nearer to
    (`strategies.infer.skills_wanted`); outside tests marked `engine` no real model runs, so there every
    shown sample is nearest the first proposed category and nothing is added. test_infer_skills.py
    checks the rule on fixed similarities and with MiniLM itself."""
    if request.node.get_closest_marker("engine") is None:
        import numpy as np

        from offline_cov.strategies import infer

        monkeypatch.setattr(infer, "minilm_scores", lambda taxonomy, texts: np.zeros((len(texts), len(taxonomy.names))))


@pytest.fixture(scope="session", autouse=True)
def tool_home(tmp_path_factory) -> Path:
    """Every test session gets its own OFFLINE_COV_HOME (converted models, caches)."""
    home = Path(os.environ.get("OFFLINE_COV_TEST_HOME") or tmp_path_factory.mktemp("offline-cov-home"))
    os.environ["OFFLINE_COV_HOME"] = str(home)
    return home


class FakeEngines(list):
    """Every engine the code opened by name while the `fake_engines` fixture was active."""

    def __init__(self, **fake_kwargs):
        super().__init__()
        self.fake_kwargs, self.calls = fake_kwargs, []


@pytest.fixture
def fake_engines(monkeypatch):
    """Registers a seeded FakeEngine under every model runtime's name (vllm, transformers, ray), so the
    code under test opens it through the engine registry; the list holds each engine opened, with
    `calls` the (engine name, model) asked for. `fake_engines.fake_kwargs` go to each FakeEngine."""
    from offline_cov.engines import ENGINES
    from offline_cov.engines.fake import FakeEngine

    opened = FakeEngines()

    def register(name: str):
        class Registered(FakeEngine):
            def __init__(self, spec=None, seed: int = 0, **_options):
                kwargs = {"seed": seed, **opened.fake_kwargs}
                super().__init__(None, **kwargs)
                self.closed = False
                opened.calls.append((name, getattr(spec, "name", None)))
                opened.append(self)

            def close(self) -> None:
                self.closed = True

        return Registered

    for name in ("vllm", "transformers", "ray"):
        monkeypatch.setitem(ENGINES, name, register(name))
    return opened


@pytest.fixture(scope="session")
def vllm_engine(tool_home):
    """One real vLLM engine with smollm2-135m, shared by the end-to-end tests."""
    from offline_cov.engines import open_engine

    engine = open_engine("vllm", "smollm2-135m")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def transformers_engine(tool_home):
    """The transformers engine with smollm2-135m."""
    from offline_cov.engines import open_engine

    engine = open_engine("transformers", "smollm2-135m")
    yield engine
    engine.close()


@pytest.fixture(autouse=True)
def label_cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own label cache, so no test sees labels another one stored."""
    path = tmp_path / "labels.sqlite"
    monkeypatch.setenv("OFFLINE_COV_CACHE", str(path))
    return path


def pytest_sessionfinish(session, exitstatus):
    """A safety net: an engine process left behind by a failed test must not keep pytest from exiting."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def shell_env() -> dict:
    """This environment without what the in-process engine and commands set for the libraries'
    output (go_offline's VLLM_LOGGING_LEVEL, silence_libraries'): a command started with it sees a
    user's shell, whichever tests ran before it in this process."""
    from offline_cov.cli.common import QUIET_LIBRARIES

    return {k: v for k, v in os.environ.items() if k not in QUIET_LIBRARIES}
