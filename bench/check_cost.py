"""What the yes/no check costs: the CPU default labeling the same rows with the check of each
sample's top CHECK_TOP_K categories and with the check of every category (ensemble-v6), one run.

Each variant is a fresh process with an engine of its own (so neither finds the other's samples in
vLLM's prefix cache) labeling the same test rows of a bench set with the product's EnsembleLabeler,
in batches as `analyze` sends them on a CPU. The time is the labeling alone: the engine start and
the MiniLM and SmolLM2 loads are reported apart. Accuracy is on those rows (GPT-4's tags for the
Just-Eval sets); "same labels" compares each variant with the first. Run it with nothing else running.

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.check_cost --set justeval-topics --rows 150
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from . import common
from .views import DEFAULT_DATA

MODEL = "qwen2.5-coder-1.5b"
EVERY = 99  # a top-k that asks every category
VARIANTS = {"top 4 (the product)": 4, "every category (ensemble-v6)": EVERY}


def label_rows(set_name: str, rows: int, top_k: int, data_dir: Path) -> dict:
    """Label the set's first `rows` test rows with the ensemble asking `top_k` categories per sample."""
    from offline_cov.data.readers import Sample
    from offline_cov.labelers.base import LabelRun, LabelSettings
    from offline_cov.labelers.ensemble import EnsembleLabeler

    from .views import SETS, open_engine, read_rows, split_rows, taxonomy_for

    spec = SETS[set_name]
    picked = split_rows(spec, read_rows(spec, data_dir), "test")[:rows]
    taxonomy = taxonomy_for(spec)
    started = time.perf_counter()
    engine = open_engine(MODEL)
    engine_s = time.perf_counter() - started
    settings = LabelSettings()
    labeler = EnsembleLabeler(engine, taxonomy, settings)
    labeler.check_top_k = top_k
    labeler.fused.scores(["warm up"])  # MiniLM and SmolLM2 load outside the timed part
    samples = [Sample(i, (("user", r["text"]),)) for i, r in enumerate(picked)]
    started = time.perf_counter()
    labels = []
    for at in range(0, len(samples), settings.batch_size):
        labels += labeler.label_batch(samples[at: at + settings.batch_size], LabelRun())
    label_s = time.perf_counter() - started
    engine.close()
    right = [lab.categories[0] in r["labels"] for lab, r in zip(labels, picked) if r["labels"]]
    return {"top_k": top_k, "categories": len(taxonomy.names), "rows": len(samples), "engine_start_s": round(engine_s, 1),
            "label_s": round(label_s, 1), "samples_per_s": round(len(samples) / label_s, 3),
            "check_requests": labeler.check.requests, "accuracy": round(sum(right) / max(len(right), 1), 3),
            "labels": [lab.categories[0] for lab in labels]}


def run(args) -> dict:
    out = {"kind": "check-cost", "model": MODEL, "when": common.now_iso(), "set": args.set, "variants": {}}
    for name, k in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "variant.json"
            cmd = [sys.executable, "-m", "bench.check_cost", "--set", args.set, "--rows", str(args.rows),
                   "--data-dir", str(args.data_dir), "--variant", str(k), "--variant-out", str(path)]
            common.run_child(cmd, check=True)
            out["variants"][name] = json.loads(path.read_text())
    first = next(iter(out["variants"].values()))["labels"]
    for v in out["variants"].values():
        v["same_labels"] = round(sum(a == b for a, b in zip(first, v["labels"])) / len(first), 3)
    out["machine"] = common.machine_info()
    return out


def markdown(res: dict) -> str:
    rows = [[name, v["categories"], v["rows"], v["top_k"] if v["top_k"] != EVERY else "all", v["check_requests"],
             v["engine_start_s"], v["label_s"], v["samples_per_s"], v["accuracy"], v["same_labels"]]
            for name, v in res["variants"].items()]
    return "\n".join([f"# The yes/no check's cost ({res['set']}, {MODEL})", "",
                      f"- when: {res['when']}", f"- machine: {common.machine_line(res['machine'])}", "",
                      common.md_table(["variant", "categories", "rows", "k", "check requests (incl. content-free)",
                                       "engine start s", "labeling s", "samples/s", "accuracy", "same labels"], rows)])


def main(argv: list[str] | None = None) -> None:
    common.set_bench_env()
    p = argparse.ArgumentParser(prog="python -m bench.check_cost", description=__doc__.split("\n")[0])
    p.add_argument("--set", default="justeval-topics")
    p.add_argument("--rows", type=int, default=150)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--variant", type=int, help=argparse.SUPPRESS)
    p.add_argument("--variant-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    if args.variant is not None:  # one variant, in its own process
        args.variant_out.write_text(json.dumps(label_rows(args.set, args.rows, args.variant, args.data_dir)))
        return
    common.bench_main("check-cost", p, run, markdown, argv)


if __name__ == "__main__":
    main()
