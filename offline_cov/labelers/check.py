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

The sample comes first in the user message and the category after it: every check of one sample
shares the tokens up to the category, and vLLM's prefix cache computes them once. So the first
category is asked for every sample of a batch first, and the others after.
"""

from __future__ import annotations

import math

from ..engines import Engine, GenRequest, GenResult
from ..prompts import CHECK_PROMPT_VERSION, check_category_text, check_messages
from ..taxonomy import Taxonomy

CONTENT_FREE = ("N/A", "[MASK]", "")
CHECK_OFFSET_STRENGTH = 1.0
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


def offset_log_odds(row: list[float | None], offsets: list[float] | None, strength: float) -> list[float] | None:
    """One sample's log-odds per category less `strength` times the offsets; None when an answer failed
    or there are no offsets. The product's check score, and what bench/choose.py scores from the views."""
    if offsets is None or any(p is None for p in row):
        return None
    return [log_odds(p) - strength * o for p, o in zip(row, offsets)]


class CategoryCheck:
    """Asks the engine, for each sample and category, whether the sample belongs to the category."""

    version = CHECK_PROMPT_VERSION

    def __init__(self, engine: Engine, taxonomy: Taxonomy, sample_budget: int,
                 offset_strength: float = CHECK_OFFSET_STRENGTH):
        self.engine, self.sample_budget, self.offset_strength = engine, sample_budget, offset_strength
        self.categories = [check_category_text(c.name, c.description, c.examples) for c in taxonomy.categories]
        self._offsets: list[float] | None = None
        self._asked = False
        self.requests = 0

    def probabilities(self, texts: list[str]) -> list[list[float | None]]:
        """P(yes) of each category (taxonomy order) for each text; None where an answer failed."""
        if not texts:
            return []
        cut = [self.engine.truncate(t, self.sample_budget) for t in texts]
        request = lambda text, category: GenRequest(check_messages(text, category), None, 1,  # noqa: E731
                                                    logprobs=CHECK_TOP_LOGPROBS)
        first = self.engine.generate([request(t, self.categories[0]) for t in cut])  # each sample's prefix, cached
        rest = self.engine.generate([request(t, c) for t in cut for c in self.categories[1:]])
        self.requests += len(first) + len(rest)
        k = len(self.categories) - 1
        return [[yes_probability(first[i])] + [yes_probability(r) for r in rest[i * k:(i + 1) * k]]
                for i in range(len(cut))]

    def offsets(self) -> list[float] | None:
        """Each category's mean log-odds on CONTENT_FREE inputs, asked once; None if any answer failed."""
        if not self._asked:
            self._asked = True
            self._offsets = content_free_offsets(self.probabilities(list(CONTENT_FREE)))
        return self._offsets

    def scores(self, texts: list[str]) -> list[list[float] | None]:
        """Each text's log-odds per category less the content-free offsets; None for a text with a
        failed answer, and for every text when the engine gives no logprobs."""
        offsets = self.offsets()
        if offsets is None:
            return [None] * len(texts)
        return [offset_log_odds(row, offsets, self.offset_strength) for row in self.probabilities(texts)]

    def info(self) -> dict:
        return {"prompt": self.version, "offset_strength": self.offset_strength, "requests": self.requests,
                "content_free_offsets": None if self._offsets is None else [round(o, 3) for o in self._offsets]}
