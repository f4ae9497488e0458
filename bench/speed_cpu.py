"""vLLM-CPU settings side by side: samples/s and labels of the CPU default's model, one run.

Each row is a fresh process (vLLM reads these settings when its engine process starts), labeling
the same dev rows (bench/views.py's dev split of arena-hard and justeval-tasks, short and long
prompts) with the product's label request. Accuracy is on those rows; "same labels" is the share
of rows whose label equals the first row's (vLLM's defaults): how much the setting alone moves labels.

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.speed_cpu --rows 48
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import common

HERE = Path(__file__).resolve().parent
MODEL = "qwen2.5-coder-1.5b"
# name -> (environment, labeler options); every row but the first has the tool's CPU tuning on.
ROWS = {
    "vllm defaults": ({"OFFLINE_COV_CPU_TUNING": "0"}, {}),
    "no reserved core only": ({"OFFLINE_COV_CPU_TUNING": "0", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}, {}),
    "tool default (no reserved core, iomp + tcmalloc)": ({}, {}),
    "tool default, repeated": ({}, {}),
    "+ batch 16": ({}, {"batch_size": 16}),
    "+ samples cut at 512 tokens": ({}, {"max_sample_tokens": 512}),
    "+ batch sorted by length": ({}, {"sort": True}),
    "+ KV cache 1 GiB": ({"VLLM_CPU_KVCACHE_SPACE": "1"}, {}),
    "- prefix caching": ({}, {"prefix_caching": False}),
    "KV blocks of 128 tokens (vLLM-CPU's default)": ({}, {"block_size": 128}),
}


def rows_for_bench() -> list[dict]:
    from .views import DEFAULT_DATA, SETS, read_rows, split_rows, taxonomy_for

    out = []
    for name in ("arena-hard", "justeval-tasks"):
        spec = SETS[name]
        taxonomy = taxonomy_for(spec)
        for r in split_rows(spec, read_rows(spec, DEFAULT_DATA), "dev"):
            out.append({"set": name, "taxonomy": taxonomy, "text": r["text"], "labels": r["labels"]})
    return out


def one_row(options: dict, limit: int) -> dict:
    """Runs in the row's own process: open the engine, label the rows, report."""
    from offline_cov.data.readers import Sample
    from offline_cov.engines.vllm_engine import VllmEngine
    from offline_cov.generation import generate_parsed
    from offline_cov.labelers.base import LabelSettings
    from offline_cov.labelers.llm import LLMLabeler
    from offline_cov.registry import load_registry

    spec = load_registry().get(MODEL)
    if options.get("prefix_caching") is False:
        VllmEngine._llm_kwargs = staticmethod(_with_kwargs(VllmEngine._llm_kwargs, enable_prefix_caching=False))
    if options.get("block_size"):
        VllmEngine._llm_kwargs = staticmethod(_with_kwargs(VllmEngine._llm_kwargs, block_size=options["block_size"]))
    started = time.perf_counter()
    engine = VllmEngine(spec)
    load_s = time.perf_counter() - started
    rows = rows_for_bench()
    per_set = max(1, limit // 2)
    rows = [r for r in rows if r["set"] == "arena-hard"][:per_set] + [r for r in rows if r["set"] == "justeval-tasks"][:per_set]
    settings = LabelSettings(batch_size=options.get("batch_size", 64), max_sample_tokens=options.get("max_sample_tokens", 1536))
    preds, out_tokens = [None] * len(rows), 0
    started = time.perf_counter()
    for set_name in ("arena-hard", "justeval-tasks"):
        idx = [i for i, r in enumerate(rows) if r["set"] == set_name]
        taxonomy = rows[idx[0]]["taxonomy"]  # the bench's taxonomy file, descriptions and examples included
        labeler = LLMLabeler(engine, taxonomy, settings)
        if options.get("sort"):
            idx.sort(key=lambda i: len(rows[i]["text"]))
        for at in range(0, len(idx), settings.batch_size):
            batch = idx[at: at + settings.batch_size]
            requests = [labeler.request(Sample(i, (("user", rows[i]["text"]),)))[0] for i in batch]
            for i, o in zip(batch, generate_parsed(engine, requests, labeler.parse)):
                preds[i] = o.value.categories[0] if o.value else None
                out_tokens += o.output_tokens
    seconds = time.perf_counter() - started
    usage = engine.usage()
    engine.close()
    right = [p in r["labels"] for p, r in zip(preds, rows)]
    return {"load_s": round(load_s, 1), "label_s": round(seconds, 1), "n": len(rows),
            "samples_per_s": round(len(rows) / seconds, 3), "accuracy": round(sum(right) / len(rows), 3),
            "predictions": preds, "output_tokens": out_tokens, "usage": usage}


def _with_kwargs(original, **changes):
    """`VllmEngine._llm_kwargs` with `changes` on top (a bench row's vLLM setting)."""
    def kwargs(spec, *args, **kw):
        return {**original(spec, *args, **kw), **changes}
    return kwargs


def bundled_example(tuned: bool) -> dict:
    """`offline-cov analyze` on the bundled example with the machine's defaults, no cache: wall time."""
    return analyze_bundled([], {} if tuned else {"OFFLINE_COV_CPU_TUNING": "0"}, "tuned" if tuned else "defaults")


def analyze_bundled(options: list[str], env_extra: dict, tag: str) -> dict:
    """`offline-cov analyze` on the bundled example in a fresh process, no label cache, with extra
    command-line `options` and environment: wall time, engine start, category counts."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "VLLM_CPU_NUM_OF_RESERVED_CPU", "OFFLINE_COV_CPU_TUNING")}
    env.update(env_extra)
    repo = HERE.parent
    meta, report = Path("/tmp") / f"offline-cov-bundled-{tag}.json", Path("/tmp") / f"offline-cov-bundled-{tag}-report.json"
    cmd = [str(repo / ".venv" / "bin" / "offline-cov"), "analyze", "examples/sft_sample.jsonl", "--taxonomy-file",
           "examples/taxonomy.yaml", "--no-cache", "-q", "-o", str(report), "--metadata", str(meta), *options]
    started = time.perf_counter()
    proc = common.run_child(cmd, env=env, cwd=repo, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        return {"error": proc.stderr[-2000:]}
    m, r = json.loads(meta.read_text()), json.loads(report.read_text())
    return {"wall_s": round(wall, 1), "engine_load_s": m["timings"].get("engine_load_s"), "labeler": m["labeler"]["labeler"],
            "model": m["model"], "throughput": m.get("throughput"), "load1": os.getloadavg()[0],
            "expert_s": m["labeler"].get("seconds"),
            "counts": {c["name"]: c["count"] for c in r["categories"]}, "difficulty_mix": m.get("difficulty_mix")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=48, help="samples per setting (half arena-hard, half justeval-tasks)")
    p.add_argument("--only", help="row names separated by ';' (some names hold commas), from: " + "; ".join(ROWS))
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--bundled", action="store_true", help="also time `analyze` on the bundled example, vLLM defaults vs tuned")
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one_row(json.loads(args.one), args.rows)), flush=True)
        return
    names = [n.strip() for n in args.only.split(";")] if args.only else list(ROWS)
    results = {}
    for name in names:
        env_extra, options = ROWS[name]
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "VLLM_CPU_NUM_OF_RESERVED_CPU")}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
        env.update(env_extra)
        print(f"[speed_cpu {time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = common.run_child([sys.executable, "-m", "bench.speed_cpu", "--rows", str(args.rows), "--one", json.dumps(options)],
                              env=env, capture_output=True, text=True, cwd=HERE.parent)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            results[name] = {"error": proc.stderr[-2000:]}
            continue
        results[name] = {**json.loads(line[7:]), "wall_s": round(time.perf_counter() - started, 1), "load1": os.getloadavg()[0]}
        print(f"  {results[name]['samples_per_s']} samples/s, accuracy {results[name]['accuracy']}", file=sys.stderr, flush=True)
    base = next((r for r in results.values() if "predictions" in r), None)
    for r in results.values():
        if base and "predictions" in r:
            r["same_labels_as_first"] = round(sum(a == b for a, b in zip(r["predictions"], base["predictions"])) / len(r["predictions"]), 3)
            r["speedup_vs_first"] = round(r["samples_per_s"] / base["samples_per_s"], 2)
    bundled = {}
    if args.bundled:
        for tuned in (False, True):
            print(f"[speed_cpu {time.strftime('%H:%M:%S')}] bundled example, {'tuned' if tuned else 'vLLM defaults'}", file=sys.stderr, flush=True)
            bundled["tuned" if tuned else "vllm defaults"] = bundled_example(tuned)
    payload = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": common.machine_info(), "model": MODEL, "rows": results,
               "bundled": bundled}
    text = markdown(payload)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common.write_named([f"speed-cpu-{stamp}", "speed-cpu-latest"], payload, text)
    print(text)


def markdown(payload: dict) -> str:
    lines = [f"## vLLM-CPU settings side by side ({payload['model']})", "",
             f"- when: {payload['when']}; machine: {common.machine_line(payload['machine'])}",
             "- each row a fresh process; the same rows (half arena-hard dev, half justeval-tasks dev) in each", "",
             "| setting | samples/s | x first row | accuracy | same labels as first row | engine start s | prompt tokens | prefix-cache hit rate | load1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in payload["rows"].items():
        if "error" in r:
            lines.append(f"| {name} | failed | | | | | | | |")
            continue
        u = r.get("usage") or {}
        lines.append(f"| {name} | {r['samples_per_s']} | {r.get('speedup_vs_first')} | {r['accuracy']} | {r.get('same_labels_as_first')} | "
                     f"{r['load_s']} | {u.get('prompt_tokens')} | {u.get('prefix_cache_hit_rate')} | {r['load1']:.2f} |")
    if payload.get("bundled"):
        lines += ["", "`offline-cov analyze examples/sft_sample.jsonl --taxonomy-file examples/taxonomy.yaml --no-cache` "
                  "(120 samples, the CPU default labeler and model), end to end:", "",
                  "| vLLM settings | wall s | engine start s | labeler | samples/s labeling | prefix-cache hit rate | load1 |",
                  "|---|---|---|---|---|---|---|"]
        for name, b in payload["bundled"].items():
            if "error" in b:
                lines.append(f"| {name} | failed | | | | | |")
                continue
            t = b.get("throughput") or {}
            lines.append(f"| {name} | {b['wall_s']} | {b['engine_load_s']} | {b['labeler']} ({b['model']}) | {t.get('samples_per_s')} | "
                         f"{t.get('prefix_cache_hit_rate')} | {b['load1']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
