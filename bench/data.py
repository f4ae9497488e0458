"""Labeled rows for the bench: loading, label maps, subsamples and mixtures of known composition."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from offline_cov.data.readers import read_samples
from offline_cov.report.contract import CoverageReport
from offline_cov.report.tally import ReportInputs, SampleLabel, Thresholds, build_report
from offline_cov.taxonomy import Taxonomy


@dataclass(frozen=True)
class LabeledRow:
    """One row of a labeled file: its position there, text, true label and (maybe) difficulty."""

    row: int
    text: str
    label: str
    difficulty: str | None = None


def parse_label_map(text: str) -> dict[str, str]:
    """`old=new,other=new2` as a dict; an empty string gives {}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        old, sep, new = part.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--label-map: {part!r} is not old=new")
        mapping[old.strip()] = new.strip()
    return mapping


def load_labeled(
    path: str | Path,
    text_field: str,
    label_field: str,
    *,
    difficulty_field: str | None = None,
    label_map: dict[str, str] | None = None,
) -> list[LabeledRow]:
    """Every row with text and a label, labels renamed by `label_map`."""
    label_map = label_map or {}
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            record = json.loads(line)
            text, label = record.get(text_field), record.get(label_field)
            if not isinstance(text, str) or not text.strip() or label in (None, ""):
                continue
            label = label_map.get(str(label), str(label))
            difficulty = record.get(difficulty_field) if difficulty_field else None
            rows.append(LabeledRow(i, text, label, str(difficulty).lower() if difficulty else None))
    return rows


def keep_taxonomy(rows: list[LabeledRow], taxonomy: Taxonomy) -> tuple[list[LabeledRow], dict[str, int]]:
    """Rows whose label is a taxonomy category (respelled as the taxonomy does); counts of the others."""
    kept, dropped = [], {}
    for r in rows:
        name = taxonomy.canonical(r.label)
        if name is None:
            dropped[r.label] = dropped.get(r.label, 0) + 1
        else:
            kept.append(LabeledRow(r.row, r.text, name, r.difficulty))
    return kept, dropped


def subsample(rows: list[LabeledRow], limit: int | None, seed: int) -> list[LabeledRow]:
    """A seeded random subsample of `limit` rows, in file order (all rows when limit is None)."""
    if limit is None or limit >= len(rows):
        return list(rows)
    picked = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in picked]


def write_dataset(rows: list[LabeledRow], path: str | Path) -> Path:
    """The rows as an instruction-only JSONL dataset; sample i of offline-cov is rows[i]."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            # ASCII escapes: offline_cov's JSONL reader splits lines with str.splitlines, which also
            # breaks on U+2028/U+0085 inside strings (some Arena-Hard prompts have them).
            f.write(json.dumps({"instruction": r.text}) + "\n")
    return path


# ---------------------------------------------------------------- mixtures


def default_mixtures(names: list[str]) -> dict[str, dict[str, float]]:
    """Compositions (fractions by category) to test: uniform, skewed, one rare, one dominant."""
    k = len(names)
    mixtures = {"uniform": {n: 1 / k for n in names}}
    weights = [2.0 ** -i for i in range(k)]
    mixtures["skew-halving"] = {n: w / sum(weights) for n, w in zip(names, weights)}
    mixtures["rare-under-5"] = {n: (0.03 if i == k - 1 else 0.97 / (k - 1)) for i, n in enumerate(names)}
    mixtures["dominant-over-35"] = {n: (0.60 if i == 0 else 0.40 / (k - 1)) for i, n in enumerate(names)}
    if k >= 3:
        middle = (1 - 0.70 - 0.03) / (k - 2)
        mixtures["dominant-and-rare"] = {
            n: 0.70 if i == 0 else 0.03 if i == k - 1 else middle for i, n in enumerate(names)
        }
    return mixtures


def mixture_counts(composition: dict[str, float], n: int) -> dict[str, int]:
    """Integer counts summing to n, by largest remainder (ties: taxonomy order)."""
    exact = {name: share * n for name, share in composition.items()}
    counts = {name: int(v) for name, v in exact.items()}
    order = sorted(composition, key=lambda name: exact[name] - counts[name], reverse=True)
    for name in order[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


def feasible_size(pool: list[LabeledRow], composition: dict[str, float], n: int) -> int:
    """The largest size up to n whose counts the pool can supply without replacement."""
    available = {}
    for r in pool:
        available[r.label] = available.get(r.label, 0) + 1
    while n > 0 and any(c > available.get(name, 0) for name, c in mixture_counts(composition, n).items()):
        n -= 1
    return n


def build_mixture(pool: list[LabeledRow], composition: dict[str, float], n: int, seed: int) -> list[LabeledRow]:
    """Draw n rows with the given composition from the pool, without replacement, shuffled."""
    rng = random.Random(seed)
    by_label: dict[str, list[LabeledRow]] = {}
    for r in pool:
        by_label.setdefault(r.label, []).append(r)
    chosen = []
    for name, count in mixture_counts(composition, n).items():
        available = by_label.get(name, [])
        if count > len(available):
            raise ValueError(f"mixture needs {count} {name!r} rows but the pool has {len(available)}")
        chosen += rng.sample(available, count)
    rng.shuffle(chosen)
    return chosen


def true_report(rows: list[LabeledRow], dataset_path: str | Path, taxonomy: Taxonomy,
                thresholds: Thresholds | None = None) -> CoverageReport:
    """The report offline-cov would give if every sample got its true label (difficulty 'medium' if unknown)."""
    samples = {s.index: s for s in read_samples(dataset_path).samples}
    labels = [SampleLabel(i, (r.label,), r.difficulty or "medium") for i, r in enumerate(rows)]
    return build_report(ReportInputs(taxonomy, labels, samples, len(rows), thresholds or Thresholds()))
