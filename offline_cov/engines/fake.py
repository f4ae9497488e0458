"""A seeded fake engine: valid answers for any JSON schema, or queued answers. For unit tests only.

Like a model at temperature 0, its answer depends only on the seed and the request, never on
which other requests share the batch.
"""

from __future__ import annotations

import json
import random

from . import GenRequest, GenResult


class FakeEngine:
    """Answers each request with a random valid instance of its schema, or the next queued answer."""

    name = "fake"

    def __init__(self, spec=None, seed: int = 0, responses: list[str] | None = None, max_model_len: int = 2048,
                 record: bool = True):
        self.model_name = getattr(spec, "name", "fake")
        self.identity = f"fake:{seed}:{max_model_len}"
        self.max_model_len = max_model_len
        self.seed = seed
        self.responses = list(responses or [])
        self.requests: list[GenRequest] = []  # every request seen, for tests (record=False: none, for benches)
        self.record = record

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        results = []
        for request in requests:
            if self.record:
                self.requests.append(request)
            if self.responses:
                item = self.responses.pop(0)
                results.append(item if isinstance(item, GenResult) else GenResult(item, "stop", len(item.split())))
            else:
                rng = random.Random(f"{self.seed}:{json.dumps(request.messages, sort_keys=True)}")
                text = json.dumps(schema_instance(request.schema or {"type": "string"}, rng))
                results.append(GenResult(text, "stop", len(text.split())))
        return results

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        words = text.split()
        return text if len(words) <= max_tokens else " ".join(words[:max_tokens])

    def info(self) -> dict:
        return {"engine": "fake", "structured_output_backend": "none (fake)"}

    def close(self) -> None:
        pass


def schema_instance(schema: dict, rng: random.Random):
    """A random instance of a (simple) JSON schema: objects, arrays, enums, strings, numbers."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: schema_instance(v, rng) for k, v in props.items()}
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", schema.get("minItems", 0) + 1)
        items = [schema_instance(schema.get("items", {}), rng) for _ in range(rng.randint(low, high))]
        if schema.get("uniqueItems"):
            items = list(dict.fromkeys(json.dumps(i) for i in items))
            items = [json.loads(i) for i in items]
        return items
    if kind == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 100))
    if kind == "number":
        return round(rng.uniform(schema.get("minimum", 0), schema.get("maximum", 1)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return "fake " + "".join(rng.choice("abcdefgh") for _ in range(max(1, schema.get("minLength", 6))))
