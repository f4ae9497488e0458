"""Compute the coverage report from per-sample labels. Nothing here is guessed by a model."""

from __future__ import annotations

import heapq
import math
from array import array
from dataclasses import dataclass, field

from ..data.readers import Sample
from ..errors import OfflineCovError
from ..taxonomy import Taxonomy
from .contract import (
    DIFFICULTIES,
    CategoryStats,
    CoverageReport,
    DifficultyDistribution,
    Gap,
    OverRepresented,
)
from .decisions import gap_line, over_line

SNIPPET_CHARS = 160
INFERRED_GAP_COUNT = 2  # contract rule 5: with an inferred taxonomy, a category under this many samples is a gap


@dataclass(frozen=True)
class SampleLabel:
    """The labels of one sample: its categories (primary first), difficulty, how sure the labeler
    is of the primary category (a probability in [0, 1]; None where the labeler gives none), and
    its probability of every category, in the taxonomy's order (None where it gives none; the
    calibration's correction recalibrates them on the user's labeled rows)."""

    index: int
    categories: tuple[str, ...]
    difficulty: str
    confidence: float | None = None
    probabilities: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        return {"index": self.index, "categories": list(self.categories), "difficulty": self.difficulty,
                "confidence": self.confidence,
                "probabilities": None if self.probabilities is None else list(self.probabilities)}

    @classmethod
    def from_json(cls, data: dict) -> SampleLabel:
        probabilities = data.get("probabilities")
        return cls(data["index"], tuple(data["categories"]), data["difficulty"], data.get("confidence"),
                   None if probabilities is None else tuple(probabilities))


def rounded_confidence(p: float) -> float:
    """Confidences are kept to 4 decimals, so a label reads back from any file exactly as written."""
    return round(min(max(float(p), 0.0), 1.0), 4)


def rounded_probabilities(row) -> tuple[float, ...]:
    """A probability per category kept to 6 decimals (float32 holds that exactly enough to read back
    the same), so the small ones still tell the recalibration something."""
    return tuple(round(min(max(float(p), 0.0), 1.0), 6) for p in row)


@dataclass(frozen=True)
class Thresholds:
    """Gap and over-representation thresholds, in percent of samples: 0 < gap < over <= 100."""

    gap: float = 5.0
    over: float = 35.0

    def __post_init__(self):
        if not (0 < self.gap < self.over <= 100):  # also refuses NaN and infinities
            raise OfflineCovError(
                f"gap threshold {self.gap:g} and over-representation threshold {self.over:g}: "
                "need 0 < gap < over <= 100 (percent of samples)"
            )


@dataclass
class ReportInputs:
    """What the report is computed from."""

    taxonomy: Taxonomy
    labels: list[SampleLabel]
    samples: dict[int, Sample]
    total: int
    thresholds: Thresholds = field(default_factory=Thresholds)
    basis: str = ""


OFF_TARGET_WARN = 5.0  # percent of the samples in categories targeted at 0 from which a run says so


def off_target_warning(counts: dict[str, int], total: int, targets: dict[str, float]) -> str | None:
    """A warning when the balance score cannot see part of the mix: the contract leaves categories with
    target 0 out of it, so samples in them (OFF_TARGET_WARN% or more) do not lower it, and with a single
    category above 0 it is 1 whatever the mix."""
    zero = [n for n, t in targets.items() if t <= 0 and counts.get(n, 0)]
    share = 100 * sum(counts[n] for n in zero) / total if total else 0.0
    if share < OFF_TARGET_WARN:
        return None
    single = sum(t > 0 for t in targets.values()) == 1
    why = "with one category targeted above 0 it is 1 whatever the mix" if single else "they do not lower it"
    return (f"{min(share, 100):.1f}% of the samples are labeled with categories whose target is 0 ({', '.join(zero)}); "
            f"the balance score leaves those categories out (the contract's rule 6), so {why}")


