"""Where the report's gap and over-representation calls stand against each share's 95% interval.

A gap is a share under the gap threshold and under its target (contract rule 5); over-represented is a
share over the over threshold and over its target. The calls are made on one number per category; with
labels that are often wrong the true share can sit anywhere in the interval `how_sure` gives it. So a
call is **clear** when the whole interval is on its side of the line and **crossing** when the interval
crosses it, and a category the report does not call is a **possible** gap (or possible
over-representation) when its interval reaches across the line, unless the report calls it on the other
side: with a handful of samples a 0% share's interval can reach past the over line, and a category named
a gap is not also named possibly over-represented. These say where the interval lies, not
how likely a call is: bench/decisions.py measures how often each kind was right on mixtures of known
composition (bench/README.md).
"""

from __future__ import annotations

KINDS = ("clear", "crossing", "possible")


def gap_line(target: float, gap_threshold: float) -> float:
    """The share a category must be under to be a gap: the threshold, or its target when lower."""
    return min(gap_threshold, target)


def over_line(target: float, over_threshold: float) -> float:
    """The share a category must be over to be over-represented: the threshold, or its target when higher."""
    return max(over_threshold, target)


def call_kind(called: bool, low: float, high: float, line: float, below: bool) -> str | None:
    """'clear', 'crossing', 'possible' or None (neither called nor within reach) for one category and one
    kind of call; `below` says the call is for shares under `line` (a gap), else over it."""
    inside = high < line if below else low > line
    reaches = low < line if below else high > line
    if called:
        return "clear" if inside else "crossing"
    return "possible" if reaches else None


def call_decisions(shares: dict[str, float], intervals: dict[str, tuple[float, float]], targets: dict[str, float],
                   gap_threshold: float, over_threshold: float, *, gaps_by_share: bool = True,
                   called_gaps: set[str] | None = None, called_over: set[str] | None = None) -> dict:
    """Every category's gap and over-representation call sorted by its interval: {"gaps": {kind: [names]},
    "over_represented": {kind: [names]}}. `shares` are the shares the calls were made on; `called_*`, the
    report's own calls (derived from `shares` when not given). `gaps_by_share=False` (an inferred taxonomy,
    whose gaps are counted in samples) leaves the gaps out."""
    out = {"gaps": {k: [] for k in KINDS}, "over_represented": {k: [] for k in KINDS}}
    for name, share in shares.items():
        if name not in intervals:
            continue
        low, high = intervals[name]
        target = targets.get(name, 0.0)
        if gaps_by_share and target > 0:
            line = gap_line(target, gap_threshold)
            called = name in called_gaps if called_gaps is not None else share < line
            _put(out["gaps"], call_kind(called, low, high, line, below=True), name)
        line = over_line(target, over_threshold)
        called = name in called_over if called_over is not None else share > line
        _put(out["over_represented"], call_kind(called, low, high, line, below=False), name)
    return _without_contradictions(out)


def _without_contradictions(out: dict) -> dict:
    """`out` without a 'possible' call on one side for a category the report calls on the other."""
    for side, other in (("gaps", "over_represented"), ("over_represented", "gaps")):
        called = set(out[other]["clear"]) | set(out[other]["crossing"])
        out[side]["possible"] = [name for name in out[side]["possible"] if name not in called]
    return out


def _put(kinds: dict[str, list[str]], kind: str | None, name: str) -> None:
    if kind is not None:
        kinds[kind].append(name)
