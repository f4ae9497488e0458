"""The LLM labeler: one chat request per sample, its answer constrained to the taxonomy's enums."""

from __future__ import annotations

import json
import math
import re

from ..data.readers import Sample
from ..engines import Engine, GenRequest, GenResult
from ..errors import GenerationError
from ..generation import Outcome, generate_parsed, json_object
from ..prompts import LABEL_PROMPTS, PROMPT_VERSION, label_messages, label_schema
from ..report.tally import SampleLabel, rounded_confidence, rounded_probabilities
from ..taxonomy import Taxonomy
from .base import LabelRun, LabelSettings, sample_text
from .measured import CHOOSE_TEST_RUN_05B
from .measured import on_test as measured_on_test

TEMPLATE_OVERHEAD_TOKENS = 48


class LLMLabeler:
    """Labels samples against one taxonomy with one engine: the LLM writes every label."""

    name = "llm"
    measured = (measured_on_test({
        "arena-hard": 0.813, "arena-hard-names": 0.56, "selfinstruct-domains": 0.453, "infobench": 0.452,
        "justeval-tasks": 0.742, "justeval-topics": 0.627, "justeval-topics-names": 0.533,
        "arena-hard-described": 0.827, "justeval-topics-described": 0.64,
    }, model="qwen2.5-coder-1.5b"), measured_on_test({
        "arena-hard": 0.773, "arena-hard-names": 0.62, "selfinstruct-domains": 0.353, "infobench": 0.333,
        "justeval-tasks": 0.43, "justeval-topics": 0.507, "justeval-topics-names": 0.533,
    }, model="qwen2.5-coder-0.5b", run=CHOOSE_TEST_RUN_05B))  # bench/choose.py, test split (the report's intervals use the lowest)
    writes_labels = True
    needs_engine = True
    reads_llm = True

    @classmethod
    def cache_identity(cls, llm_identity: str) -> str:
        return llm_identity

    @classmethod
    def open(cls, taxonomy: Taxonomy, settings: LabelSettings, handle) -> LLMLabeler:
        return cls(handle.get(), taxonomy, settings)

    def __init__(self, engine: Engine, taxonomy: Taxonomy, settings: LabelSettings | None = None, top_logprobs: int = 1,
                 prompt: str = PROMPT_VERSION):
        """`top_logprobs`: how many of the most likely allowed tokens to get back at each position
        (1: the chosen token's only, enough for the confidence; more for `choice_distribution`).
        `prompt`: the system prompt's name in `prompts.LABEL_PROMPTS` (the bench's variants)."""
        self.engine, self.taxonomy, self.top_logprobs, self.prompt = engine, taxonomy, top_logprobs, prompt
        self.settings = settings or LabelSettings()
        self.schema = label_schema(taxonomy)
        self.sample_budget = sample_budget(taxonomy, self.settings, engine, engine.max_model_len, prompt)

    def request(self, sample: Sample) -> tuple[GenRequest, bool]:
        """The request for one sample, truncated to the token budget; True when truncated."""
        text, cut_chars = sample_text(sample)
        cut = self.engine.truncate(text, self.sample_budget)
        messages = label_messages(self.taxonomy, cut, self.prompt)
        return GenRequest(messages, self.schema, self.settings.max_tokens, logprobs=self.top_logprobs), cut_chars or cut != text

    def parse(self, index: int, result: GenResult) -> SampleLabel | None:
        """A SampleLabel from the model's JSON, or None when it is unusable."""
        data = json_object(result)
        if data is None:
            return None
        names = [data.get("primary", "")] + list(data.get("also") or [])
        canonical = [self.taxonomy.canonical(n) for n in names if isinstance(n, str)]
        if not canonical or canonical[0] is None or None in canonical:
            return None
        difficulty = data.get("difficulty")
        if difficulty not in ("easy", "medium", "hard"):
            return None
        confidence = value_probability(result, "primary", data["primary"])
        dist = choice_distribution(result, "primary", self.taxonomy.names) if self.top_logprobs > 1 else None
        return SampleLabel(index, tuple(dict.fromkeys(canonical)), difficulty,
                           None if confidence is None else rounded_confidence(confidence),
                           None if dist is None else rounded_probabilities(dist[n] for n in self.taxonomy.names))

    def label_batch(self, samples: list[Sample], run: LabelRun) -> list[SampleLabel]:
        """Label a batch; each failed or cut-off answer is retried once, then recorded as failed."""
        built = [self.request(s) for s in samples]
        run.truncated.update(s.index for s, (_, cut) in zip(samples, built) if cut)
        outcomes = generate_parsed(self.engine, [r for r, _ in built], lambda i, res: self.parse(samples[i].index, res))
        run.requests += len(samples)
        return [label for s, o in zip(samples, outcomes) if (label := record(run, s.index, o)) is not None]

    def info(self) -> dict:
        return {"labeler": self.name, "engine": self.engine.name, "model": self.engine.model_name}