def balance_score(counts: dict[str, int], targets: dict[str, float]) -> float:
    """The contract's balance score: 1 when the mix matches the targets, 0 when all in the smallest.

    With q the counts normalised to sum 1 and t the targets (fractions),
    D = 1 / sum(q_i^2 / t_i) and score = (D - min t) / (1 - min t).
    Categories with target 0 are left out.
    """
    names = [n for n, t in targets.items() if t > 0]
    total_t = sum(targets[n] for n in names)
    total_c = sum(counts.get(n, 0) for n in names)
    if not names or total_c == 0:
        return 0.0
    t = {n: targets[n] / total_t for n in names}
    if len(names) == 1:
        return 1.0
    concentration = sum((counts.get(n, 0) / total_c) ** 2 / t[n] for n in names)
    t_min = min(t.values())
    score = (1.0 / concentration - t_min) / (1.0 - t_min)
    return round(min(1.0, max(0.0, score)), 4)


def wilson_interval(count: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share, in percent (95% with the default z)."""
    if total == 0:
        return (0.0, 100.0)
    p = count / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (round(100 * max(0.0, centre - half), 2), round(100 * min(1.0, centre + half), 2))


class LabelStore:
    """Per-sample labels kept compactly, about 17 bytes a sample (and 4 a category where the labeler
    gives probabilities) and no text, in the order added.

    Iterating yields `SampleLabel`s; a streamed run of millions of samples holds only this."""

    def __init__(self, labels=()):
        self._index, self._combo, self._difficulty = array("q"), array("I"), array("B")
        self._confidence = array("f")  # NaN: none given
        self._probabilities = array("f")  # `_width` per sample, every one of the first label's length; NaN: none
        self._width: int | None = None
        self._combos: dict[tuple[str, ...], int] = {}
        self._by_id: list[tuple[str, ...]] = []
        for label in labels:
            self.append(label)

    def append(self, label: SampleLabel) -> None:
        combo = self._combos.get(label.categories)
        if combo is None:
            combo = self._combos[label.categories] = len(self._by_id)
            self._by_id.append(label.categories)
        self._index.append(label.index)
        self._combo.append(combo)
        self._difficulty.append(DIFFICULTIES.index(label.difficulty))
        self._confidence.append(math.nan if label.confidence is None else label.confidence)
        if self._width is None:
            self._width = len(label.probabilities) if label.probabilities else 0
        given = label.probabilities if label.probabilities and len(label.probabilities) == self._width else None
        self._probabilities.extend(given or [math.nan] * self._width)

    def probability_rows(self):
        """Every sample's probabilities as an (n, categories) array, None unless every sample has them."""
        import numpy as np

        if not self._width:
            return None
        rows = np.frombuffer(self._probabilities, dtype=np.float32).reshape(-1, self._width).astype(float)
        return None if np.isnan(rows).any() else rows

    def _probabilities_of(self, i: int) -> tuple[float, ...] | None:
        if not self._width:
            return None
        row = self._probabilities[i * self._width:(i + 1) * self._width]
        return None if math.isnan(row[0]) else tuple(round(v, 6) for v in row)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other) -> bool:
        return isinstance(other, (LabelStore, list)) and list(self) == list(other)

    def __getitem__(self, i: int) -> SampleLabel:
        return SampleLabel(self._index[i], self._by_id[self._combo[i]], DIFFICULTIES[self._difficulty[i]],
                           _confidence_back(self._confidence[i]), self._probabilities_of(i))

    def __iter__(self):
        for i in range(len(self._index)):
            yield self[i]


EXAMPLES_PER_END = 10


def _keep(heap: list, item: tuple) -> None:
    """Keep the EXAMPLES_PER_END largest items in a min-heap."""
    if len(heap) < EXAMPLES_PER_END:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def _confidence_back(stored: float) -> float | None:
    """A float32-stored confidence as the 4-decimal value it was."""
    return None if math.isnan(stored) else round(stored, 4)


