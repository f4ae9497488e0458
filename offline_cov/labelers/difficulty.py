"""The shared difficulty rubric as a rule on the text: what the labelers that write no text use."""

from __future__ import annotations

import re

from .base import SAMPLE_MAX_CHARS

CONSTRAINT = re.compile(
    r"\b(must|should|ensure|at least|at most|exactly|without|only|do not|don't|make sure|require[sd]?|"
    r"constraints?|optimi[sz]e|prove|efficient|complexity|edge cases?)\b",
    re.IGNORECASE,
)
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)
# Chinese and Japanese are written without spaces: their characters (and their full-width punctuation and
# half-width kana) are counted, CJK_CHARS_PER_WORD to a word
CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
CJK_CHARS_PER_WORD = 2
LONG_TOKEN_CHARS = 40  # a longer token (minified code, a text without spaces) counts once per this many characters
EASY_MAX_WORDS = 30
HARD_MIN_WORDS = 150
HARD_MIN_MARKERS = 6


def difficulty_features(text: str) -> dict[str, int]:
    """What the rubric talks about, counted: length, constraint words, list items, code fences
    (in the first SAMPLE_MAX_CHARS characters: far past the point where a text is hard)."""
    text = text[:SAMPLE_MAX_CHARS]
    return {
        "words": word_count(text),
        "constraints": len(CONSTRAINT.findall(text)),
        "list_items": len(LIST_ITEM.findall(text)),
        "code_fences": text.count("```") // 2,
    }


def word_count(text: str) -> int:
    """The rubric's length in words: whitespace-separated tokens, one over LONG_TOKEN_CHARS characters
    counted once per LONG_TOKEN_CHARS of them, and Chinese or Japanese characters CJK_CHARS_PER_WORD
    to a word (a 150,000-character text without spaces was one word, so easy)."""
    cjk = len(CJK.findall(text))
    tokens = CJK.sub(" ", text).split()
    return sum(max(1, len(token) // LONG_TOKEN_CHARS) for token in tokens) + -(-cjk // CJK_CHARS_PER_WORD)


def counts_words_apart(text: str) -> bool:
    """Whether `word_count` differs from the spaces' count for this text (Chinese, Japanese, long tokens):
    the rubric's length for it changed in session 25, so labels cached before then are not reused."""
    text = text[:SAMPLE_MAX_CHARS]
    return word_count(text) != len(text.split())


def rubric_markers(features: dict[str, int]) -> int:
    """The rubric's count of explicit demands: constraint words, list items, code blocks (twice)."""
    return features["constraints"] + features["list_items"] + 2 * features["code_fences"]


def difficulty_from_text(text: str) -> str:
    """The shared rubric as a rule: short single asks are easy, long many-constraint ones hard."""
    f = difficulty_features(text)
    markers = rubric_markers(f)
    if f["words"] >= HARD_MIN_WORDS or markers >= HARD_MIN_MARKERS:
        return "hard"
    if f["words"] <= EASY_MAX_WORDS and markers <= 1:
        return "easy"
    return "medium"
