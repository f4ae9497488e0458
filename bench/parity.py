"""Does `analyze` write what the bench measured? The shipped CLI labels rows of a collected views set,
and its labels file is compared with what `bench.choose` derives from the same views.

  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=4 .venv/bin/python -m bench.parity \
      --views bench/results/tmp/views/qwen2.5-coder-1.5b@cut512+label-v2/test/justeval-topics.json --rows 100

Every number in the bench's tables is computed from views (`bench.views`), not from `analyze`'s
output, so a product that wires a chosen formula differently (session 7 found its ensemble
difficulty cut without the length term) would ship something the tables never measured. The views
must be collected at the product's sample cut on this machine (512 tokens on a CPU) with the
product's default model and prompt (`label-v2`: the `@cut512+label-v2` folder); the run uses no label cache.
`analyze` runs the labeler of the views' check (`ensemble`; `ensemble-lite` for the `+check-v2` folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from . import common
from .choose import CHOSEN_DIFFICULTY, checked_labeler, difficulty_methods, predictions
from .views import DEFAULT_DATA, SETS, read_rows

HERE = Path(__file__).resolve().parent


def expected_labels(payload: dict, rows: int) -> list[dict]:
    """The ensemble's category and the chosen difficulty the bench derives for the first `rows` rows."""
    sub = {**payload, "rows": payload["rows"][:rows]}
    return [{"row": r["row"], "category": c, "difficulty": difficulty_methods(r)[CHOSEN_DIFFICULTY][1]}
            for r, (c, _) in zip(sub["rows"], predictions(sub, "ensemble"))]


def run_analyze(texts: list[str], taxonomy_file: Path, work: Path, labeler: str = "ensemble") -> tuple[list[dict], dict]:
    """The shipped CLI on `texts` (`--labeler`: the views' check labeler, what `expected_labels` scores,
    on any CPU; the default model; no cache): its labels, its metadata."""
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in texts), encoding="utf-8")
    cmd = [sys.executable, "-m", "offline_cov.cli", "analyze", str(data), "--taxonomy-file", str(taxonomy_file),
           "--labeler", labeler, "--labels", str(work / "labels.jsonl"), "--no-cache", "-o", str(work / "report.json"), "-q"]
    common.run_child(cmd, check=True)
    labels = sorted((json.loads(line) for line in (work / "labels.jsonl").read_text().splitlines()), key=lambda d: d["index"])
    return labels, json.loads((work / "report.meta.json").read_text())


def compare(expected: list[dict], labels: list[dict]) -> dict:
    pairs = list(zip(expected, labels))
    return {"rows": len(pairs),
            "category_agree": sum(e["category"] == g["categories"][0] for e, g in pairs),
            "difficulty_agree": sum(e["difficulty"] == g["difficulty"] for e, g in pairs),
            "bench_difficulty_mix": dict(Counter(e["difficulty"] for e in expected)),
            "analyze_difficulty_mix": dict(Counter(g["difficulty"] for g in labels)),
            "differs": [{"row": e["row"], "bench": [e["category"], e["difficulty"]], "analyze": [g["categories"][0], g["difficulty"]]}
                        for e, g in pairs if (e["category"], e["difficulty"]) != (g["categories"][0], g["difficulty"])]}


def run(args) -> dict:
    common.set_bench_env()
    payload = json.loads(Path(args.views).read_text())
    spec = SETS[payload["set"]]
    if spec.described or spec.exemplified:
        raise SystemExit(f"{payload['set']}: the model rewrites this taxonomy on every run; pick a set with a fixed taxonomy file")
    texts_by_row = {r["row"]: r["text"] for r in read_rows(spec, Path(args.data_dir))}
    expected = expected_labels(payload, args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as tmp:
        labels, meta = run_analyze([texts_by_row[e["row"]] for e in expected], HERE / "taxonomies" / spec.taxonomy, Path(tmp),
                                   checked_labeler(payload).name)
    return {"kind": "parity", "when": common.now_iso(), "machine": common.machine_info(), "views": args.views,
            "views_model": payload["model"], "model": meta.get("model"), "analyze_labeler": meta["labeler"]["labeler"],
            "sample_token_budget": meta.get("sample_token_budget"), **compare(expected, labels)}


def to_markdown(p: dict) -> str:
    return "\n".join([
        "# Does analyze write what the bench measured?", "",
        f"- when: {p['when']}; machine: {common.machine_line(p['machine'])}",
        f"- views: `{p['views']}` ({p['views_model']}); analyze: labeler {p['analyze_labeler']}, model {p['model']}, "
        f"sample token budget {p['sample_token_budget']}", "",
        f"- rows: {p['rows']}; same category: {p['category_agree']}; same difficulty: {p['difficulty_agree']}",
        f"- difficulty mix, bench: {p['bench_difficulty_mix']}; analyze: {p['analyze_difficulty_mix']}",
        f"- rows that differ: {p['differs'] or 'none'}",
    ])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--views", required=True, help="a views file of bench.views, at the product's sample cut")
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--out-dir", default=None)
    return common.bench_main("parity", p, run, to_markdown, argv)


if __name__ == "__main__":
    main()
