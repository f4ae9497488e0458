"""Hand-made coverage reports for the render, compare and seeds tests."""

from __future__ import annotations

from offline_cov.report.contract import CategoryStats, CoverageReport, DifficultyDistribution, Gap, OverRepresented


def make_report(
    counts: dict[str, int],
    total: int,
    *,
    gaps: dict[str, float] | None = None,
    over: list[str] | None = None,
    balance: float = 0.5,
    examples: dict[str, str] | None = None,
) -> CoverageReport:
    """A report with the given counts; `gaps` maps category -> target share; difficulty split easy-heavy."""
    examples = examples or {}
    share = {n: round(100.0 * c / total, 2) for n, c in counts.items()}
    categories = []
    for name, count in counts.items():
        hard = count // 4
        easy = count // 2
        mix = DifficultyDistribution(easy=easy, medium=count - easy - hard, hard=hard)
        categories.append(
            CategoryStats(
                name=name,
                count=count,
                share_percent=share[name],
                difficulty_distribution=mix,
                representative_example=examples.get(name, f"an example {name} instruction"),
            )
        )
    return CoverageReport(
        categories=categories,
        total_samples_analyzed=total,
        gaps=[
            Gap(category=n, current_share=share[n], target_share=t, fill_suggestion=f"Add more {n} instructions.")
            for n, t in (gaps or {}).items()
        ],
        over_represented=[
            OverRepresented(category=n, current_share=share[n], concern=f"{n} crowds out the rest.")
            for n in over or []
        ],
        balance_score=balance,
        decision_basis="Shares counted from per-sample model labels.",
    )


def worked_example(**overrides) -> CoverageReport:
    """The contract's worked example: 100 samples, math a gap, factual_qa over-represented."""
    counts = {"factual_qa": 52, "writing": 28, "code": 12, "reasoning": 5, "math": 3}
    kwargs = {"gaps": {"math": 20.0}, "over": ["factual_qa"], "balance": 0.43}
    kwargs.update(overrides)
    return make_report(counts, 100, **kwargs)
