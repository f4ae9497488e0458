"""Engines: one file each, behind the small `Engine` interface; a registry picks one by name."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import OfflineCovError

ENGINES = {
    "vllm": "offline_cov.engines.vllm_engine:VllmEngine",
    "transformers": "offline_cov.engines.transformers_engine:TransformersEngine",
    "fake": "offline_cov.engines.fake:FakeEngine",
    "openai": "offline_cov.engines.openai_engine:OpenAIEngine",
    "ray": "offline_cov.engines.ray_engine:RayEngine",
}
LOCAL_ENGINES = ("vllm", "transformers", "ray")  # run models.yaml's weights, with their own tokenizer and max_model_len


@dataclass
class GenRequest:
    """One chat request; `schema` (a JSON schema) constrains the answer, None leaves it free.
    `logprobs`: ask for each generated token's log-probability (engines that can: vLLM); a number k
    above 1 also asks for the k most likely tokens allowed at each position."""

    messages: list[dict]
    schema: dict | None
    max_tokens: int
    logprobs: int = 0


@dataclass
class GenResult:
    """One answer: its text, why generation stopped (stop, length, error) and its output tokens.
    `extra["tokens"]`, where logprobs were asked and the engine gives them: (token text, logprob) pairs."""

    text: str
    finish_reason: str
    output_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.finish_reason == "stop" and bool(self.text)


class Engine(Protocol):
    """What the labeling pipeline needs from a model runtime."""

    name: str
    model_name: str
    identity: str
    max_model_len: int

    def generate(self, requests: list[GenRequest]) -> list[GenResult]: ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...

    def info(self) -> dict: ...

    def close(self) -> None: ...


class TokenBudget:
    """`count_tokens` and `truncate` with the model's own Hugging Face tokenizer (`self.tokenizer`),
    for the engines that hold one."""

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])


class ModelTokenizer(TokenBudget):
    """A model's Hugging Face tokenizer alone, from its weights folder: token counts before (or
    without) an engine."""

    def __init__(self, path, trust_remote_code: bool = False):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def get_engine_class(name: str):
    """The engine class registered as `name` (a "module:Class" string, or a class registered in its
    place, as tests do with the fake engine); lists the choices when the name is unknown."""
    if name not in ENGINES:
        raise OfflineCovError(f"Unknown engine {name!r}. Available: {', '.join(ENGINES)}")
    entry = ENGINES[name]
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_engine(name: str, model: str | None, seed: int = 0, **options) -> Engine:
    """Build the named engine with the named model (None: the one this machine can run)."""
    from ..home import go_offline
    from ..registry import load_registry

    go_offline()
    return get_engine_class(name)(load_registry().get(model), seed=seed, **options)


class EngineHandle:
    """An engine opened only when something must be generated: a fully cached run loads no model.

    `identity` (the engine and model settings, part of every cache key) and `model_name` are
    known without loading anything. An engine handed in is used as it is and not closed here.
    """

    def __init__(self, name: str, model: str | None, seed: int = 0, options: dict | None = None,
                 engine: Engine | None = None):
        self.name, self.seed, self.options = name, seed, options or {}
        self._engine, self.own, self.load_s = engine, engine is None, 0.0
        if engine is not None:
            fallback = f"{engine.name}:{engine.model_name}"  # engines written outside this package
            self.identity, self.model_name = getattr(engine, "identity", fallback), engine.model_name
        else:
            from ..registry import load_registry, model_identity

            spec = load_registry().get(model)
            self.identity, self.model_name = model_identity(name, spec), spec.name

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def get(self) -> Engine:
        if self._engine is None:
            started = time.perf_counter()
            self._engine = open_engine(self.name, self.model_name, self.seed, **self.options)
            self.load_s = round(time.perf_counter() - started, 3)
        return self._engine

    def info(self) -> dict:
        return self._engine.info() if self._engine else {"engine": self.name, "loaded": False}

    def close(self) -> None:
        if self.own and self._engine is not None:
            self._engine.close()


def json_schema_type(schema: dict):
    """The Outlines output type for a JSON schema."""
    import json

    from outlines.types import JsonSchema

    return JsonSchema(json.dumps(schema))
