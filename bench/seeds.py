"""Seed tasks for gaps (`offline-cov seeds`): what the prompt's example of the gap's category does.

Until session 22 the seeds prompt showed the model "an instruction already in this category": the
report's representative example of the gap. A gap holds few samples, so that example is either one of
the category's rare real samples or, when the data lacks the category, a sample of another category
the labeler put there. Each category of each set in turn is a gap, with three prompts (the bench hands
`generate_seeds` the examples; the product now shows none):

- `none`: no example;
- `own`: a dev row of the category (the category is rare but present);
- `other`: a dev row of another category (the category is absent: its example is a mislabel).

Every seed the product keeps (schema-valid, not a copy of the prompt, not a duplicate) is then
labeled by the CPU default (`ensemble`, with the set's taxonomy); a seed "on target" is one it labels
as the gap's category. Reported per arm: seeds kept of those asked, on target of those kept, and
on target of those asked. The labeler is right on 0.70-0.84 of these sets' real rows, and its errors
are the same for every arm, so read the arms side by side, not as absolute rates.

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.seeds --sets arena-hard,justeval-topics --split dev
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from . import common
from .views import DEFAULT_DATA, SETS, read_rows, split_rows, taxonomy_for

ARMS = ("none", "own", "other")


def examples_for(rows: list[dict], names: list[str], seed: int) -> dict[str, dict[str, str]]:
    """{arm: {category: example}} from single-label rows: `own` a row of the category, `other` a row
    of another category, `none` empty; drawn with a seeded generator."""
    from offline_cov.report.tally import snippet

    rng = random.Random(seed)
    by_label = {n: [r["text"] for r in rows if r["labels"] == [n]] for n in names}
    arms = {"none": {n: "" for n in names}, "own": {}, "other": {}}
    for name in names:
        arms["own"][name] = snippet(rng.choice(by_label[name])) if by_label[name] else ""
        others = [t for n in names if n != name for t in by_label[n]]
        arms["other"][name] = snippet(rng.choice(others))
    return arms


def gaps_report(names: list[str]):
    """A report in which every category is a gap."""
    from offline_cov.report.contract import CategoryStats, CoverageReport, DifficultyDistribution, Gap

    cats = [CategoryStats(name=n, count=0, share_percent=0.0, difficulty_distribution=DifficultyDistribution(),
                          representative_example="") for n in names]
    gaps = [Gap(category=n, current_share=0.0, target_share=100 / len(names), fill_suggestion="") for n in names]
    return CoverageReport(categories=cats, total_samples_analyzed=0, gaps=gaps, over_represented=[],
                          balance_score=0.0, decision_basis="bench.seeds")


def write_seeds(engine, taxonomy, arms: dict, per_gap: int) -> dict[str, list[dict]]:
    """{arm: the seed tasks the product keeps} for every category of `taxonomy` as a gap."""
    from offline_cov.seeds import generate_seeds

    descriptions = {c.name: c.description for c in taxonomy.categories if c.description}
    report = gaps_report(taxonomy.names)
    return {arm: generate_seeds(engine, report, per_gap, descriptions, examples=arms[arm]).tasks for arm in ARMS}


def judge(tasks: dict[str, list[dict]], taxonomy) -> dict[str, list[str]]:
    """{arm: the CPU default's label of each seed (instruction and input, in the Alpaca shape)}."""
    from offline_cov.io import write_jsonl
    from offline_cov.pipeline import AnalyzeOptions, analyze

    flat = [(arm, t) for arm in ARMS for t in tasks[arm]]
    if not flat:
        return {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seeds.jsonl"
        write_jsonl(path, [{"instruction": t["instruction"], "input": t["instances"][0]["input"],
                            "output": t["instances"][0]["output"]} for _, t in flat])
        result = analyze(path, AnalyzeOptions(taxonomy=taxonomy, labeler="ensemble", use_cache=False))
    labels = {lab.index: lab.categories[0] for lab in result.labels}
    out = {arm: [] for arm in ARMS}
    for i, (arm, _) in enumerate(flat):
        out[arm].append(labels.get(i, ""))
    return out


def run(args) -> dict:
    from offline_cov.engines import open_engine

    common.set_bench_env()
    sets = [SETS[s] for s in args.sets.split(",")]
    prepared = []
    for spec in sets:
        taxonomy = taxonomy_for(spec)
        rows = [r for r in split_rows(spec, read_rows(spec, Path(args.data_dir)), args.split) if len(r["labels"]) == 1]
        prepared.append((spec, taxonomy, examples_for(rows, taxonomy.names, args.seed)))
    engine = open_engine("vllm", args.model)
    try:
        written = [write_seeds(engine, taxonomy, arms, args.per_gap) for _, taxonomy, arms in prepared]
    finally:
        engine.close()
    results = []
    for (spec, taxonomy, _), tasks in zip(prepared, written):
        labels = judge(tasks, taxonomy)
        for arm in ARMS:
            asked = args.per_gap * len(taxonomy.names)
            kept = tasks[arm]
            on = sum(lab == t["gap"] for lab, t in zip(labels[arm], kept))
            results.append({"set": spec.name, "arm": arm, "asked": asked, "kept": len(kept), "on_target": on,
                            "seeds": [dict(t, judged=lab) for lab, t in zip(labels[arm], kept)]})
    return {"kind": "seeds", "model": args.model or "default", "split": args.split, "per_gap": args.per_gap,
            "seed": args.seed, "machine": common.machine_info(), "when": common.now_iso(), "results": results}


def to_markdown(payload: dict) -> str:
    rows, totals = [], {arm: [0, 0, 0] for arm in ARMS}
    for r in payload["results"]:
        rows.append([r["set"], r["arm"], r["asked"], f"{r['kept']} ({r['kept'] / r['asked']:.2f})",
                     f"{r['on_target']} ({r['on_target'] / max(r['kept'], 1):.2f})", f"{r['on_target'] / r['asked']:.2f}"])
        totals[r["arm"]] = [a + b for a, b in zip(totals[r["arm"]], (r["asked"], r["kept"], r["on_target"]))]
    for arm, (asked, kept, on) in totals.items():
        rows.append(["all", arm, asked, f"{kept} ({kept / max(asked, 1):.2f})", f"{on} ({on / max(kept, 1):.2f})",
                     f"{on / max(asked, 1):.2f}"])
    head = ["set", "example shown", "seeds asked", "kept (of asked)", "on target (of kept)", "on target of asked"]
    return "\n".join([
        "# offline-cov seeds bench", "",
        f"- when: {payload['when']}", f"- machine: {common.machine_line(payload['machine'])}",
        f"- split: `{payload['split']}` rows give the examples; {payload['per_gap']} seeds a gap; seed {payload['seed']}",
        "- on target: the CPU default (`ensemble`) labels the seed as the gap's category", "",
        common.md_table(head, rows),
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="arena-hard,justeval-topics")
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--per-gap", type=int, default=3)
    parser.add_argument("--model", default=None, help="A models.yaml name (default: the one this machine can run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--out-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("seeds", build_parser(), run, to_markdown, argv)


if __name__ == "__main__":
    main()
