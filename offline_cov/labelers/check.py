"""The LLM's yes/no check of each category for each sample, read as log-odds: an expert of the ensemble.

The label request makes the model pick one category among all of them at once. Here it reads one
category at a time (name, description, examples) and answers whether the sample belongs to it; the
probability of "yes" among "yes" and "no" in its first token, as log-odds, is the check's score for
that category. On the bench's dev splits this third expert moved the ensemble most where the model's
one pick reads a request's task type rather than what a description covers (bench/README.md, "A
yes/no check of every category").

A small model says yes to some categories more readily than to others, whatever the sample. Each
category's log-odds on content-free inputs ("N/A", "[MASK]", an empty request; Zhao et al. 2021) are
measured once per run and CHECK_OFFSET_STRENGTH of them subtracted, so the check adds what the
sample says, not the model's lean.

Only a sample's CHECK_TOP_K likeliest categories by the other experts are asked (`top_candidates`);
the others get the lowest score among the asked ones (`offset_log_odds`), so an unasked category is
never raised above an asked one by the check. On the dev splits this kept the accuracy of asking every
category while halving the requests of an 8-category taxonomy, and it keeps the check's cost flat as
a taxonomy grows (bench/README.md, "The check asks the top 4").

The sample comes first in the user message and the category after it: every check of one sample
shares the tokens up to the category, and vLLM's prefix cache computes them once. So the first
candidate is asked for every sample of a batch first, and the others after. The prompt is one of
prompts.CHECK_PROMPTS: check-v1 (`ensemble`) has a system prompt of its own and shows the category's
description and examples; check-v2 (`ensemble-lite`) is the label request's own chat with a question
naming the category, so even the first check of a sample finds all but the question in the cache.
"""

from __future__ import annotations

import math

from ..engines import Engine, GenRequest, GenResult
from ..prompts import CHECK_PROMPT_VERSION, CHECK_PROMPTS
from ..taxonomy import Taxonomy

CONTENT_FREE = ("N/A", "[MASK]", "")
CHECK_OFFSET_STRENGTH = 1.0
CHECK_TOP_K = 4  # categories asked per sample, the likeliest by the other experts
CHECK_TOP_LOGPROBS = 20
CLIP = 1e-6  # a probability of yes is kept within [CLIP, 1 - CLIP] before its log-odds


def yes_probability(result: GenResult) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's top logprobs (any case, spaces around);
    0.5 when neither is among them; None when the answer failed or came without logprobs."""
    top = (result.extra.get("top") or [None])[0]
    if result.finish_reason not in ("stop", "length") or not top:
        return None
    yes = sum(math.exp(lp) for token, lp in top.items() if token.strip().lower() == "yes")
    no = sum(math.exp(lp) for token, lp in top.items() if token.strip().lower() == "no")
    return 0.5 if yes + no == 0 else yes / (yes + no)


def log_odds(p: float) -> float:
    p = min(max(p, CLIP), 1 - CLIP)
    return math.log(p / (1 - p))


def content_free_offsets(rows: list[list[float | None]]) -> list[float] | None:
    """Each category's mean log-odds over the content-free inputs' P(yes) rows; None if any answer failed."""
    if not rows or any(p is None for row in rows for p in row):
        return None
    return [sum(log_odds(row[j]) for row in rows) / len(rows) for j in range(len(rows[0]))]


def top_candidates(scores, k: int = CHECK_TOP_K) -> list[int]:
    """The indices of the k highest scores, highest first; a tie goes to the earlier category."""
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]


def offset_log_odds(row: dict[int, float | None], offsets: list[float] | None, strength: float) -> list[float] | None:
    """One sample's check score of every category from the P(yes) of those asked (category index ->
    P(yes)): log-odds less `strength` times the offsets; an unasked category gets the lowest asked
    score. None when an answer failed or there are no offsets. The product's check score, and what
    bench/choose.py scores from the views."""
    if offsets is None or not row or any(p is None for p in row.values()):
        return None
    asked = {j: log_odds(p) - strength * offsets[j] for j, p in row.items()}
    low = min(asked.values())
    return [asked.get(j, low) for j in range(len(offsets))]


class CategoryCheck:
    """Asks the engine, for each sample and category, whether the sample belongs to the category."""

    def __init__(self, engine: Engine, taxonomy: Taxonomy, sample_budget: int,
                 offset_strength: float = CHECK_OFFSET_STRENGTH, prompt: str = CHECK_PROMPT_VERSION):
        self.engine, self.sample_budget, self.offset_strength = engine, sample_budget, offset_strength
        self.version, self.size = prompt, len(taxonomy.names)
        self.messages = CHECK_PROMPTS[prompt](taxonomy)  # (sample text, category index) -> chat
        self._offsets: list[float] | None = None
        self._asked = False
        self.requests = 0

    def probabilities(self, texts: list[str], candidates: list[list[int]] | None = None) -> list[dict[int, float | None]]:
        """P(yes) per asked category index for each text: its `candidates` (every category when None);
        None where an answer failed."""
        if not texts:
            return []
        asked = candidates or [list(range(self.size))] * len(texts)
        cut = [self.engine.truncate(t, self.sample_budget) for t in texts]
        request = lambda i, j: GenRequest(self.messages(cut[i], j), None, 1, logprobs=CHECK_TOP_LOGPROBS)  # noqa: E731
        pairs = [(i, js[0]) for i, js in enumerate(asked)] + [(i, j) for i, js in enumerate(asked) for j in js[1:]]
        first = self.engine.generate([request(i, j) for i, j in pairs[:len(cut)]])  # each sample's prefix, cached
        rest = self.engine.generate([request(i, j) for i, j in pairs[len(cut):]]) if len(pairs) > len(cut) else []
        self.requests += len(pairs)
        out: list[dict[int, float | None]] = [{} for _ in cut]
        for (i, j), result in zip(pairs, first + rest):
            out[i][j] = yes_probability(result)
        return out

    def offsets(self) -> list[float] | None:
        """Each category's mean log-odds on CONTENT_FREE inputs, asked once; None if any answer failed."""
        if not self._asked:
            self._asked = True
            rows = self.probabilities(list(CONTENT_FREE))
            self._offsets = content_free_offsets([[row[j] for j in range(self.size)] for row in rows])
        return self._offsets

    def scores(self, texts: list[str], candidates: list[list[int]] | None = None) -> list[list[float] | None]:
        """Each text's check score of every category (`offset_log_odds`), asking its `candidates` (every
        category when None); None for a text with a failed answer, and for every text when the engine
        gives no logprobs."""
        offsets = self.offsets()
        if offsets is None:
            return [None] * len(texts)
        return [offset_log_odds(row, offsets, self.offset_strength) for row in self.probabilities(texts, candidates)]

    def info(self) -> dict:
        return {"prompt": self.version, "offset_strength": self.offset_strength, "requests": self.requests,
                "content_free_offsets": None if self._offsets is None else [round(o, 3) for o in self._offsets]}