class Tally:
    """The report's counts, difficulty mixes and representative candidates, updated one label at a time.

    Memory grows by 12 bytes a labeled sample (instruction length and index, for the median rule
    of representative examples where no confidence is known); no text is kept. Per category it also
    keeps the `EXAMPLES_PER_END` most and least confident primary samples."""

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.stats = {name: _empty_stats() for name in taxonomy.names}
        self._primary = {name: (array("I"), array("q")) for name in taxonomy.names}
        self._secondary = {name: (array("I"), array("q")) for name in taxonomy.names}
        self._sure: dict[str, list] = {name: [] for name in taxonomy.names}  # min-heaps of (confidence, -index)
        self._unsure: dict[str, list] = {name: [] for name in taxonomy.names}  # min-heaps of (-confidence, -index)

    def add(self, label: SampleLabel, instruction_chars: int | None) -> None:
        """Count one label; `instruction_chars` None: the sample cannot be a representative."""
        for position, name in enumerate(label.categories):
            self.stats[name]["count"] += 1
            self.stats[name]["difficulty"][label.difficulty] += 1
            if instruction_chars is not None:
                lengths, indices = (self._primary if position == 0 else self._secondary)[name]
                lengths.append(instruction_chars)
                indices.append(label.index)
        if instruction_chars is not None and label.confidence is not None:
            primary = label.categories[0]
            _keep(self._sure[primary], (label.confidence, -label.index))
            _keep(self._unsure[primary], (-label.confidence, -label.index))

    def representatives(self) -> dict[str, int]:
        """Per category, the primary sample the labeler is most sure of (ties: lowest index); where no
        confidence is known, the sample whose instruction length is closest to the median of the
        category's primary samples (ties: lowest index); secondary samples where it has no primary."""
        chosen = {}
        for name in self.taxonomy.names:
            if self._sure[name]:
                chosen[name] = -max(self._sure[name])[1]
                continue
            lengths, indices = self._primary[name] if self._primary[name][0] else self._secondary[name]
            if lengths:
                median = sorted(lengths)[len(lengths) // 2]
                chosen[name] = min(zip(lengths, indices), key=lambda li: (abs(li[0] - median), li[1]))[1]
        return chosen

    def examples(self) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """Per category, its most and least confident primary samples as (index, confidence), most
        confident first and least confident first (ties: lowest index)."""
        out = {}
        for name in self.taxonomy.names:
            sure = [(-i, c) for c, i in sorted(self._sure[name], reverse=True)]
            unsure = [(-i, -c) for c, i in sorted(self._unsure[name], reverse=True)]
            if sure:
                out[name] = {"most": sure, "least": unsure}
        return out

    def report(self, total: int, thresholds: Thresholds, examples: dict[str, str], basis: str = "",
               decided: dict[str, float] | None = None) -> CoverageReport:
        """The coverage report; `examples` maps a category to the instruction of its `representatives()` sample.

        `decided` (percent per category, e.g. calibration-corrected shares) replaces the raw shares
        where gaps and over-representation are decided; counts and shares stay the labels' own."""
        categories = [
            CategoryStats(
                name=name,
                count=s["count"],
                share_percent=_share(s["count"], total),
                difficulty_distribution=DifficultyDistribution(**s["difficulty"]),
                representative_example=snippet(examples[name]) if name in examples else "",
            )
            for name, s in self.stats.items()
        ]
        counts, targets, tax = {c.name: c.count for c in categories}, self.taxonomy.targets(), self.taxonomy
        deciding = categories if decided is None else [
            c.model_copy(update={"share_percent": decided[c.name], "count": round(decided[c.name] * total / 100)})
            for c in categories
        ]
        return CoverageReport(
            categories=categories,
            total_samples_analyzed=total,
            gaps=find_gaps(deciding, targets, thresholds, total, inferred=tax.inferred, taxonomy=tax),
            over_represented=find_over(deciding, targets, thresholds),
            balance_score=balance_score(counts, targets),
            decision_basis=basis or default_basis(total, thresholds, corrected=decided is not None),
        )

    def primary_counts(self) -> dict[str, int]:
        """Samples whose primary (first) category is each name: what the share correction works on."""
        return {name: len(self._primary[name][1]) for name in self.taxonomy.names}


def build_report(inputs: ReportInputs) -> CoverageReport:
    """Counts, shares, difficulty mixes, gaps, over-representation and balance from the labels."""
    tally = Tally(inputs.taxonomy)
    for label in inputs.labels:
        sample = inputs.samples.get(label.index)
        tally.add(label, len(sample.instruction) if sample is not None else None)
    examples = {name: inputs.samples[i].instruction for name, i in tally.representatives().items()}
    return tally.report(inputs.total, inputs.thresholds, examples, inputs.basis)


def _empty_stats() -> dict:
    return {"count": 0, "difficulty": {d: 0 for d in DIFFICULTIES}}


def _share(count: int, total: int) -> float:
    return round(100.0 * count / total, 2) if total else 0.0


def find_gaps(categories, targets, thresholds: Thresholds, total: int, *, inferred: bool, taxonomy=None) -> list[Gap]:
    """Categories under the gap threshold (inferred taxonomy: fewer than 2 samples) and under their target."""
    gaps = []
    for cat in categories:
        target = round(targets[cat.name], 2)
        is_gap = cat.count < INFERRED_GAP_COUNT if inferred else cat.share_percent < gap_line(target, thresholds.gap)
        if is_gap and target > 0:
            desc = taxonomy.categories[taxonomy.names.index(cat.name)].description if taxonomy else ""
            gaps.append(
                Gap(
                    category=cat.name,
                    current_share=cat.share_percent,
                    target_share=target,
                    fill_suggestion=fill_suggestion(cat.name, cat.count, total, target, desc,
                                                    minimum=INFERRED_GAP_COUNT if inferred else 0),
                )
            )
    return gaps


def samples_to_target(count: int, total: int, target_percent: float) -> int:
    """How many new samples of a category lift it from count/total to the target share."""
    t = target_percent / 100.0
    if t >= 1.0:
        return 0
    return max(0, math.ceil((t * total - count) / (1.0 - t)))


def fill_suggestion(name: str, count: int, total: int, target: float, description: str = "", minimum: int = 0) -> str:
    """A short, computed suggestion of how much of a category to add: to reach its target share, or,
    for an inferred category at its share but under `minimum` samples, to reach that count."""
    needed = samples_to_target(count, total, target)
    about = f" ({brief(description)})" if description else ""
    if total == 0:
        return f"Add {name} instructions{about} across easy, medium and hard: no samples were analyzed to count from."
    if target >= 100 and count < total:
        return (f"Add {name} instructions{about} and leave out the others: a target of {target:g}% is reached only "
                f"when every sample is {name}.")
    if needed == 0 and count < minimum:
        more = minimum - count
        return (f"Add at least {more} more {name} instruction{'s' * (more != 1)}{about}: it holds {count}, under the "
                f"{minimum} samples an inferred category needs.")
    return (f"Add about {needed} {name} instruction{'s' * (needed != 1)}{about} across easy, medium and hard to "
            f"reach {target:g}%.")


def brief(text: str, limit: int = 60) -> str:
    """`text` in at most `limit` characters: cut at a word boundary with an ellipsis, and a parenthesis
    the cut would leave open dropped with what follows it."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = cut[: cut.rfind(" ")] if " " in cut else cut
    if cut.count("(") > cut.count(")"):
        cut = cut[: cut.rfind("(")]
    return cut.rstrip(" ,;:-(") + "\u2026"


def find_over(categories, targets, thresholds: Thresholds) -> list[OverRepresented]:
    """Categories above the over-representation threshold and above their target."""
    over = []
    for cat in categories:
        target = round(targets[cat.name], 2)
        if cat.share_percent > over_line(target, thresholds.over):
            concern = (
                f"{cat.name} holds {cat.share_percent:g}% of samples (target {target:g}%, ceiling "
                f"{thresholds.over:g}%): it may dominate fine-tuning and crowd out other skills."
            )
            over.append(OverRepresented(category=cat.name, current_share=cat.share_percent, concern=concern))
    return over


def default_basis(total: int, thresholds: Thresholds, corrected: bool = False) -> str:
    """The report's decision_basis: one templated sentence, no reasoning trace."""
    decided = " on calibration-corrected shares" if corrected else ""
    return (
        f"Shares counted from per-sample model labels of {total} samples; gaps under "
        f"{thresholds.gap:g}%, over-representation above {thresholds.over:g}%{decided}."
    )


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """One line of at most `limit` characters (whitespace runs collapsed). Only as much of the text is
    read as that needs, so a huge sample costs no more than a short one."""
    n = 4 * limit
    while True:
        flat = " ".join(text[:n].split())
        if len(flat) > limit or n >= len(text):
            break
        n *= 4
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