def leaves_room(engine: Engine, messages: list[dict], answer_tokens: int) -> bool:
    """Whether the chat `messages` and an answer of `answer_tokens` fit the engine's context (the chat
    template's own tokens counted as TEMPLATE_OVERHEAD_TOKENS)."""
    asked = sum(engine.count_tokens(m["content"]) for m in messages)
    return asked + TEMPLATE_OVERHEAD_TOKENS + answer_tokens <= engine.max_model_len


def sample_budget(taxonomy: Taxonomy, settings: LabelSettings, tokens, max_model_len: int,
                  prompt: str = PROMPT_VERSION) -> int:
    """Tokens of a sample the label request holds: `settings.max_sample_tokens`, or what the model's
    context leaves after the taxonomy's prompt and the answer; GenerationError where that is no room.
    `tokens` counts them: the engine, or the model's tokenizer alone (`check_fits_before_engine`)."""
    overhead = tokens.count_tokens(LABEL_PROMPTS[prompt](taxonomy)) + TEMPLATE_OVERHEAD_TOKENS
    room = max_model_len - overhead - settings.max_tokens
    if room < 16:
        raise GenerationError(
            f"the taxonomy's prompt ({overhead} tokens) leaves no room for samples in the model's "
            f"{max_model_len}-token context; shorten descriptions and examples"
        )
    return min(settings.max_sample_tokens, room)


class _ByteBound:
    """A token count no smaller than a byte-level or byte-fallback tokenizer's (the models' of
    models.yaml): a text's UTF-8 bytes, plus one for a leading marker."""

    @staticmethod
    def count_tokens(text: str) -> int:
        return len(text.encode("utf-8")) + 1


def check_fits_before_engine(taxonomy: Taxonomy, settings: LabelSettings, handle) -> None:
    """`sample_budget`'s check, made before the engine starts with the model's tokenizer alone, so that
    a taxonomy too long for the model's context is refused in seconds, not after vLLM's start (half a
    minute to minutes on a CPU). Made where it costs a tokenizer load only: an engine of models.yaml's
    weights (LOCAL_ENGINES) not opened yet, the weights ready (a packaged model not converted yet is
    checked once its engine is open, as before), and the prompt's bytes not already known to fit (the
    usual case: then no tokenizer is loaded, ~5 s for the 1.5B's). A tokenizer that does not load here
    is left to the engine to report."""
    import importlib.util

    from ..engines import LOCAL_ENGINES, ModelTokenizer
    from ..registry import load_registry, resolve_weights, weights_here

    if handle.loaded or not handle.own or handle.name not in LOCAL_ENGINES:
        return
    spec = load_registry().get(handle.model_name)
    try:
        sample_budget(taxonomy, settings, _ByteBound(), spec.vllm.max_model_len)
        return  # fits however the model's tokenizer splits it
    except GenerationError:
        pass
    if importlib.util.find_spec("transformers") is None or weights_here(spec) != "ready":
        return
    try:
        tokens = ModelTokenizer(resolve_weights(spec), spec.trust_remote_code)
    except Exception:  # a check ahead of the engine, never a failure of its own
        return
    sample_budget(taxonomy, settings, tokens, spec.vllm.max_model_len)


