"""Infer 5-10 categories from the data when no taxonomy is given (constrained model output)."""

from __future__ import annotations

import json

from .aggregate import snippet
from .dataset import Sample
from .engines import Engine, GenRequest
from .errors import GenerationError
from .prompts import INFER_MAX_SAMPLES, INFER_SNIPPET_CHARS, infer_messages, infer_schema
from .taxonomy import Category, Taxonomy, slugify

INFER_MAX_TOKENS = 700
MIN_INFERRED, MAX_INFERRED = 5, 10


def spread(samples: list[Sample], k: int) -> list[Sample]:
    """k samples evenly spread over the list (deterministic)."""
    if len(samples) <= k:
        return list(samples)
    step = len(samples) / k
    return [samples[int(i * step)] for i in range(k)]


def infer_taxonomy(engine: Engine, samples: list[Sample]) -> Taxonomy:
    """Ask the model for categories; keep distinct names; fail clearly if fewer than 5 remain."""
    shown = [snippet(s.instruction, INFER_SNIPPET_CHARS) for s in spread(samples, INFER_MAX_SAMPLES)]
    request = GenRequest(infer_messages(shown), infer_schema(), INFER_MAX_TOKENS)
    result = engine.generate([request])[0]
    if not result.ok:
        result = engine.generate([GenRequest(request.messages, request.schema, INFER_MAX_TOKENS * 2)])[0]
    if not result.ok:
        raise GenerationError(
            f"could not infer a taxonomy (model answer {result.finish_reason}); pass --taxonomy instead"
        )
    categories = distinct_categories(json.loads(result.text)["categories"])
    if len(categories) < MIN_INFERRED:
        raise GenerationError(
            f"the model proposed only {len(categories)} distinct categories "
            f"({', '.join(c.name for c in categories)}); pass --taxonomy to name them yourself"
        )
    return Taxonomy(categories=categories[:MAX_INFERRED], inferred=True)


def distinct_categories(items: list[dict]) -> list[Category]:
    """Categories with snake_case names, dropping repeats of a name already seen."""
    seen: dict[str, Category] = {}
    for item in items:
        name = slugify(item.get("name", ""))
        if name and name not in seen:
            seen[name] = Category(name=name, description=item.get("description", "").strip())
    return list(seen.values())
