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
EASY_MAX_WORDS = 30
HARD_MIN_WORDS = 150
HARD_MIN_MARKERS = 6


def difficulty_features(text: str) -> dict[str, int]:
    """What the rubric talks about, counted: length, constraint words, list items, code fences
    (in the first SAMPLE_MAX_CHARS characters: far past the point where a text is hard)."""
    text = text[:SAMPLE_MAX_CHARS]
    return {
        "words": len(text.split()),
        "constraints": len(CONSTRAINT.findall(text)),
        "list_items": len(LIST_ITEM.findall(text)),
        "code_fences": text.count("```") // 2,
    }


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