def value_start(result: GenResult, key: str) -> int | None:
    """Where in the answer's text the string value of `key` begins; None when the answer has no such
    value or no token logprobs that spell the text (a stop token may follow it)."""
    tokens = result.extra.get("tokens")
    if not tokens or not "".join(t for t, _ in tokens).startswith(result.text):
        return None
    match = re.search(rf'"{re.escape(key)}"\s*:\s*"', result.text)
    return None if match is None else match.end()


def value_probability(result: GenResult, key: str, value: str) -> float | None:
    """The model's probability of having written `value` for `key`: exp of the summed logprobs of the
    generated tokens that overlap the value's characters and its closing quote. The grammar forces
    the JSON around it, so this is the choice among the enum's values. None without token logprobs."""
    start, spelled = value_start(result, key), json_spelling(value)
    if start is None or not result.text.startswith(spelled, start):
        return None
    end = start + len(spelled) + 1  # the value as the answer spells it, and its closing quote
    total, at = 0.0, 0
    for text, logprob in result.extra["tokens"]:
        if at < end and at + len(text) > start:
            total += logprob
        at += len(text)
    return math.exp(total)


def json_spelling(value: str) -> str:
    """How a JSON answer spells a string value between its quotes (`"` and `\\` escaped, other
    characters as they are): a category named `say "hi"` is written `say \\"hi\\"`."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _up_to_closing_quote(text: str) -> tuple[str, bool]:
    """`text` up to its first unescaped double quote, and whether there was one."""
    escaped = False
    for i, char in enumerate(text):
        if char == '"' and not escaped:
            return text[:i], True
        escaped = char == "\\" and not escaped
    return text, False


def value_span(result: GenResult, key: str) -> tuple[int, int] | None:
    """(index of the first generated token that carries the value of `key`, where in that token's text
    the value starts), or None when the answer has no such string value or no token logprobs."""
    start = value_start(result, key)
    if start is None:
        return None
    at = 0
    for i, (text, _) in enumerate(result.extra["tokens"]):
        if at + len(text) > start:
            return i, start - at
        at += len(text)
    return None


def choice_distribution(result: GenResult, key: str, names: list[str], floor: float = 1e-4) -> dict[str, float] | None:
    """The model's probability of each enum value for `key`, from the top-k tokens the grammar allowed
    where the value begins (`GenRequest.logprobs` > 1): a token that can only begin one name counts
    for it, one that begins several (a shared prefix) is split evenly among them; the name written
    gets at least the probability of the whole path it took (`value_probability`). Names outside the
    top k get `floor`; the result sums to 1. It is the distribution at the step where the answer's
    value begins, given the tokens before it (the grammar lets a tokenizer spell `":"` in more than
    one way; the other spellings' continuations are not seen). None without the top-k logprobs."""
    top = result.extra.get("top")
    span = value_span(result, key)
    if not top or span is None:
        return None
    index, offset = span
    head = result.extra["tokens"][index][0][:offset]
    mass = dict.fromkeys(names, 0.0)
    spelled = {n: json_spelling(n) for n in names}
    for piece, logprob in top[index].items():
        if not piece.startswith(head):
            continue
        rest, closed = _up_to_closing_quote(piece[len(head):])
        if not rest:
            continue  # no letter of a value yet (another way to tokenize the quote): renormalised away
        fits = [n for n in names if (spelled[n] == rest if closed else spelled[n].startswith(rest))]
        for n in fits:
            mass[n] += math.exp(logprob) / len(fits)
    data = json_object(result) or {}
    written = data.get(key)
    if written in mass:
        mass[written] = max(mass[written], value_probability(result, key, written) or 0.0)
    mass = {n: max(p, floor) for n, p in mass.items()}
    total = sum(mass.values())
    return {n: p / total for n, p in mass.items()}


def record(run: LabelRun, index: int, outcome: Outcome) -> SampleLabel | None:
    """Count one outcome into the run: its tokens, its retry, its failure; its label, if any."""
    run.output_tokens += outcome.output_tokens
    run.retried += outcome.retried
    if outcome.value is None:
        run.failed.append({"index": index, "finish_reason": outcome.result.finish_reason,
                           "first_finish_reason": outcome.first_finish_reason})
    return outcome.value
