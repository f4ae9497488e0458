"""One path for every model call that must come back parsed: generate, parse, retry once.

Labeling, the Ray replicas, taxonomy inference, the card strategy and seeds all send their
requests through `generate_parsed`. An answer that is not usable (generation did not stop
normally, or `parse` returns None or raises) is asked once more: a cut-off answer with twice the
token budget, any other failure as it was. Model output reaches `json.loads` only through
`json_object`, which never raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .engines import Engine, GenRequest, GenResult

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """One request's parsed value (None when both tries failed) and what its tries cost."""

    value: T | None
    result: GenResult  # the answer the value came from, or the last failed one
    first_finish_reason: str
    retried: bool
    output_tokens: int  # over both tries


def retry_request(request: GenRequest, result: GenResult) -> GenRequest:
    """The one retry of a failed answer: a cut-off answer gets twice the token budget."""
    budget = request.max_tokens * 2 if result.finish_reason == "length" else request.max_tokens
    return GenRequest(request.messages, request.schema, budget, request.logprobs)


def json_object(result: GenResult) -> dict | None:
    """The answer's JSON object, or None when it stopped abnormally or is not a JSON object."""
    if not result.ok:
        return None
    try:
        value = json.loads(result.text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _parsed(parse: Callable[[int, GenResult], T | None], position: int, result: GenResult) -> T | None:
    if not result.ok:
        return None
    try:
        return parse(position, result)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def generate_parsed(engine: Engine, requests: list[GenRequest], parse: Callable[[int, GenResult], T | None],
                    revise: Callable[[int, GenRequest], GenRequest] | None = None) -> list[Outcome[T]]:
    """Run `requests` as one batch, parse every answer (`parse(position, result)`), and send the
    unusable ones once more as one batch; `revise(position, request)` may change a request's prompt
    for its retry (at temperature 0 the same prompt tends to fail the same way, unless it was cut off).
    The outcomes come back in the order of `requests`."""
    first = engine.generate(requests) if requests else []
    outcomes = [Outcome(_parsed(parse, i, r), r, r.finish_reason, False, r.output_tokens) for i, r in enumerate(first)]
    again = [i for i, o in enumerate(outcomes) if o.value is None]
    if again:
        retries = [retry_request(revise(i, requests[i]) if revise else requests[i], outcomes[i].result) for i in again]
        second = engine.generate(retries)
        for i, result in zip(again, second):
            o = outcomes[i]
            o.value, o.result, o.retried = _parsed(parse, i, result), result, True
            o.output_tokens += result.output_tokens
    return outcomes
