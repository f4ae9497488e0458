"""The report contract (shared/report-contract.md) as pydantic models, and its rule checks."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

DIFFICULTIES = ("easy", "medium", "hard")
MAX_BASIS_WORDS = 30


class DifficultyDistribution(BaseModel):
    """How many samples of a category are easy, medium and hard."""

    model_config = ConfigDict(extra="forbid")
    easy: int = Field(0, ge=0)
    medium: int = Field(0, ge=0)
    hard: int = Field(0, ge=0)

    def total(self) -> int:
        return self.easy + self.medium + self.hard


class CategoryStats(BaseModel):
    """One category's line in the report."""

    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = Field(ge=0)
    share_percent: float = Field(ge=0)
    difficulty_distribution: DifficultyDistribution
    representative_example: str


class Gap(BaseModel):
    """A category under the gap threshold."""

    model_config = ConfigDict(extra="forbid")
    category: str
    current_share: float
    target_share: float
    fill_suggestion: str


class OverRepresented(BaseModel):
    """A category over the over-representation threshold."""

    model_config = ConfigDict(extra="forbid")
    category: str
    current_share: float
    concern: str


class CoverageReport(BaseModel):
    """report.json: exactly the contract's top-level keys, nothing else."""

    model_config = ConfigDict(extra="forbid")
    categories: list[CategoryStats]
    total_samples_analyzed: int = Field(ge=0)
    gaps: list[Gap]
    over_represented: list[OverRepresented]
    balance_score: float = Field(ge=0, le=1)
    decision_basis: str

    def counts(self) -> dict[str, int]:
        """Each category's count, by name (what a run's metadata keeps as `category_counts`)."""
        return {c.name: c.count for c in self.categories}


def contract_violations(
    report: CoverageReport,
    taxonomy_names: list[str] | None = None,
    *,
    gap_threshold: float = 5.0,
    over_threshold: float = 35.0,
    inferred: bool = False,
    decided_shares: dict[str, float] | None = None,
) -> list[str]:
    """List every way `report` breaks the contract's rules; empty when it keeps them all.
    `decided_shares`: the (calibration-corrected) shares its gaps and over-representation were decided on."""
    problems: list[str] = []
    total = report.total_samples_analyzed
    names = [c.name for c in report.categories]
    if len(set(names)) != len(names):
        problems.append(f"duplicate category names: {names}")
    for cat in report.categories:
        problems += _category_violations(cat, total)
    if taxonomy_names is not None and sorted(names) != sorted(taxonomy_names):
        problems.append(f"categories {sorted(names)} differ from the taxonomy {sorted(taxonomy_names)}")
    if inferred and not 5 <= len(names) <= 10:
        problems.append(f"{len(names)} inferred categories, the contract wants 5-10")
    problems += _threshold_violations(report, gap_threshold, over_threshold, inferred, decided_shares)
    words = len(report.decision_basis.split())
    if words > MAX_BASIS_WORDS:
        problems.append(f"decision_basis has {words} words, at most {MAX_BASIS_WORDS} allowed")
    return problems


def _category_violations(cat: CategoryStats, total: int) -> list[str]:
    problems = []
    if cat.count > total:
        problems.append(f"{cat.name}: count {cat.count} exceeds total {total}")
    expected = 100.0 * cat.count / total if total else 0.0
    if not math.isclose(cat.share_percent, expected, abs_tol=0.01):
        problems.append(f"{cat.name}: share_percent {cat.share_percent} should be {expected:.2f}")
    if cat.difficulty_distribution.total() != cat.count:
        problems.append(
            f"{cat.name}: difficulty counts add to {cat.difficulty_distribution.total()}, not count {cat.count}"
        )
    return problems


def _threshold_violations(report, gap_threshold, over_threshold, inferred, decided_shares=None) -> list[str]:
    problems = []
    shares = {c.name: c for c in report.categories}
    if decided_shares is not None:  # gaps and over-representation were decided on these (corrected) shares
        shares = {n: c.model_copy(update={"share_percent": decided_shares[n]}) for n, c in shares.items()}
    for gap in report.gaps:
        cat = shares.get(gap.category)
        if cat is None:
            problems.append(f"gap names unknown category {gap.category!r}")
        elif not inferred and cat.share_percent >= gap_threshold:
            problems.append(f"gap {gap.category} has share {cat.share_percent} >= {gap_threshold}")
        elif inferred and cat.count >= 2:
            problems.append(f"gap {gap.category} has {cat.count} samples; inferred gaps need fewer than 2")
    for over in report.over_represented:
        cat = shares.get(over.category)
        if cat is None:
            problems.append(f"over_represented names unknown category {over.category!r}")
        elif cat.share_percent <= over_threshold:
            problems.append(f"over_represented {over.category} has share {cat.share_percent} <= {over_threshold}")
    return problems
